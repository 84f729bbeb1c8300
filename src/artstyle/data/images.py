"""Robust image decoding: any painting file people have -> an RGB PIL image, or a reason.

Real collections hold CMYK scans, 16-bit PNGs, EXIF-rotated phone photos, truncated
downloads and text files named `.jpg`. Each either decodes to RGB or raises
ImageLoadError with a short reason; nothing else escapes.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageLoadError


@dataclass(frozen=True)
class Resized:
    """An image file seen smaller: decoded, then its shortest side brought down to
    `short_side` (never up). A few bytes until decoded, so a list of thousands costs nothing."""

    path: str | os.PathLike
    short_side: int

    def __str__(self) -> str:
        return f"{os.fspath(self.path)} (at {self.short_side} px)"


ImageInput = Union[str, os.PathLike, Image.Image, Resized]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
)


def source_name(source: ImageInput, index: int) -> str:
    """How an input is named in messages: its path, or `<image N>` for an in-memory image."""
    return str(source) if isinstance(source, (str, os.PathLike, Resized)) else f"<image {index}>"


def is_image_name(name: str) -> bool:
    """Whether a file name has an extension artstyle reads (case-insensitive)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


NOT_AN_IMAGE = "not a readable image (unknown or corrupt format)"


@contextmanager
def _decoding(path: Path) -> Iterator[None]:
    """Every way opening or decoding a file can fail, as one ImageLoadError with a short
    reason and its kind: the one set of messages the CLI, the Python API and the server share."""
    try:
        if path.stat().st_size == 0:
            raise ImageLoadError("empty file (0 bytes)", "not_image")
        with warnings.catch_warnings():
            # Decoder chatter (large-but-allowed images, skipped TIFF tags) is not the
            # user's business; real failures raise, DecompressionBombError included.
            warnings.simplefilter("ignore")
            yield
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(f"refused as a decompression bomb ({exc})", "too_large") from None
    except UnidentifiedImageError:
        raise ImageLoadError(NOT_AN_IMAGE, "not_image") from None
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise ImageLoadError(os_error_reason(exc), "unreadable") from None
    except Exception as exc:  # any decoder failure is this file's problem, never the run's
        text = str(exc) or type(exc).__name__
        if "truncated" in text:
            text = "truncated image data"
        raise ImageLoadError(f"cannot decode: {text}") from None


def probe_image(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the header alone, or the ImageLoadError `load_image` would
    raise for a file that is no image, a decompression bomb or cannot be opened. Cheap:
    lets a server sort uploads before decoding any of them."""
    path = Path(path)
    with _decoding(path), Image.open(path) as img:
        width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageLoadError(f"invalid size {width}x{height}")
    return width, height


def load_image(source: ImageInput, min_side: int | None = None) -> Image.Image:
    """Decode `source` to an upright RGB image.

    With `min_side`, large files are decoded at reduced size (JPEG draft mode, or
    `reduce()` for other formats) while keeping the shortest side >= min_side, so a
    40-megapixel scan never decodes at full size.
    """
    if isinstance(source, Image.Image):
        return to_rgb(source)
    if isinstance(source, Resized):
        return shrink(load_image(source.path, min_side=source.short_side), source.short_side)
    path = Path(source)
    with _decoding(path), Image.open(path) as opened:
        img = _decode_reduced(opened, min_side)
    return to_rgb(img)


def shrink(img: Image.Image, short_side: int) -> Image.Image:
    """`img` with its shortest side at most `short_side` (aspect kept, antialiased)."""
    scale = short_side / min(img.size)
    if scale >= 1:
        return img
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.BICUBIC)


def os_error_reason(exc: OSError) -> str:
    """Short reason for a file that cannot be opened at all."""
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return f"cannot read: {exc.strerror or exc}"


def _decode_reduced(img: Image.Image, min_side: int | None) -> Image.Image:
    """Load pixels, shrinking during decode when the image is far larger than needed."""
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageLoadError(f"invalid size {width}x{height}")
    short = min(width, height)
    if min_side and short > min_side:
        if img.format == "JPEG":
            scale = min_side / short
            img.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
            img.load()
        else:
            img.load()
            factor = short // min_side
            if factor >= 2:
                img = img.reduce(factor)
    else:
        img.load()
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block must not cost the image
        return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; transparency is composited on white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode != "F" and arr.max(initial=0) > 255 else 255.0
        if mode == "F":
            top = max(float(arr.max(initial=1.0)), 1.0)
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")
