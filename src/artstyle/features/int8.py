"""Static int8 quantization of an exported embedding graph, and whether this CPU gains from it.

EfficientNet-Lite was designed for integer inference (ReLU6, no squeeze-excite), so its
convolutions quantize well: weights per output channel in int8, activations in uint8
with ranges measured on calibration views (ONNX Runtime's QDQ format). Three choices
are not ONNX Runtime's defaults, for measured reasons (docs/performance.md#int8):

- ONNX Runtime's basic optimisations run first, so that the constant "same" pads are
  folded into the convolutions; a Pad between a dequantize and its convolution keeps
  the pair from fusing into one int8 kernel (1.1x instead of 1.8x fp32).
- Reduced range (7-bit weights): CPUs without VNNI multiply u8 x s8 pairs with a 16-bit
  saturating add, which without it bent the pooled embedding to a cosine of 0.76.
  With it the int8 graph runs the same on every x86 and ARM CPU.
- The first six convolutions stay in fp32. They run at the highest resolution, where
  a small or soft picture's detail is a few grey levels: all-int8, a head named another
  movement for 16 % of 224-px WikiArt copies (and lost 2.2 points on full-size paintings
  of unseen artists); with them in fp32, 8 % and 1.4-1.8 points, at 1.2-1.3x fp32's
  speed instead of 1.7x. Keeping the depthwise convolutions in fp32 instead made it worse.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

# What `quantize_graph` does, as recorded beside the graph in a model folder.
SCHEME = {"format": "QDQ", "weights": "int8, per output channel, reduced range", "activations": "uint8",
          "operators": ["Conv", "Clip"], "calibration": "MinMax", "fp32_convolutions": 6}
CALIBRATION_BATCH = 16
DEFAULT_CALIBRATION = 256  # training paintings that set the activation ranges


def quantize_graph(graph: bytes, views: Iterable[np.ndarray]) -> bytes:
    """The int8 version of an fp32 embedding graph, its activation ranges measured on
    `views`: batches of preprocessed (N, 3, size, size) float32 views."""
    import onnx
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Views(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = ({"images": np.ascontiguousarray(v, np.float32)} for v in views)

        def get_next(self):
            return next(self.batches, None)

    root, advice = logging.getLogger(), _QuantizerAdvice()
    with tempfile.TemporaryDirectory(prefix="artstyle-int8-") as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(source)
        options.log_severity_level = 3
        onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        convolutions = [n.name for n in onnx.load(str(source)).graph.node if n.op_type == "Conv"]
        root.addFilter(advice)  # its "consider pre-processing" advice: the optimisations above are that
        try:
            quantize_static(str(source), str(target), Views(), quant_format=QuantFormat.QDQ, per_channel=True,
                            reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=list(SCHEME["operators"]),
                            nodes_to_exclude=convolutions[: SCHEME["fp32_convolutions"]])
        finally:
            root.removeFilter(advice)
        return target.read_bytes()


class _QuantizerAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "onnxruntime/quantization" not in record.pathname.replace("\\", "/")


def cpu_features() -> dict[str, bool]:
    """The instruction sets numpy detected on this CPU (empty where it does not say)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # numpy < 2
        try:
            from numpy.core._multiarray_umath import __cpu_features__
        except ImportError:
            return {}
    return dict(__cpu_features__)


def int8_pays_here(features: dict[str, bool] | None = None) -> bool:
    """Whether this CPU has the integer dot products that make int8 faster than fp32:
    AVX2 on x86 (1.2-1.4x end to end measured on one without VNNI), ASIMD dot products on ARM."""
    features = cpu_features() if features is None else features
    return bool(features.get("AVX2") or features.get("ASIMDDP"))


PRECISIONS = ("auto", "fp32", "int8")


def choose_precision(asked: str, available: bool, engine: str, model: str) -> str:
    """The precision a loaded model runs at: `asked` ("auto": int8 where `model` carries
    an int8 graph, the engine is onnx and the CPU gains from it), given whether the folder
    has int8 graphs and the resolved engine."""
    from ..errors import ArtstyleError

    if asked not in PRECISIONS:
        raise ArtstyleError(f"unknown precision {asked!r}; choose one of {', '.join(PRECISIONS)}")
    if asked == "int8":
        if not available:
            raise ArtstyleError(f"{model}: has no int8 embedding; write one with `artstyle quantize {model} DATA`")
        if engine != "onnx":
            raise ArtstyleError("precision int8 runs on the onnx engine (ONNX Runtime), not on torch")
        return "int8"
    return "int8" if asked == "auto" and available and engine == "onnx" and int8_pays_here() else "fp32"
