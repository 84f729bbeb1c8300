"""Prediction records and how they are printed: table, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from .dataset import find_images


@dataclass
class Prediction:
    """Top-k movements for one input, most probable first, or the reason it failed.

    uncertain: the top probability is below the model's validated threshold.
    mixed: [first, second] when the second movement is nearly as likely as the first.
    is_painting: False when the image is unlike any painting the model knows.
    """

    path: str
    predictions: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None
    uncertain: bool = False
    mixed: list[str] | None = None
    is_painting: bool = True

    @property
    def summary(self) -> str:
        """What a person should read: 'impressionism', 'impressionism + realism', 'not a painting'."""
        if self.error:
            return "error"
        if not self.is_painting:
            return "not a painting"
        text = " + ".join(self.mixed) if self.mixed else self.predictions[0][0]
        return f"{text} (uncertain)" if self.uncertain else text

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "predictions": [{"label": label, "probability": p} for label, p in self.predictions],
            "uncertain": self.uncertain if not self.error else None,
            "mixed": self.mixed,
            "is_painting": self.is_painting if not self.error else None,
            "error": self.error,
        }


def collect_inputs(arguments: Iterable[str], stdin: TextIO | None = None) -> list[str]:
    """Files as given, folders expanded recursively to their images, '-' read from stdin."""
    stdin = stdin if stdin is not None else sys.stdin
    paths: list[str] = []
    for arg in arguments:
        if arg == "-":
            paths.extend(line.strip() for line in stdin if line.strip())
        elif os.path.isdir(arg):
            paths.extend(str(path) for path in find_images(arg))
        else:
            paths.append(arg)
    return paths


def to_json(predictions: list[Prediction]) -> str:
    return json.dumps([p.to_dict() for p in predictions], indent=2)


def to_csv(predictions: list[Prediction], k: int) -> str:
    """One row per input: path, label/probability pairs by rank, flags, then error."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["path"]
    for rank in range(1, k + 1):
        header += [f"label_{rank}", f"probability_{rank}"]
    writer.writerow(header + ["uncertain", "mixed", "is_painting", "error"])
    for p in predictions:
        row: list[str] = [p.path]
        for rank in range(k):
            if rank < len(p.predictions):
                label, prob = p.predictions[rank]
                row += [label, f"{prob:.6f}"]
            else:
                row += ["", ""]
        flags = ["", "", ""] if p.error else [str(p.uncertain).lower(), " + ".join(p.mixed or []), str(p.is_painting).lower()]
        writer.writerow(row + flags + [p.error or ""])
    return buffer.getvalue()


def display_path(path: str) -> str:
    """Paths under the working folder are shown relative to it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path
