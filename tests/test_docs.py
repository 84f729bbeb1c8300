"""The README is a short guide whose figures are the shipped model's own, and whose
commands and links exist; docs/results.md states the same figures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import artstyle
from artstyle.model.metrics import share_text

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
RESULTS = (ROOT / "docs" / "results.md").read_text()


def test_the_readme_is_a_guide_not_a_log():
    assert len(README.encode()) <= 12_000
    for section in ("## Install", "## Quick start", "## Commands", "## Run the tests"):  # .ci/run and pyproject point here
        assert section in README


def test_the_headline_figures_are_the_shipped_models_own():
    """Rendered from the shipped model's metrics.json as every screen renders them: a
    retrained default with other scores fails here until README and results.md follow."""
    metrics = json.loads((artstyle.default_model_path() / "metrics.json").read_text())
    for band in ("full size", "small (short side <= 256 px)"):
        m = metrics["by_size"][band]
        share, rest = share_text(m["accuracy"], m["n_images"]).split(" (", 1)
        interval = rest.split(", n = ")[0]  # "34.8-45.1 %"
        written = f"{share} ({interval})"
        assert written in README and written in RESULTS, written
        assert f"{m['n_images']:,}" in README and f"{m['n_images']:,}" in RESULTS
        assert f"{100 * m['top3_accuracy']:.0f} %" in README


def test_the_readmes_commands_and_links_exist():
    from artstyle.apps.cli import app

    commands = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
    code = "\n".join(re.findall(r"```bash\n(.*?)```", README, re.S))
    used = set(re.findall(r"^artstyle ([a-z-]+)", code, re.M)) | set(re.findall(r"^\| `([a-z-]+)[ `]", README, re.M))
    assert used and used <= commands, used - commands
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README):
        assert (ROOT / target).exists(), target
