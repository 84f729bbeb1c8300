"""`artstyle quantize`: add an int8 embedding to a model folder, calibrated on its own paintings.

Static quantization needs activation ranges, measured on views the network will see.
The model's own training paintings are what its features were fitted on, so a few hundred
of them, spread over movements and sources, set the ranges. They are found in the folders
given by content hash (splits.csv), so a moved or merged tree works. After quantizing,
the int8 model is compared with the fp32 one on paintings that did not calibrate it (the
test split where the folders hold it), and the agreement is recorded beside the graph.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..data.dataset import ImageRecord, Roots, scan_dataset
from ..data.splits import parse_splits_csv
from ..errors import ArtstyleError
from ..features.extraction import FeatureExtractor, decode_views, repeats_first_view
from ..features.graph_cache import BundledGraph
from ..features.int8 import (
    CALIBRATION_BATCH,
    DEFAULT_CALIBRATION,
    graph_kind,
    quantize_graph,
    resolve_weight_range,
    scheme,
)
from ..progress import progress_bar

log = logging.getLogger(__name__)

AGREEMENT_PAINTINGS = 64


@dataclass(frozen=True)
class Quantized:
    """What `quantize_model` wrote, and how closely int8 follows fp32."""

    path: Path
    calibration: int  # paintings
    compared: int  # paintings scored by both
    same_top1: float | None  # share of `compared` with the same top movement (None: none compared)
    max_abs_diff: float | None  # largest probability difference
    weight_range: str  # "full" or "reduced" (see `int8.scheme`)


def stratified(records: Sequence[ImageRecord], n: int, seed: int) -> list[ImageRecord]:
    """Up to `n` records, dealt in turn from each movement x source group in seeded order,
    so small movements and sources are in the calibration as well as the big ones."""
    groups: dict[tuple[str, str], list[ImageRecord]] = defaultdict(list)
    for record in records:
        groups[(record.label, record.source)].append(record)
    rng = np.random.default_rng(seed)
    queues = [[members[i] for i in rng.permutation(len(members))] for _, members in sorted(groups.items())]
    chosen: list[ImageRecord] = []
    while len(chosen) < n and any(queues):
        for queue in queues:
            if queue and len(chosen) < n:
                chosen.append(queue.pop())
    return chosen


def calibration_views(paths: Sequence[Path], extractor: FeatureExtractor, show_progress: bool) -> Iterator[np.ndarray]:
    """Batches of the views the extractor runs for `paths` (a picture too small for tiles
    gives its one view, as in extraction); unreadable files are skipped."""
    pending: list[np.ndarray] = []
    with progress_bar(len(paths), "Calibrating int8", enabled=show_progress) as advance:
        for path in paths:
            views, reason = decode_views(path, extractor.preprocessing)
            advance(1)
            if views is None:
                log.warning("%s: left out of the calibration (%s)", path, reason)
                continue
            pending.extend(views[:1] if repeats_first_view(views) else views)
            while len(pending) >= CALIBRATION_BATCH:
                yield np.stack(pending[:CALIBRATION_BATCH])
                pending = pending[CALIBRATION_BATCH:]
    if pending:
        yield np.stack(pending)


def quantize_model(model: str | os.PathLike, data: Roots, *, out: str | os.PathLike | None = None,
                   paintings: int = DEFAULT_CALIBRATION, seed: int = 0, weight_range: str = "auto",
                   show_progress: bool = True) -> Quantized:
    """Write `model`'s embedding in int8 into its folder (or a copy at `out`), calibrated
    on up to `paintings` of its training paintings found under `data`. `weight_range`
    "auto" writes full-range weights where this CPU multiplies int8 exactly (the machine
    that quantizes is usually the one that predicts); "reduced" suits every CPU."""
    from .. import default_model_path
    from .classifier import StyleClassifier

    if paintings < 1:
        raise ArtstyleError("--paintings must be at least 1")
    weight_range = resolve_weight_range(weight_range)
    if out is None and Path(model).expanduser().resolve() == default_model_path().resolve():
        raise ArtstyleError(f"{model}: is the model shipped inside the installed package; pass --out FOLDER "
                            "to write a quantized copy")
    clf = StyleClassifier.load(model, precision="fp32", cache_dir=False, engine="onnx", show_progress=False)
    roles = {row["sha256"]: row["split"] for row in parse_splits_csv(clf.splits_csv_)}
    dataset = scan_dataset(data, show_progress=show_progress)
    train = [r for r in dataset.records if roles.get(r.sha256) == "train"]
    if not train:
        raise ArtstyleError(f"{model}: none of the images under {', '.join(map(str, dataset.roots))} are its "
                            "training paintings (matched by content); give the folders it was trained on")
    calibration = stratified(train, paintings, seed)
    used = {r.sha256 for r in calibration}
    held = [r for r in dataset.records if roles.get(r.sha256) == "test"]
    held = held or [r for r in train if r.sha256 not in used]
    held = stratified(held, AGREEMENT_PAINTINGS, seed)
    graphs = clf._graphs()
    int8 = []
    for extractor, graph in zip(clf.feature_extractors, graphs, strict=True):
        views = calibration_views([dataset.abspath(r) for r in calibration], extractor, show_progress)
        info = {**graph.info, "quantization": {
            **scheme(weight_range, graph_kind(graph.data)), "paintings": len(calibration), "sources": sorted({r.source for r in calibration}),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}}
        int8.append(BundledGraph(quantize_graph(graph.data, views, weight_range), graph.stats, info, precision="int8"))
    compared, same, diff = _agreement(clf, int8, [dataset.abspath(r) for r in held])
    for graph in int8:
        graph.info["quantization"]["agreement"] = {"paintings": compared, "same_top1": same, "max_abs_diff": diff}
    clf.int8_graphs_ = int8
    target = Path(out if out is not None else model).expanduser()
    try:
        path = clf.save(target)
    except OSError as exc:
        raise ArtstyleError(f"{target}: cannot write the int8 model ({exc.strerror or exc}); pass --out FOLDER") from None
    if compared and same < 0.95:
        log.warning("int8 names the same movement as fp32 for only %.0f%% of %d paintings; "
                    "--precision fp32 keeps predicting at full precision", 100 * same, compared)
    return Quantized(path, len(calibration), compared, same, diff, weight_range)


def _agreement(clf, int8: list[BundledGraph], paths: Sequence[Path]) -> tuple[int, float | None, float | None]:
    """How many of `paths` could be compared, the share of them with the same top
    movement in fp32 and int8, and the largest probability difference."""
    if not paths:
        return 0, None, None
    _, fp32, errors = clf._score(paths)
    clf.precision_, clf.int8_graphs_, clf._extractors = "int8", int8, None
    try:
        _, quantized, _ = clf._score(paths)
    finally:
        clf.precision_, clf._extractors = "fp32", None
    ok = np.ones(len(paths), bool)
    ok[list(errors)] = False
    if not ok.any():
        return 0, None, None
    return (int(ok.sum()), float(np.mean(fp32[ok].argmax(1) == quantized[ok].argmax(1))),
            float(np.abs(fp32[ok] - quantized[ok]).max()))
