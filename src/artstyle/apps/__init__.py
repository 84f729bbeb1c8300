"""Stage 4, the doors a person uses: command line, web page and REST API, reports.

`cli` (typer), `serve` (FastAPI + the page in `web/`), `output` (predictions as JSON and
CSV), `report` (HTML evaluation report) and `check_report` (HTML dataset check) built from
`html_parts`, `model_card` (markdown card of a model folder).
"""
