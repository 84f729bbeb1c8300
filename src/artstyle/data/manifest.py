"""Manifests: a collection as a list (CSV or JSON Lines) instead of a tree of folders.

Catalogues, Kaggle and Hugging Face image datasets ship a table beside the images. One row
per image: `path` (relative to the manifest's folder, or absolute), `movement`, and
optionally `artist` and `source`. The Hugging Face `imagefolder` convention
(`metadata.csv` / `metadata.jsonl` with a `file_name` column) is read as is, its label
column named `movement`, `label` or `style`. `artstyle review` writes `labels.csv` in this
form, so its corrections train directly.

Nothing is dropped silently: a row with a missing file or an empty movement is reported
with its line number and left out; columns artstyle does not read are named once.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DatasetError

log = logging.getLogger("artstyle")

MANIFEST_SUFFIXES = (".csv", ".jsonl", ".ndjson")
PATH_COLUMNS = ("path", "file_name", "file", "image")  # the first found names the image
LABEL_COLUMNS = ("movement", "label", "style")
OPTIONAL_COLUMNS = ("artist", "source")
# Columns `review` writes besides the image's facts: who decided, and the model's own answer.
REVIEW_COLUMNS = ("decided_by", "model_movement", "model_probability")
NOT_A_PAINTING = "not a painting"  # what `review` files a picture under when a person says it is none
_EXTRA, _ERROR = "\0extra", "\0error"  # keys no CSV header or JSON object of a real manifest holds


def is_manifest(path: str | Path) -> bool:
    """A file whose name says it is a manifest (.csv, .jsonl, .ndjson)."""
    path = Path(path)
    return path.suffix.lower() in MANIFEST_SUFFIXES and not path.is_dir()


@dataclass
class ManifestRow:
    """One image of a manifest: the file, its path as records name it, its facts, its line."""

    file: Path
    path: str  # relative to the manifest's folder when inside it (POSIX), else the path as written
    movement: str
    artist: str | None
    source: str | None
    line: int


@dataclass
class Manifest:
    """The usable rows of one manifest file and the rows left out, with the reason."""

    file: Path
    rows: list[ManifestRow]
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)
    ignored_columns: list[str] = field(default_factory=list)

    def report(self) -> None:
        """Log each problem on one line naming the file and line; then the columns not read."""
        for line, reason in self.problems:
            log.warning("%s:%d: %s", self.file, line, reason)
        if self.problems:
            log.warning("%s: %d row(s) left out", self.file, len(self.problems))
        if self.ignored_columns:
            log.info("%s: columns not read by artstyle: %s", self.file, ", ".join(self.ignored_columns))


def _pick(columns: list[str], choices: tuple[str, ...], what: str, file: Path) -> str:
    found = next((c for c in choices if c in columns), None)
    if found is None:
        raise DatasetError(f"{file}: no {what} column (one of {', '.join(choices)}); it has {', '.join(columns) or 'none'}")
    return found


def _raw_rows(file: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """(column names, (line number, row) per data row) of a CSV or JSON Lines file."""
    try:
        text = file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(f"{file}: no such manifest") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{file}: cannot read the manifest ({exc})") from None
    columns: list[str] = []
    rows: list[tuple[int, dict]] = []
    if file.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        columns = [c.strip() for c in reader.fieldnames or []]
        for row in reader:
            extra = row.pop(None, None)  # a row longer than the header
            cleaned = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
            if extra:
                cleaned[_EXTRA] = ",".join(extra)
            rows.append((reader.line_num, cleaned))
        return columns, rows
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            rows.append((number, {_ERROR: f"not JSON ({exc.msg})"}))
            continue
        if not isinstance(row, dict):
            rows.append((number, {_ERROR: "not a JSON object"}))
            continue
        columns += [k for k in row if k not in columns]
        rows.append((number, {k: "" if v is None else str(v).strip() for k, v in row.items()}))
    return columns, rows


def read_manifest(file: str | Path, labelled: bool = True) -> Manifest:
    """The rows of a manifest, each checked: the image exists and the movement is not empty.
    With `labelled` False (images to predict) the movement column may be absent or empty."""
    file = Path(file).expanduser()
    columns, raw = _raw_rows(file)
    if not raw and not columns:
        raise DatasetError(f"{file}: empty manifest; expected a header with path and movement columns")
    path_column = _pick(columns, PATH_COLUMNS, "image path", file)
    label_column = (_pick(columns, LABEL_COLUMNS, "movement", file) if labelled else
                    next((c for c in LABEL_COLUMNS if c in columns), LABEL_COLUMNS[0]))
    read = {path_column, label_column, *OPTIONAL_COLUMNS, *REVIEW_COLUMNS}
    manifest = Manifest(file, [], ignored_columns=[c for c in columns if c not in read])
    folder = file.parent
    for line, row in raw:
        if _ERROR in row:
            manifest.problems.append((line, row[_ERROR]))
            continue
        if _EXTRA in row:
            manifest.problems.append((line, f"more values than the header has columns ({row[_EXTRA]})"))
            continue
        written, movement = row.get(path_column, ""), row.get(label_column, "")
        if not written:
            manifest.problems.append((line, f"empty {path_column}"))
            continue
        if not movement and labelled:
            manifest.problems.append((line, f"{written}: empty {label_column}"))
            continue
        image = Path(written).expanduser()
        image = image if image.is_absolute() else folder / image
        if not image.is_file():
            manifest.problems.append((line, f"{written}: no such file" if not image.exists() else f"{written}: not a file"))
            continue
        try:
            rel = image.resolve().relative_to(folder.resolve()).as_posix()
        except ValueError:
            rel = written
        manifest.rows.append(ManifestRow(image, rel, movement, row.get("artist") or None, row.get("source") or None, line))
    if not manifest.rows:
        manifest.report()
        raise DatasetError(f"{file}: no usable rows" + (f" ({len(manifest.problems)} left out, e.g. line "
                                                        f"{manifest.problems[0][0]}: {manifest.problems[0][1]})"
                                                        if manifest.problems else ""))
    return manifest
