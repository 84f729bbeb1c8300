"""The `artstyle` command line: download, check, train, evaluate, predict, zero-shot, similar,
explain, serve, backbones, export, quantize, info. One module per family of commands
(`cli_train`, `cli_predict`, `cli_serve`, `cli_data`, `cli_models`), all on the one app of
`cli_common`; importing them here registers them.

Heavy libraries (torch, timm) are imported inside commands, so `--help` is instant.
Every user-fixable problem ends as one `error: ...` line and exit status 1.
"""

from __future__ import annotations

import sys

from rich.markup import escape

from ..errors import ArtstyleError
from .cli_common import app, err

# Importing a family registers its commands: this is the order of `artstyle --help`.
# isort: off
from .cli_train import evaluate, train
from .cli_predict import explain, predict, similar, zero_shot_model
from .cli_serve import review, serve
from .cli_data import check, download
from .cli_models import backbones, export, info, quantize
# isort: on

__all__ = ["app", "backbones", "check", "download", "evaluate", "explain", "export", "info", "main", "predict",
           "quantize", "review", "serve", "similar", "train", "zero_shot_model"]


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except ArtstyleError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
