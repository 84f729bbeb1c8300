"""Fine-tuning an estimator's backbone on its training paintings before the head is fitted:
the split's inner validation artists, the run's cache key, and the tuned weights adopted."""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path

import numpy as np

from ..data.dataset import LabelledImages
from ..data.splits import Split, make_split
from ..features.cache import default_cache_dir
from .bundle import tensor_layout

FINETUNE_VAL_FRACTION = 0.2  # of the training split: the artists fine-tuning never trains on


def fine_tune(clf, images: LabelledImages, split: Split) -> None:
    """Train `clf`'s backbone on the training split less some artists (marked "val" in `split`),
    who stop it early and, never learnt by the network, later calibrate the head."""
    from ..features.finetune import finetune_backbone, run_key  # torch: only when fine-tuning

    training = split.select(images.records, "train")
    inner = make_split([images.records[i] for i in training], split.mode, seed=clf.seed,
                       val_fraction=FINETUNE_VAL_FRACTION, test_fraction=0.0)
    labels = sorted({images.records[i].label for i in training})
    rows: dict[str, list[int]] = {"train": [], "val": []}
    for i in training:
        role = inner.assignment[images.records[i].path]
        split.assignment[images.records[i].path] = role
        rows[role].append(i)
    (extractor,) = clf.feature_extractors
    index = {label: i for i, label in enumerate(labels)}

    def part(role: str) -> tuple[list, np.ndarray]:
        return [images.sources[i] for i in rows[role]], np.array([index[images.records[i].label] for i in rows[role]])

    key = run_key(extractor.backbone, extractor.preprocessing, clf.finetune,
                  *[[(images.keys[i], int(index[images.records[i].label])) for i in rows[r]] for r in ("train", "val")],
                  labels)
    if clf.cache_dir is False:  # no cache: the tuned weights live as long as this classifier
        root = Path(tempfile.mkdtemp(prefix="artstyle-finetune-"))
        weakref.finalize(clf, shutil.rmtree, root, True)
    else:
        root = Path(clf.cache_dir or default_cache_dir()).expanduser() / "finetune"
    tuned = finetune_backbone(
        extractor.backbone, extractor.preprocessing, part("train"), part("val"), len(labels), clf.finetune,
        folder=root / key, device=clf.device, workers=1 if clf.workers is None else clf.workers,
        show_progress=clf.show_progress,
    )
    tensors = tensor_layout(tuned.weights.read_bytes())
    clf.backbone_weights_, clf.finetuned_ = tuned.weights, {**tuned.record, "tensors": tensors}
    clf._extractors = None  # the next features come from the tuned network
