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

import json
from datetime import datetime, timezone

import numpy as np

from .. import __version__
from ..data.labels import PANDORA_MOVEMENTS
from ..errors import ArtstyleError
from ..files import atomic_write_bytes, user_cache_root
from .calibration import Abstention
from .head import CosineHead
from .negatives import non_paintings, shipped_pictures
from .prompts import TEMPLATES, cache_key, ensemble, prompts, text_embeddings
from .text_detector import CALIBRATION_IMAGES, GROUPS, TextDetector, brushwork, calibrate

CHART_KINDS = ("chart", "table", "slide", "screenshot", "page")  # the generated non-paintings a detector is calibrated on


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
    path = user_cache_root()[0] / "zero-shot" / (cache_key([*key, [list(g) for g in GROUPS], "threshold-1"]) + ".json")
    try:
        saved = json.loads(path.read_text())
        return TextDetector(detector.weight, detector.logit_scale, detector.logit_bias, float(saved["threshold"]),
                            saved["fitted_on"])
    except (OSError, ValueError, KeyError, TypeError):  # not cached yet, or a damaged entry: computed again
        pass
    shipped = shipped_pictures()
    photos = shipped.paths if shipped else []
    charts = [image for _, image in non_paintings(CALIBRATION_IMAGES, seed=1, kinds=CHART_KINDS)]
    paintings = clf.extract(brushwork(CALIBRATION_IMAGES), None, "Detector calibration")
    others = clf.extract([*photos, *charts], None, "Detector calibration")
    basis = (f"{int(paintings.ok.sum())} generated paintings against {int(others.ok[:len(photos)].sum())} shipped "
             f"photographs and {int(others.ok[len(photos):].sum())} generated charts and documents")
    calibrated = calibrate(detector, paintings.features[paintings.ok], others.features[others.ok], basis)
    atomic_write_bytes(path, json.dumps({"threshold": calibrated.threshold, "fitted_on": calibrated.fitted_on}).encode())
    return calibrated


def _text_backbones():
    from ..features.backbones import available_backbones

    return [i for i in available_backbones() if i.text]
