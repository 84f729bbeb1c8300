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

RESIZE_MODES = ("crop", "shortest", "squash")
_INTERPOLATION = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class Preprocessing:
    """Views of an image, each `size` pixels square, scaled to [0,1] and normalised.

    View 0 is the whole picture (shortest side resized to `size`, centre square).
    With `grid` > 1 the picture is also resized to `grid * size` and its centre square
    cut into grid x grid tiles: near-native detail where brushwork and texture show.
    A picture whose shortest side is under `tile_min_side` has no such detail: its tiles
    would be upscaled blur, which a model learns as "small picture" rather than as style.
    Its tile views are then copies of view 0 (the whole picture), and the network runs once.

    `resize_mode` follows open_clip's `pretrained.py`: "crop" (artstyle's own centre square,
    resampled from the square alone), "shortest" (torchvision's `Resize(size)` then
    `CenterCrop`, as timm and open_clip cut it, pixel for pixel) or "squash" (the whole
    picture resized to a square, as SigLIP was trained).
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    grid: int = 1
    tile_min_side: int = 0  # 0: tiles at any size
    resize_mode: str = "crop"

    def __post_init__(self) -> None:
        if self.interpolation not in _INTERPOLATION:
            raise ValueError(f"unknown interpolation {self.interpolation!r}")
        if self.grid < 1:
            raise ValueError("grid must be >= 1")
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"unknown resize mode {self.resize_mode!r}")

    @property
    def n_views(self) -> int:
        return 1 if self.grid == 1 else 1 + self.grid * self.grid

    @property
    def min_side(self) -> int:
        """Smallest decoded size that loses no detail (JPEG draft decoding may stop there)."""
        return self.size * self.grid

    def has_tiles(self, width: int, height: int) -> bool:
        """Whether a decoded picture of this size gets real tiles (not copies of view 0)."""
        return self.grid > 1 and min(width, height) >= self.tile_min_side

    def _square(self, img: Image.Image, side: int) -> Image.Image:
        """The centre square of `img` with its shortest side resized to `side`. Only the
        square is resampled (Pillow's `box`): the pixels of resizing the whole picture and
        cropping, but for rounding (about 1 value in 1,000 moves by one level; tested), for
        a quarter less work on a 4:3 picture."""
        if self.resize_mode != "crop":
            return self._library_square(img, side)
        width, height = img.size
        scale = side / min(width, height)
        new_w, new_h = max(side, round(width * scale)), max(side, round(height * scale))
        left, top = (new_w - side) // 2, (new_h - side) // 2
        sx, sy = width / new_w, height / new_h
        box = (left * sx, top * sy, (left + side) * sx, (top + side) * sy)
        return img.resize((side, side), _INTERPOLATION[self.interpolation], box=box)

    def _library_square(self, img: Image.Image, side: int) -> Image.Image:
        """The square as torchvision cuts it for timm and open_clip: "squash" resizes the
        whole picture; "shortest" resizes the shortest side (the long one truncated, as
        torchvision computes it), then crops the centre (offsets rounded half to even)."""
        resample = _INTERPOLATION[self.interpolation]
        if self.resize_mode == "squash":
            return img.resize((side, side), resample)
        width, height = img.size
        if width <= height:
            new_w, new_h = side, int(side * height / width)
        else:
            new_w, new_h = int(side * width / height), side
        img = img.resize((new_w, new_h), resample) if (new_w, new_h) != img.size else img
        left, top = int(round((new_w - side) / 2.0)), int(round((new_h - side) / 2.0))
        return img.crop((left, top, left + side, top + side))

    def _normalise(self, img: Image.Image, out: np.ndarray | None = None) -> np.ndarray:
        """(3, h, w) float32 of an RGB image: (pixel / 255 - mean) / std, as one multiply
        and one add per value, written into `out` when given."""
        scale = (1.0 / (255.0 * np.asarray(self.std, np.float64))).astype(np.float32)[:, None, None]
        offset = (-np.asarray(self.mean, np.float64) / np.asarray(self.std, np.float64)).astype(np.float32)[:, None, None]
        pixels = np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
        if out is None:
            out = np.empty(pixels.shape, np.float32)
        np.multiply(pixels, scale, out=out)
        out += offset
        return out

    def global_view(self, img: Image.Image) -> np.ndarray:
        """(3, size, size): the whole picture, view 0 of every recipe."""
        return self._normalise(self._square(img, self.size))

    def __call__(self, img: Image.Image) -> np.ndarray:
        """(n_views, 3, size, size) float32 array for an RGB image."""
        s = self.size
        views = np.empty((self.n_views, 3, s, s), np.float32)
        self._normalise(self._square(img, s), views[0])
        if self.grid > 1 and not self.has_tiles(*img.size):
            views[1:] = views[0]
        elif self.grid > 1:
            big = self._square(img, s * self.grid)
            for i in range(self.grid * self.grid):
                row, col = divmod(i, self.grid)
                self._normalise(big.crop((col * s, row * s, (col + 1) * s, (row + 1) * s)), views[1 + i])
        return views

    def training_view(self, img: Image.Image, rng: np.random.Generator, color_jitter: float = 0.0,
                      tile_share: float = 0.5) -> np.ndarray:
        """One random (3, size, size) view at a scale the recipe looks at (the whole picture,
        or, `tile_share` of the time, a tile at `grid` times the size where the picture gets
        tiles), slightly zoomed, anywhere in the picture, maybe mirrored: what fine-tuning
        learns from. Brushwork keeps its scale; colour changes only with `color_jitter`
        (colour is part of style)."""
        scale = self.grid if self.has_tiles(*img.size) and rng.random() < tile_share else 1
        side = round(self.size * scale * rng.uniform(1.0, 1.25))
        width, height = img.size
        factor = side / min(width, height)
        new_w, new_h = max(self.size, round(width * factor)), max(self.size, round(height * factor))
        img = img.resize((new_w, new_h), _INTERPOLATION[self.interpolation])
        left, top = int(rng.integers(0, new_w - self.size + 1)), int(rng.integers(0, new_h - self.size + 1))
        img = img.crop((left, top, left + self.size, top + self.size))
        if rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if color_jitter > 0:
            from PIL import ImageEnhance

            for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
                img = enhancer(img).enhance(float(rng.uniform(1 - color_jitter, 1 + color_jitter)))
        return self._normalise(img)

    def to_dict(self) -> dict:
        data = {**asdict(self), "mean": list(self.mean), "std": list(self.std)}
        for name, default in (("tile_min_side", 0), ("resize_mode", "crop")):
            if data[name] == default:  # as recorded before the field existed: same fingerprint, same cache
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        return cls(
            size=int(data["size"]),
            mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
            interpolation=str(data.get("interpolation", "bicubic")),
            grid=int(data.get("grid", 1)),
            tile_min_side=int(data.get("tile_min_side", 0)),
            resize_mode=str(data.get("resize_mode", "crop")),
        )

    def fingerprint(self) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
