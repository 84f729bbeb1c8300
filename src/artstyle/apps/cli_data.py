"""`artstyle check` and `artstyle download`: the painting collection itself."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .cli_common import (
    DATA_HELP,
    STATE,
    TextOrJson,
    app,
    check_folders,
    err,
    folder_names,
    out,
)


@app.command()
def check(
    data: list[Path] = typer.Argument(..., help=DATA_HELP),
    fmt: TextOrJson = typer.Option(TextOrJson.text, "--format", help="text or json (every finding, on stdout)."),
    report: Optional[Path] = typer.Option(None, help="Also write a self-contained HTML report with a plot per finding."),
    fix_plan: Optional[Path] = typer.Option(None, help="Write suggested actions as CSV (nothing is changed)."),
    min_side: int = typer.Option(224, min=1, help="Images with a shorter side than this, in pixels, are tiny."),
    near_distance: int = typer.Option(12, min=0, max=127, help="Most differing hash bits (of 128) for a near duplicate."),
) -> None:
    """Check a painting collection before training: counts, sizes, broken files, duplicates, imbalance.

    Reads only: the collection is never modified.
    """
    check_folders(data, "painting folder")
    from ..data.doctor import check_dataset, write_fix_plan

    result = check_dataset(data, min_side=min_side, near_distance=near_distance, show_progress=not STATE.quiet)
    if fmt is TextOrJson.json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        _print_check(result)
    if report:
        from .check_report import write_check_report

        write_check_report(result, report, title=f"artstyle check of {folder_names(data)}")
        err.print(f"report written to [bold]{report}[/bold]")
    if fix_plan:
        rows = write_fix_plan(result, fix_plan)
        err.print(f"{rows} suggested action(s) written to [bold]{fix_plan}[/bold]; nothing was changed")


def _print_check(result) -> None:
    d = result.to_dict()
    per_class = Table(title=f"{d['n_images']} images, {d['n_classes']} movements, {d['n_artists']} artists "
                      "(folders such as 'unknown' not counted)")
    for column in ("movement", "images", "artists", "most images by"):
        per_class.add_column(column, justify="left" if column in ("movement", "most images by") else "right")
    under, dominated, largest = set(d["under_represented"]), d["dominated_by_one_artist"], result.largest_artist()
    for label, n in d["class_counts"].items():
        artists = d["artists_per_class"][label]
        top = largest.get(label)
        largest_text = f"{top[0]} ({top[1]:.0%})" if top else ""
        per_class.add_row(label, f"[red]{n}[/red]" if label in under else str(n),
                          f"[yellow]{artists}[/yellow]" if artists < 2 else str(artists),
                          f"[yellow]{largest_text}[/yellow]" if label in dominated else largest_text)
    out.print(per_class)
    sides = d["shortest_side"]
    out.print(f"shortest side: min {sides.get('min')} px, median {sides.get('median')} px, max {sides.get('max')} px; "
              f"imbalance {d['imbalance_ratio']:.1f}x (largest / smallest class)", highlight=False)
    if len(d["sizes"].get("per_source", {})) > 1:
        out.print("median shortest side per source: " + ", ".join(
            f"{name} {q['median']} px" for name, q in d["sizes"]["per_source"].items()), highlight=False)
    sizes = d["sizes"]
    far = [f"{name}: median {sizes['per_movement'][name]['median']} px, {factor:g}x the rest"
           for name, factor in sizes.get("flagged_movements", {}).items()]
    far += [f"source {name}: median {sizes['per_source'][name]['median']} px, {factor:g}x the rest"
            for name, factor in sizes.get("flagged_sources", {}).items()]
    findings = [
        ("unreadable", [f"{u['path']}: {u['reason']}" for u in d["unreadable"]]),
        (f"sizes over {sizes.get('ratio', 2):g}x from the rest (the model may learn size)", far),
        ("exact duplicates", [" = ".join(g["paths"]) + ("  [different movements]" if g["across_classes"] else "")
                              for g in d["exact_duplicates"]]),
        ("near duplicates", [f"{n['a']} ~ {n['b']} (distance {n['distance']})"
                             + ("  [different movements]" if n["across_classes"] else "") for n in d["near_duplicates"]]),
        (f"tiny (shortest side < {d['min_side']} px)", [f"{t['path']} ({t['width']}x{t['height']})" for t in d["tiny"]]),
        ("artists under several movements", [f"{a}: " + ", ".join(f"{k} ({v})" for k, v in c.items())
                                             for a, c in d["artists_in_several_classes"].items()]),
        ("under-represented movements", d["under_represented"]),
        ("movements mostly by one artist", [f"{label}: {top['artist']} ({top['share']:.0%})"
                                            for label, top in dominated.items()]),
    ]
    for name, lines in findings:
        out.print(f"[bold]{name}: {len(lines)}[/bold]", highlight=False)
        for line in lines[:10]:
            out.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
        if len(lines) > 10:
            out.print(f"  ... {len(lines) - 10} more (--format json, --report or --fix-plan list them all)")


@app.command()
def download(
    dataset: str = typer.Argument(..., help="Dataset to fetch: pandora18k."),
    to: Path = typer.Option(..., "--to", help="Folder to put the archive and the unpacked paintings in."),
    url: Optional[str] = typer.Option(None, help="Mirror URL, or a local path / file:// URL of the zip (default: the official URL)."),
    archive: Optional[Path] = typer.Option(None, help="A zip already on disk: unpack it instead of downloading (it is left as is)."),
    sha256: Optional[str] = typer.Option(None, help="Expected SHA-256 of the archive; a mismatch is an error."),
    retries: int = typer.Option(8, min=0, help="Attempts in a row that may fail before giving up (progress resets the count)."),
) -> None:
    """Download a dataset, resuming a broken download, verify it and unpack it safely."""
    from ..data.download import get_dataset

    result = get_dataset(dataset, to, url=url, archive=archive, sha256=sha256, retries=retries,
                         show_progress=not STATE.quiet)
    if result.already:
        err.print(f"{dataset} is already downloaded and unpacked in {result.folder}; nothing to do", soft_wrap=True)
    else:
        err.print(f"unpacked {result.archive.name} into {result.folder}", soft_wrap=True)
        err.print(f"archive SHA-256 {result.sha256} (pass --sha256 to pin it when fetching again)", soft_wrap=True)
    err.print(f"next: artstyle check {result.data}\n      artstyle train {result.data} --out model", soft_wrap=True,
              highlight=False)
