"""What the "not a painting" detector of a model learns from: generated non-paintings,
and real ones (a user's folder embedded by the model's own network, else the features
shipped for its backbones, else the photographs that ship as pictures), in the columns of
each backbone's vector that every recipe shares."""

from __future__ import annotations

import logging

import numpy as np

from ..features.recipes import get_recipe
from .negatives import GENERATED_KIND, FolderNonPaintings, non_paintings, shipped_negatives, shipped_pictures
from .painting import NonPaintings

log = logging.getLogger("artstyle")


def detector_training_data(clf, real: FolderNonPaintings | None = None) -> NonPaintings | None:
    """`StyleClassifier.non_painting_features` of `clf`: what the painting detector learns from: real non-paintings (the images of
    `real`, embedded here, else the features shipped for the backbone(s)) plus
    generated ones (None: no detector). In each backbone's global-view columns, the
    part of every recipe's vector they share, and its texture statistics when the
    real ones come with the recipe's own (photographs differ from paint in grain)."""
    if clf.negatives <= 0:
        return None
    extractors = clf.feature_extractors
    recipe = get_recipe(clf.features).name
    shipped = [shipped_negatives(e.backbone.name, e.backbone.weights_id) for e in extractors]
    ships_features = all(s is not None for s in shipped) and len({len(s.features) for s in shipped}) == 1
    missing = ", ".join(e.backbone.name for e, s in zip(extractors, shipped) if s is None)
    from_package = real is None and not ships_features and (real := shipped_pictures()) is not None
    with_stats = get_recipe(clf.features).stats and (
        real is not None or (ships_features and all(s.stats_for(recipe) is not None for s in shipped)))
    columns, offset = [], 0
    for e in extractors:
        columns.append(offset + np.arange(e.backbone.feature_dim))
        if with_stats:
            columns.append(offset + np.arange(e.dim - e.backbone.stats_dim, e.dim))
        offset += e.dim
    cols = np.concatenate(columns)
    generated = non_paintings(clf.negatives, seed=0)  # same seed: their features come from the cache
    features = clf.extract([img for _, img in generated], None, "Non-paintings").features[:, cols]
    kinds = np.array([GENERATED_KIND.get(kind, -1) for kind, _ in generated], np.int64)
    sources = np.full(len(generated), "generated", dtype=object)
    info: dict = {"generated_negatives": len(generated), "real_negatives": None,
                  "columns": "global view" + (" and texture statistics" if with_stats else "")}
    if from_package:
        log.info("no non-painting features ship for %s: its detector learns from the %d photographs that ship as "
                 "pictures (embedded once, then cached) and generated charts and documents; --non-paintings DIR "
                 "gives it more", missing or "these backbones together", len(real.paths))
    if real is not None:
        extraction = clf.extract(real.paths, None, "Shipped non-paintings" if from_package else "Real non-paintings")
        for i, reason in sorted(extraction.errors.items()):
            log.warning("%s: skipped (%s)", real.paths[i], reason)
        features = np.concatenate([features, extraction.features[extraction.ok][:, cols]])
        kinds = np.concatenate([kinds, real.kinds[extraction.ok]])
        sources = np.concatenate([sources, real.sources()[extraction.ok]])
        info["real_negatives"] = real.provenance(extraction.ok)
        if from_package:
            info["real_negatives"]["folder"] = "artstyle's shipped photographs (assets/negatives/pictures)"
    elif ships_features:
        parts = [[s.features, *([s.stats_for(recipe)] if with_stats else [])] for s in shipped]
        features = np.concatenate([features, np.concatenate([p for part in parts for p in part], axis=1)])
        kinds = np.concatenate([kinds, shipped[0].kind])
        sources = np.concatenate([sources, shipped[0].source_names()])
        info["real_negatives"] = shipped[0].provenance()
    else:
        log.warning("no real non-paintings ship for %s: the 'not a painting' detector learns from generated ones "
                    "only and will pass most photos (give it a folder of them: --non-paintings)",
                    missing or "these backbones together (their files hold different images)")
    return NonPaintings(features, kinds, cols, info, sources)
