"""Heads rebuilt from a model folder's tensors, every kind (size bands wrap another head):
what reading a folder needs of `head` and `size_bands`, apart from both."""

from __future__ import annotations

import numpy as np

from ..errors import ArtstyleError
from .head import CosineHead, Head, LinearHead, MLPHead
from .size_bands import SizeBandHead
from .text_prior import TextPrior


def head_from_tensors(kind: str, tensors: dict[str, np.ndarray], temperature: float) -> Head:
    """Rebuild a head saved with `tensors()`; shapes are checked."""
    if kind == "size_bands":
        try:
            return SizeBandHead.from_tensors(tensors, temperature, lambda t, temp: head_from_tensors(_kind_of(t), t, temp))
        except (KeyError, ValueError) as exc:
            raise ArtstyleError(f"size band head tensors are incomplete or inconsistent ({exc})") from None
    t = {k: np.asarray(v, np.float32) for k, v in tensors.items()}
    common = {"mean": t["feature_mean"], "scale": t["feature_scale"], "temperature": float(temperature),
              "prior": TextPrior.from_tensors(t)}
    d = common["mean"].shape[0]
    if common["scale"].shape != (d,):
        raise ArtstyleError("head tensors have inconsistent shapes")
    if kind == "linear":
        head: Head = LinearHead(**common, weight=t["weight"], bias=t["bias"])
        ok = t["weight"].shape[1:] == (d,) and t["bias"].shape == (t["weight"].shape[0],)
    elif kind == "mlp":
        head = MLPHead(**common, weight1=t["weight1"], bias1=t["bias1"], weight2=t["weight2"], bias2=t["bias2"])
        h = t["weight1"].shape[0]
        ok = (t["weight1"].shape == (h, d) and t["bias1"].shape == (h,)
              and t["weight2"].shape[1:] == (h,) and t["bias2"].shape == (t["weight2"].shape[0],))
    elif kind == "cosine":
        head = CosineHead(**common, weight=t["weight"], logit_scale=t["logit_scale"], logit_bias=t["logit_bias"])
        ok = t["weight"].shape[1] <= d and t["logit_scale"].shape == t["logit_bias"].shape == (1,)
    else:
        raise ArtstyleError(f"unknown head type {kind!r}")
    prior = common["prior"]
    if prior is not None and not (prior.weight.shape[0] == prior.mix.shape[0] == head.n_classes
                                  and prior.weight.shape[1] <= d):
        ok = False
    if not ok:
        raise ArtstyleError("head tensors have inconsistent shapes")
    return head


def _kind_of(tensors: dict[str, np.ndarray]) -> str:
    """The head type whose tensors these are (a size-band head's base stores no type of its own)."""
    return "mlp" if "weight1" in tensors else "cosine" if "logit_scale" in tensors else "linear"
