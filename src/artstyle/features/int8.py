"""Static int8 quantization of an exported embedding graph, and whether this CPU gains from it.

EfficientNet-Lite was designed for integer inference (ReLU6, no squeeze-excite), so its
convolutions quantize well: weights per output channel in int8, activations in uint8
with ranges measured on calibration views (ONNX Runtime's QDQ format). Four choices
are not ONNX Runtime's defaults, for measured reasons (docs/notes/performance.md#int8):

- ONNX Runtime's basic optimisations run first, so that the constant "same" pads are
  folded into the convolutions; a Pad between a dequantize and its convolution keeps
  the pair from fusing into one int8 kernel (1.1x instead of 1.8x fp32).
- The weights' range follows the CPU that will run the graph. CPUs with exact integer
  dot products (x86 AVX-512 VNNI, ARM's ASIMD dot product) take full-range int8 weights:
  on one with VNNI the pooled embedding's cosine to fp32 is 0.996, against 0.987 with
  reduced range, and the graph runs 2.0x fp32 instead of 1.8x. CPUs with AVX2 alone
  multiply u8 x s8 pairs with a 16-bit saturating add, which bent full-range weights to a
  cosine of 0.76; they need reduced range (7-bit weights), which runs on every CPU. The
  range is recorded with the graph, and `auto` runs a full-range graph only where the
  products are exact.
- The convolutions up to the map at stride 4 stay in fp32 (nine on EfficientNet-Lite0).
  They run at the highest resolution, where a small or soft picture's detail is a few
  grey levels (all-int8, a head named another movement for 16 % of 224-px WikiArt
  copies), and the texture statistics of `sized+texture` read their maps directly. With
  the first six in fp32, int8 lost 1.5 points of top-1 on full-size paintings of unseen
  artists on that recipe; with nine, 0.3-0.9, still at 1.35x fp32's speed end to end.
- Each output gets the mean (fp32 - int8) of the calibration views added back: rounding
  shifts the statistics systematically (most of their error at strides 4 and 8), and a
  head trained on fp32 features reads a shift as evidence. It cut the rise in
  full-size ECE from about 0.03 to about 0.01. Measured in docs/notes/performance.md#int8.

A vision transformer (CLIP, SigLIP, DINOv2) quantizes its weight products instead: the
MatMul and Gemm nodes with a weight input go int8; attention's products of two
activations, its softmax and its layer norms stay fp32 (their ranges move with every
picture), and so does the patch embedding, its one convolution.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

WEIGHT_RANGES = ("auto", "full", "reduced")
CALIBRATION_BATCH = 16
DEFAULT_CALIBRATION = 256  # training paintings that set the activation ranges
FP32_CONVOLUTIONS = 9  # the first convolutions, up to EfficientNet-Lite0's stride-4 map, stay fp32


def scheme(weight_range: str, kind: str = "convolutional") -> dict:
    """What `quantize_graph` does with `weight_range` ("full" or "reduced") on a graph of
    `kind` (see `graph_kind`), as recorded beside the graph in a model folder."""
    if kind == "transformer":
        operators, kept = {"operators": ["MatMul", "Gemm"], "fp32_products": "activation x activation (attention)"}, {}
    else:
        operators, kept = {"operators": ["Conv", "Clip"]}, {"fp32_convolutions": FP32_CONVOLUTIONS}
    return {"format": "QDQ", "weights": f"int8, per output channel, {weight_range} range", "weight_range": weight_range,
            "activations": "uint8", **operators, "calibration": "MinMax", **kept,
            "output_correction": "mean fp32 - int8 output per value, on the calibration views"}


def graph_kind(graph: bytes) -> str:
    """"transformer" when most of the graph's weights sit in MatMul/Gemm nodes (a ViT),
    else "convolutional"."""
    import onnx

    model = onnx.load_from_string(graph)
    weights = {i.name for i in model.graph.initializer}
    products = sum(1 for n in model.graph.node if n.op_type in ("MatMul", "Gemm") and set(n.input) & weights)
    convolutions = sum(1 for n in model.graph.node if n.op_type == "Conv")
    return "transformer" if products > convolutions else "convolutional"


def graph_weight_range(quantization: dict) -> str:
    """The weight range a folder's int8 graph was written with (folders from before the
    choice existed hold reduced-range graphs)."""
    return quantization.get("weight_range", "reduced")


def quantize_graph(graph: bytes, views: Iterable[np.ndarray], weight_range: str = "auto",
                   correct_outputs: bool = True) -> bytes:
    """The int8 version of an fp32 embedding graph, its activation ranges measured on
    `views`: batches of preprocessed (N, 3, size, size) float32 views. `weight_range`
    "auto" is "full" where this CPU multiplies int8 exactly, else "reduced".

    With `correct_outputs`, each output value gets the mean of fp32 minus int8 on the
    calibration views added back (bias correction): rounding shifts the texture
    statistics of the early maps systematically, and a head trained on fp32 features
    reads a shift as evidence. The views are held in memory for that second pass (256
    paintings: up to about 0.8 GB)."""
    import onnx
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    batches = [np.ascontiguousarray(chunk, np.float32) for v in views for chunk in _chunks(v)]

    class Views(CalibrationDataReader):
        """The chunks, one range at a time (ONNX Runtime's strided calibration merges the
        min/max after each range and frees its activations)."""

        def __init__(self) -> None:
            self.set_range(0, len(batches))

        def __len__(self) -> int:
            return len(batches)

        def set_range(self, start_index: int, end_index: int) -> None:
            self.batches = ({"images": v} for v in batches[start_index:end_index])

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
        optimised = onnx.load(str(source))
        plan = scheme(resolve_weight_range(weight_range), graph_kind(graph))
        weights = {i.name for i in optimised.graph.initializer}
        if "fp32_convolutions" in plan:
            excluded = [n.name for n in optimised.graph.node if n.op_type == "Conv"][: plan["fp32_convolutions"]]
        else:  # a transformer: products of two activations stay fp32
            excluded = [n.name for n in optimised.graph.node
                        if n.op_type in ("MatMul", "Gemm") and not set(n.input) & weights]
        root.addFilter(advice)  # its "consider pre-processing" advice: the optimisations above are that
        try:
            quantize_static(str(source), str(target), Views(), quant_format=QuantFormat.QDQ, per_channel=True,
                            reduce_range=plan["weight_range"] == "reduced", activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, op_types_to_quantize=list(plan["operators"]),
                            nodes_to_exclude=excluded,
                            # ranges merged after every chunk: a ViT at 518 px keeps ~350 MB of
                            # activations per view, all chunks at once did not fit in 24 GB
                            extra_options={"CalibStridedMinMax": 1})
        finally:
            root.removeFilter(advice)
        quantized = target.read_bytes()
    return _corrected(quantized, graph, batches) if correct_outputs else quantized


CALIBRATION_PIXELS = CALIBRATION_BATCH * 224 * 224  # views of one calibration run, in 224-px equivalents


def _chunks(views: np.ndarray) -> list[np.ndarray]:
    """A batch of views cut so that each run sees about CALIBRATION_PIXELS pixels: what
    bounds the activations a calibration run holds at large input sizes."""
    per_view = int(np.prod(views.shape[-2:]))
    size = max(1, CALIBRATION_PIXELS // per_view)
    return [views[i : i + size] for i in range(0, len(views), size)]


def _corrected(quantized: bytes, graph: bytes, views: list[np.ndarray]) -> bytes:
    """`quantized` with each output shifted by the mean of (fp32 - int8) over `views`."""
    import onnx
    import onnxruntime
    from onnx import helper, numpy_helper

    sessions = [onnxruntime.InferenceSession(g, providers=["CPUExecutionProvider"]) for g in (graph, quantized)]
    sums: list[np.ndarray] | None = None
    count = 0
    for batch in views:
        fp32, int8 = (session.run(None, {"images": batch}) for session in sessions)
        diffs = [(a - b).astype(np.float64).sum(0) for a, b in zip(fp32, int8)]
        sums = diffs if sums is None else [total + d for total, d in zip(sums, diffs)]
        count += len(batch)
    if sums is None:
        return quantized
    model = onnx.load_from_string(quantized)
    for output, total in zip(model.graph.output, sums):
        raw, shift = output.name + "_uncorrected", output.name + "_correction"
        for node in model.graph.node:
            node.output[:] = [raw if name == output.name else name for name in node.output]
        model.graph.initializer.append(numpy_helper.from_array((total / count).astype(np.float32), shift))
        model.graph.node.append(helper.make_node("Add", [raw, shift], [output.name]))
    return model.SerializeToString()


class _QuantizerAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "onnxruntime/quantization" not in record.pathname.replace("\\", "/")


def cpu_features() -> dict[str, bool]:
    """The instruction sets numpy detected on this CPU (empty where it does not say)."""
    import importlib

    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):  # numpy 2, numpy < 2
        try:
            return dict(importlib.import_module(module).__cpu_features__)
        except (ImportError, AttributeError):
            continue
    return {}


def exact_int8_products(features: dict[str, bool] | None = None) -> bool:
    """Whether this CPU sums int8 products into 32 bits without saturating: AVX-512 VNNI
    on x86, ASIMD dot products on ARM."""
    features = cpu_features() if features is None else features
    return bool(features.get("AVX512VNNI") or features.get("ASIMDDP"))


def resolve_weight_range(asked: str, features: dict[str, bool] | None = None) -> str:
    """"full" or "reduced": `asked`, or for "auto" what this CPU runs accurately."""
    if asked not in WEIGHT_RANGES:
        from ..errors import ArtstyleError

        raise ArtstyleError(f"unknown weight range {asked!r}; choose one of {', '.join(WEIGHT_RANGES)}")
    if asked != "auto":
        return asked
    return "full" if exact_int8_products(features) else "reduced"


def int8_pays_here(features: dict[str, bool] | None = None, weight_range: str = "reduced") -> bool:
    """Whether this CPU runs a graph of `weight_range` faster than fp32 and as accurately
    as it was measured: a reduced-range graph wherever there are integer dot products
    (AVX2 on x86: 1.2-1.4x end to end measured on one without VNNI; ASIMD dot products on
    ARM), a full-range one only where those products are exact."""
    features = cpu_features() if features is None else features
    if weight_range == "full":
        return exact_int8_products(features)
    return bool(features.get("AVX2") or features.get("ASIMDDP"))


PRECISIONS = ("auto", "fp32", "int8")


def choose_precision(asked: str, available: bool, engine: str, model: str, weight_range: str = "reduced") -> str:
    """The precision a loaded model runs at: `asked` ("auto": int8 where `model` carries
    an int8 graph, the engine is onnx and the CPU runs that graph's `weight_range`
    accurately and faster), given whether the folder has int8 graphs and the resolved engine."""
    from ..errors import ArtstyleError

    if asked not in PRECISIONS:
        raise ArtstyleError(f"unknown precision {asked!r}; choose one of {', '.join(PRECISIONS)}")
    if asked == "int8":
        if not available:
            raise ArtstyleError(f"{model}: has no int8 embedding; write one with `artstyle quantize {model} DATA`")
        if engine != "onnx":
            raise ArtstyleError("precision int8 runs on the onnx engine (ONNX Runtime), not on torch")
        if weight_range == "full" and not exact_int8_products():
            logging.getLogger("artstyle").warning(
                "%s: its int8 weights are full-range, which this CPU (no AVX-512 VNNI or ARM dot products) sums with "
                "saturation: answers may drift from fp32; `artstyle quantize --weight-range reduced` suits it", model)
        return "int8"
    runs_here = int8_pays_here(weight_range=weight_range)
    return "int8" if asked == "auto" and available and engine == "onnx" and runs_here else "fp32"
