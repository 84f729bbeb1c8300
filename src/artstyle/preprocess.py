"""Network input preparation: decoded RGB image -> normalised CHW float array.

Recorded in every model bundle and part of every feature-cache key, because features
computed under other preprocessing are different features.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

_INTERPOLATION = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class Preprocessing:
    """Resize the shortest side to `size`, centre-crop a square, scale to [0,1], normalise."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"

    def __post_init__(self) -> None:
        if self.interpolation not in _INTERPOLATION:
            raise ValueError(f"unknown interpolation {self.interpolation!r}")

    def __call__(self, img: Image.Image) -> np.ndarray:
        """(3, size, size) float32 array for an RGB image."""
        width, height = img.size
        scale = self.size / min(width, height)
        new_w = max(self.size, round(width * scale))
        new_h = max(self.size, round(height * scale))
        img = img.resize((new_w, new_h), _INTERPOLATION[self.interpolation])
        left, top = (new_w - self.size) // 2, (new_h - self.size) // 2
        img = img.crop((left, top, left + self.size, top + self.size))
        arr = np.asarray(img, dtype=np.float32) * (1.0 / 255.0)
        arr = (arr - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(arr.transpose(2, 0, 1))

    def to_dict(self) -> dict:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocessing":
        return cls(
            size=int(data["size"]),
            mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
            interpolation=str(data.get("interpolation", "bicubic")),
        )

    def fingerprint(self) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
