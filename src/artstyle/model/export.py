"""A trained model as one ONNX graph: normalised views in, calibrated probabilities out.

For serving without Python dependencies beyond ONNX Runtime. The graph holds the
network(s), the recipe's pooling, the head and the temperature; image decoding and the
cut into views stay outside (see `Preprocessing`), as the input names say. Class names
ride along in the file's metadata (`labels`, JSON) so the columns explain themselves.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..features.extraction import pool_views
from ..features.networks import Embedding, exporting, static_same_padding
from ..files import atomic_write_bytes

OPSET = 17


class ProbabilityGraph(nn.Module):
    """A fitted classifier as a torch module: views of each backbone in, probabilities out.
    `keep_maps` keeps each backbone's last feature map for Grad-CAM (see `Embedding`);
    `constant_pads` runs copies of the networks that pad by constants, for export (see
    `static_same_padding`)."""

    def __init__(self, clf, keep_maps: bool = False, constant_pads: bool = False) -> None:
        super().__init__()
        extractors = clf.feature_extractors
        self.embeddings = nn.ModuleList(
            Embedding(static_same_padding(e.backbone.model, e.preprocessing.size) if constant_pads else e.backbone.model,
                      e.backbone.taps if e.recipe.stats else {}, keep_maps)
            for e in extractors)
        self.head = clf.head_.map_arrays(lambda a: torch.from_numpy(np.asarray(a, np.float32)))

    def forward(self, *images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.scores(*images) / self.head.temperature, dim=1)

    def scores(self, *images: torch.Tensor) -> torch.Tensor:
        """Class scores before the temperature and softmax."""
        features = []
        for embedding, views in zip(self.embeddings, images):
            n, v = views.shape[:2]
            outputs = embedding(views.reshape(n * v, *views.shape[2:]))
            stats = outputs[1].reshape(n, v, -1) if len(outputs) > 1 else None
            features.append(pool_views(outputs[0].reshape(n, v, -1), stats, xp=torch))
        return self.head.raw_scores(torch.cat(features, dim=1))


def input_names(clf) -> list[str]:
    n = len(clf.feature_extractors)
    return ["views"] if n == 1 else [f"views_{i}" for i in range(n)]


def export_onnx(clf, path: str | os.PathLike) -> Path:
    """Write `clf` (fitted or loaded) as ONNX; inputs (batch, views, 3, size, size) per backbone."""
    import onnx

    clf._check_fitted()
    graph = ProbabilityGraph(clf, constant_pads=True).eval()
    names = input_names(clf)
    examples = tuple(
        torch.zeros(2, e.preprocessing.n_views, 3, e.preprocessing.size, e.preprocessing.size)
        for e in clf.feature_extractors
    )
    buffer = io.BytesIO()
    with exporting():
        torch.onnx.export(
            graph, examples, buffer, dynamo=False, input_names=names, output_names=["probabilities"],
            opset_version=OPSET, dynamic_axes={name: {0: "batch"} for name in [*names, "probabilities"]},
        )
    model = onnx.load_from_string(buffer.getvalue())
    preprocessing = [e.preprocessing.to_dict() for e in clf.feature_extractors]
    for key, value in (("labels", list(clf.classes_)), ("preprocessing", preprocessing)):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, model.SerializeToString())
    return path
