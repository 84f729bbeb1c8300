"""Movements named from text (zero-shot): no training painting at all.

An image+text backbone (CLIP, SigLIP) embeds each movement's prompts with its text tower;
the prompts of one movement are averaged (a prompt ensemble, as in the CLIP paper), and
an image gets the movements whose text its own embedding is closest to (`CosineHead`).
Whether it is a painting at all is asked the same way (`text_detector`). The result is an
ordinary fitted `StyleClassifier`: predict, the JSON, the page and the API treat it like a
trained one, and `save` writes a model folder (`artstyle zero-shot --out DIR`) that
predicts, serves and evaluates without the text tower, and with its graph without torch.

Text embeddings need torch once per backbone, labels and prompts, and the detector's
threshold an embedding of its calibration pictures; both are cached under the user cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .. import __version__
from ..data.labels import PANDORA_MOVEMENTS
from ..errors import ArtstyleError, require_torch
from ..files import atomic_write_bytes, user_cache_root
from .calibration import Abstention
from .head import CosineHead
from .negatives import non_paintings, shipped_pictures
from .text_detector import CALIBRATION_IMAGES, GROUPS, TextDetector, brushwork, calibrate

log = logging.getLogger("artstyle")
CHART_KINDS = ("chart", "table", "slide", "screenshot", "page")  # the generated non-paintings a detector is calibrated on

# One movement, several phrasings: their mean embedding is steadier than any one. The name
# always stands as a noun ("of impressionism", "the early renaissance movement"), so every
# movement reads grammatically: no "a impressionism painting", whatever a user's label.
TEMPLATES = (
    "a painting in the style of {}.",
    "a painting of the {} movement.",
    "an artwork of {}.",
    "a famous painting of {}.",
    "a detail of a painting of {}.",
    "a reproduction of a painting, {}.",
    "{}, a movement in the history of art.",
)
def parse_labels(text: str | None) -> list[str]:
    """"ukiyo-e, art nouveau, ..." -> the movements to choose among (the 18 of Pandora18k
    when None): as written, trimmed, each once."""
    if text is None:
        return list(PANDORA_MOVEMENTS)
    labels: list[str] = []
    for part in text.split(","):
        label = " ".join(part.split())
        if label and label.casefold() not in {x.casefold() for x in labels}:
            labels.append(label)
    if len(labels) < 2:
        raise ArtstyleError(f"--labels {text!r}: name at least two movements, separated by commas")
    return labels


def prompts(label: str) -> list[str]:
    return [template.format(label) for template in TEMPLATES]


def ensemble(unit: np.ndarray, groups: list[int]) -> np.ndarray:
    """Unit embeddings of consecutive prompt groups (sizes `groups`) -> one unit row each:
    the mean of its prompts, renormalised."""
    rows, start = [], 0
    for size in groups:
        mean = unit[start:start + size].mean(axis=0)
        rows.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
        start += size
    return np.stack(rows).astype(np.float32)


def text_embeddings(backbone: str, weights, weights_id: str, texts: list[str]) -> tuple[np.ndarray, float, float]:
    """(unit embeddings of `texts`, logit scale, logit bias) from `backbone`'s text tower,
    cached per weights and texts (a few kB: always, whatever caches features)."""
    from safetensors.numpy import load, save

    path = user_cache_root()[0] / "zero-shot" / f"{_key([backbone, weights_id, texts])}.safetensors"
    if path.is_file():
        try:
            t = load(path.read_bytes())
            return t["embeddings"], float(t["logit_scale"][0]), float(t["logit_bias"][0])
        except Exception:  # a damaged entry is computed again
            log.info("%s: damaged zero-shot cache entry, recomputed", path)
    require_torch(f"zero-shot with new labels on {backbone} (its text tower; these prompts are not cached here)")
    from ..features.backbones import get_info
    from ..features.family_open_clip import text_tower

    tower = text_tower(get_info(backbone), Path(weights).expanduser() if weights else None)
    embeddings = tower.encode(texts)
    atomic_write_bytes(path, save({"embeddings": embeddings, "logit_scale": np.array([tower.logit_scale], np.float32),
                                   "logit_bias": np.array([tower.logit_bias], np.float32)}))
    return embeddings, tower.logit_scale, tower.logit_bias


def zero_shot_classifier(backbone: str, labels: list[str] | None = None, weights=None, **params):
    """A fitted `StyleClassifier` naming `labels` (default: the 18 movements) from text
    alone, on an image+text backbone (`artstyle backbones`: "zero-shot"). `params` tune
    how it runs (engine, batch_size, cache_dir, ...)."""
    from ..features.backbones import get_info
    from .bundle import FORMAT_NAME, FORMAT_VERSION
    from .classifier import StyleClassifier

    info = get_info(backbone)
    if not info.text:
        with_text = ", ".join(i.name for i in _text_backbones())
        raise ArtstyleError(f"{backbone} has no text tower; zero-shot needs one of {with_text}")
    labels = list(labels or PANDORA_MOVEMENTS)
    clf = StyleClassifier(backbone, features="global", weights=weights, **params)
    (extractor,) = clf.feature_extractors
    weights_id = extractor.backbone.weights_id
    texts = [p for label in labels for p in prompts(label)] + [p for group in GROUPS for p in group]
    unit, scale, bias = text_embeddings(backbone, weights, weights_id, texts)
    rows = ensemble(unit, [len(TEMPLATES)] * len(labels) + [len(g) for g in GROUPS])
    dim = extractor.dim
    clf.classes_ = np.array(labels)
    clf.head_ = CosineHead(mean=np.zeros(dim, np.float32), scale=np.ones(dim, np.float32), temperature=1.0,
                           weight=rows[: len(labels)], logit_scale=np.array([scale], np.float32),
                           logit_bias=np.array([bias], np.float32))
    clf.abstention_ = Abstention()
    clf.painting_detector_ = _calibrated(clf, TextDetector(rows[len(labels):], scale, bias), [backbone, weights_id])
    clf.metrics_, clf.splits_csv_, clf.similar_ = {}, "path,label,artist,sha256,split\n", None
    clf.backbone_weights_, clf.finetuned_, clf.graphs_ = None, None, None
    clf.precision_, clf.int8_graphs_ = "fp32", None
    clf.config_ = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "artstyle_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "features": {"recipe": "global", "backbones": clf.backbone_records(), "dim": dim},
        "labels": labels,
        "head": {"type": "cosine", "kind": "zero-shot", "templates": list(TEMPLATES)},
        "temperature": 1.0,
        "abstention": clf.abstention_.to_dict(),
        "painting_detector": clf.painting_detector_.config(),
        "dataset": {"images": 0, "note": "zero-shot: no training paintings"},
    }
    return clf


def _calibrated(clf, detector: TextDetector, key: list) -> TextDetector:
    """`detector` with its threshold chosen on embedded pictures: artstyle's shipped
    photographs and generated charts and documents against generated brushwork; cached per
    weights and prompts."""
    path = user_cache_root()[0] / "zero-shot" / (_key([*key, [list(g) for g in GROUPS], "threshold-1"]) + ".json")
    try:
        saved = json.loads(path.read_text())
        return TextDetector(detector.weight, detector.logit_scale, detector.logit_bias, float(saved["threshold"]),
                            saved["fitted_on"])
    except (OSError, ValueError, KeyError, TypeError):  # not cached yet, or a damaged entry: computed again
        pass
    photos = shipped_pictures()
    charts = [image for _, image in non_paintings(CALIBRATION_IMAGES, seed=1, kinds=CHART_KINDS)]
    paintings = clf.extract(brushwork(CALIBRATION_IMAGES), None, "Detector calibration").features
    others = clf.extract([*(photos.paths if photos else []), *charts], None, "Detector calibration")
    basis = (f"{len(paintings)} generated paintings against {len(photos.paths) if photos else 0} shipped photographs "
             f"and {len(charts)} generated charts and documents")
    calibrated = calibrate(detector, paintings, others.features[others.ok], basis)
    atomic_write_bytes(path, json.dumps({"threshold": calibrated.threshold, "fitted_on": calibrated.fitted_on}).encode())
    return calibrated


def _key(parts: list) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]


def _text_backbones():
    from ..features.backbones import available_backbones

    return [i for i in available_backbones() if i.text]
