"""How predictions are gathered from the command line and printed: JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from ..data.dataset import find_images
from ..data.manifest import is_manifest, read_manifest
from ..data.remote import Fetcher, Limits, RemoteImage, expand, is_url
from ..files import user_cache_root
from ..model.prediction import Prediction
from ..model.similar import SimilarPaintings


def collect_inputs(arguments: Iterable[str], stdin: TextIO | None = None) -> list[str]:
    """Files as given, folders expanded recursively to their images, manifests to the images
    they list (rows left out are reported with their line), '-' read from stdin."""
    stdin = stdin if stdin is not None else sys.stdin
    paths: list[str] = []
    for arg in arguments:
        if arg == "-":
            paths.extend(line.strip() for line in stdin if line.strip())
        elif is_url(arg):
            paths.append(arg)
        elif os.path.isdir(arg):
            paths.extend(str(path) for path in find_images(arg))
        elif is_manifest(arg):
            manifest = read_manifest(arg, labelled=False)
            manifest.report()
            paths.extend(str(row.file) for row in manifest.rows)
        else:
            paths.append(arg)
    return paths


def fetch_inputs(inputs: list[str], cache: Path | None = None, limits: Limits = Limits()) -> list[RemoteImage]:
    """Each input as (name, local file or error): local paths as they are, URLs (images, IIIF
    services and manifests: `data.remote`) fetched into the URL cache."""
    urls = [i for i in inputs if is_url(i)]
    fetched = iter(expand(urls, Fetcher(cache or user_cache_root()[0] / "urls", limits)) if urls else [])
    images: list[RemoteImage] = []
    for item in inputs:
        images += next(fetched) if is_url(item) else [RemoteImage(item, Path(item))]
    return images


def predict_inputs(clf, images: list[RemoteImage], k: int) -> list[Prediction]:
    """Predictions named as the inputs were (a canvas by its label); a URL that could not be
    fetched gets its error, like an unreadable file."""
    readable = [image for image in images if image.file is not None]
    answers = iter(clf.predict_top_k([image.file for image in readable], k=k) if readable else [])
    results = []
    for image in images:
        result = next(answers) if image.file is not None else Prediction(image.name, [], image.error)
        result.path = image.name
        results.append(result)
    return results


def to_json(predictions: list[Prediction]) -> str:
    return json.dumps([p.to_dict() for p in predictions], indent=2)


def to_csv(predictions: list[Prediction], k: int) -> str:
    """One row per input: path, label/probability pairs by rank, flags, then error."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["path"]
    for rank in range(1, k + 1):
        header += [f"label_{rank}", f"probability_{rank}"]
    writer.writerow(header + ["uncertain", "mixed", "is_painting", "not_painting_kind", "in_training",
                              "training_movement", "family", "family_probability", "family_first", "error"])
    for p in predictions:
        row: list[str] = [p.path]
        for rank in range(k):
            if rank < len(p.predictions):
                label, prob = p.predictions[rank]
                row += [label, f"{prob:.6f}"]
            else:
                row += ["", ""]
        flags = [""] * 9 if p.error else [
            str(p.uncertain).lower(), " + ".join(p.mixed or []), str(p.is_painting).lower(), p.not_painting_kind or "",
            str(p.in_training is not None).lower(), p.in_training or "", p.family or "",
            f"{p.family_probability:.6f}" if p.family_probability is not None else "", str(p.family_first).lower()]
        writer.writerow(row + flags + [p.error or ""])
    return buffer.getvalue()


def similar_to_csv(results: list[SimilarPaintings]) -> str:
    """One row per (input, neighbour): path, rank, similarity, movement, artist, file, error;
    an input that is itself a training painting first gets a row of rank "itself"."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "rank", "similarity", "movement", "artist", "file", "error"])
    for r in results:
        if r.error:
            writer.writerow([r.path, "", "", "", "", "", r.error])
        ranked = ([("itself", r.itself)] if r.itself else []) + list(enumerate(r.neighbours, 1))
        for rank, n in ranked:
            writer.writerow([r.path, rank, f"{n.similarity:.6f}", n.movement, n.artist, n.file, ""])
    return buffer.getvalue()


def unique_names(paths: list[str], suffix: str) -> list[str]:
    """Output file names for inputs: the input's stem plus `suffix`, numbered when two
    inputs share a stem (Painter_A/1.jpg and Painter_B/1.jpg)."""
    stems = [Path(p).stem or "image" for p in paths]
    seen: dict[str, int] = {}
    names = []
    for stem in stems:
        seen[stem] = seen.get(stem, 0) + 1
        names.append(f"{stem}{suffix}" if stems.count(stem) == 1 else f"{stem}-{seen[stem]}{suffix}")
    return names


def display_path(path: str, width: int | None = None) -> str:
    """Paths under the working folder are shown relative to it; with `width`, cut from the
    left to at most that many characters ("…/Picasso_Pablo/cafe.jpg"): the file name and
    its folders matter most, and a table keeps its columns (CSV and JSON keep it whole)."""
    try:
        shown = str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        shown = path
    if width is None or len(shown) <= width:
        return shown
    return "…" + shown[len(shown) - width + 1:]
