"""Generated non-paintings: the negatives the "is this a painting?" detector learns from.

Users drop what they have at hand onto a painting classifier: slides, charts, tables,
screenshots, scanned pages, blank or noisy frames. These are drawn here with Pillow,
deterministically from a seed, so training needs no extra data and no download.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ..data.images import is_image_name
from ..errors import ArtstyleError

_SIZES = ((640, 480), (800, 600), (1024, 768), (1280, 720), (600, 800), (900, 900))
_WORDS = (
    "results method data figure table summary revenue growth model accuracy quarter "
    "introduction conclusion analysis session report total average budget plan review "
    "team project status agenda next steps overview sales users week month year"
).split()


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _phrase(rng: np.random.Generator, n: int) -> str:
    return " ".join(rng.choice(_WORDS, size=n)).capitalize()


def _light(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in rng.integers(225, 256, size=3))
    return r, g, b


def _strong(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in rng.integers(0, 200, size=3))
    return r, g, b


def _slide(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    w, h = size
    dark = rng.random() < 0.3
    bg = _strong(rng) if dark else _light(rng)
    fg = (245, 245, 245) if dark else (20, 20, 30)
    img = Image.new("RGB", size, bg)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, w, int(h * rng.uniform(0.1, 0.2))), fill=_strong(rng))
    draw.text((w * 0.06, h * 0.03), _phrase(rng, 3), fill=(255, 255, 255), font=_font(max(16, h // 14)))
    y = h * 0.28
    for _ in range(int(rng.integers(3, 7))):
        draw.text((w * 0.08, y), _phrase(rng, int(rng.integers(3, 8))), fill=fg, font=_font(max(12, h // 24)))
        y += h * rng.uniform(0.09, 0.13)
    return img


def _chart(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    w, h = size
    img = Image.new("RGB", size, _light(rng))
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = int(w * 0.12), int(h * 0.1), int(w * 0.95), int(h * 0.85)
    draw.line((left, top, left, bottom), fill=(40, 40, 40), width=2)
    draw.line((left, bottom, right, bottom), fill=(40, 40, 40), width=2)
    for k in range(5):  # grid and tick labels
        y = bottom - (bottom - top) * k / 4
        draw.line((left, y, right, y), fill=(210, 210, 210), width=1)
        draw.text((4, y - 8), str(25 * k), fill=(60, 60, 60), font=_font(max(10, h // 40)))
    kind = rng.integers(0, 4)
    n = int(rng.integers(4, 14))
    xs = np.linspace(left + 20, right - 20, n)
    if kind == 0:  # bars
        bar = (right - left) / n * 0.6
        for x in xs:
            draw.rectangle((x - bar / 2, bottom - rng.uniform(0.1, 0.95) * (bottom - top), x + bar / 2, bottom), fill=_strong(rng))
    elif kind == 1:  # lines
        for _ in range(int(rng.integers(1, 4))):
            ys = bottom - np.clip(np.cumsum(rng.normal(0, 0.15, n)) + 0.5, 0.05, 0.95) * (bottom - top)
            draw.line(list(zip(xs, ys)), fill=_strong(rng), width=3)
    elif kind == 2:  # scatter
        colour = _strong(rng)
        for _ in range(int(rng.integers(30, 200))):
            x, y = rng.uniform(left, right), rng.uniform(top, bottom)
            draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=colour)
    else:  # pie
        img.paste(_light(rng), (0, 0, w, h))
        r = min(w, h) * 0.35
        box = (w / 2 - r, h / 2 - r, w / 2 + r, h / 2 + r)
        start = 0.0
        for share in rng.dirichlet(np.ones(int(rng.integers(3, 7)))):
            draw.pieslice(box, start, start + 360 * share, fill=_strong(rng), outline=(255, 255, 255))
            start += 360 * share
    draw.text((w * 0.3, 4), _phrase(rng, 3), fill=(20, 20, 20), font=_font(max(12, h // 28)))
    return img


def _table(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    w, h = size
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    rows, cols = int(rng.integers(6, 25)), int(rng.integers(3, 8))
    row_h, col_w = h / (rows + 1), w / cols
    font = _font(max(9, int(row_h * 0.5)))
    draw.rectangle((0, 0, w, row_h), fill=_strong(rng) if rng.random() < 0.5 else (230, 230, 230))
    for r in range(rows + 1):
        if r and r % 2 == 0 and rng.random() < 0.7:
            draw.rectangle((0, r * row_h, w, (r + 1) * row_h), fill=(242, 244, 248))
        draw.line((0, r * row_h, w, r * row_h), fill=(180, 180, 180))
        for c in range(cols):
            text = _phrase(rng, 1) if c == 0 or r == 0 else f"{rng.uniform(0, 10000):,.2f}"
            draw.text((c * col_w + 6, r * row_h + row_h * 0.2), text, fill=(20, 20, 20), font=font)
    for c in range(cols):
        draw.line((c * col_w, 0, c * col_w, h), fill=(200, 200, 200))
    return img


def _screenshot(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    w, h = size
    img = Image.new("RGB", size, _light(rng))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, w, 36), fill=(60, 60, 70))  # title bar
    draw.rectangle((0, 36, int(w * 0.2), h), fill=(235, 236, 240))  # sidebar
    font = _font(14)
    for i in range(int(rng.integers(5, 15))):
        draw.text((10, 50 + i * 26), _phrase(rng, 1), fill=(40, 40, 40), font=font)
    for _ in range(int(rng.integers(2, 6))):  # cards and buttons
        x, y = rng.uniform(w * 0.25, w * 0.7), rng.uniform(60, h * 0.8)
        draw.rounded_rectangle((x, y, x + rng.uniform(80, 300), y + rng.uniform(30, 150)), radius=8,
                               fill=_light(rng) if rng.random() < 0.6 else _strong(rng), outline=(190, 190, 200))
    y = 60.0
    while y < h - 20:
        draw.text((w * 0.25, y), _phrase(rng, int(rng.integers(4, 10))), fill=(30, 30, 30), font=font)
        y += rng.uniform(20, 40)
    return img


def _page(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    w, h = size
    paper = tuple(int(v) for v in rng.integers(235, 256) - rng.integers(0, 12, size=3))
    img = Image.new("RGB", size, paper)
    draw = ImageDraw.Draw(img)
    font = _font(max(10, h // 50))
    y = h * 0.08
    while y < h * 0.92:
        draw.text((w * 0.1, y), _phrase(rng, int(rng.integers(6, 12))), fill=(25, 25, 25), font=font)
        y += h / 45
    return img


def _flat(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    return Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 256, size=3)))


def _noise(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    w, h = size
    if rng.random() < 0.5:
        pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    else:
        grey = rng.normal(128, rng.uniform(10, 80), size=(h, w, 1))
        pixels = np.clip(np.repeat(grey, 3, axis=2), 0, 255).astype(np.uint8)
    img = Image.fromarray(pixels)
    return img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 2))) if rng.random() < 0.5 else img


def _gradient(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    w, h = size
    t = np.linspace(0, 1, w)[None, :, None] if rng.random() < 0.5 else np.linspace(0, 1, h)[:, None, None]
    a, b = rng.integers(0, 256, size=(2, 3))
    pixels = a + (b - a) * t
    return Image.fromarray(np.broadcast_to(pixels, (h, w, 3)).astype(np.uint8))


GENERATORS: dict[str, Callable[[np.random.Generator, tuple[int, int]], Image.Image]] = {
    "slide": _slide,
    "chart": _chart,
    "table": _table,
    "screenshot": _screenshot,
    "page": _page,
    "flat": _flat,
    "noise": _noise,
    "gradient": _gradient,
}


def non_paintings(n: int, seed: int = 0, kinds: tuple[str, ...] | None = None) -> list[tuple[str, Image.Image]]:
    """`n` (kind, image) pairs cycling through `kinds` (all by default); same seed, same images."""
    kinds = tuple(GENERATORS) if kinds is None else kinds
    unknown = set(kinds) - set(GENERATORS)
    if unknown:
        raise ValueError(f"unknown non-painting kinds: {', '.join(sorted(unknown))}")
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        size = _SIZES[int(rng.integers(len(_SIZES)))]
        out.append((kind, GENERATORS[kind](rng, size)))
    return out



# Real non-paintings ship as features (scripts/build_negatives.py): photos, charts and
# scanned documents, the uploads a painting classifier meets most.
NEGATIVES_DIR = Path(__file__).resolve().parent.parent / "assets" / "negatives"
REAL_KINDS = ("photo", "chart", "document")
# What a person would call each generated kind (`not_painting_kind`); blank frames have no name.
NOT_PAINTING_KINDS = ("photo", "chart/diagram", "document/screenshot")
GENERATED_KIND = {"slide": 2, "chart": 1, "table": 1, "screenshot": 2, "page": 2}
REAL_KIND = {"photo": 0, "chart": 1, "document": 2}


@dataclass
class ShippedNegatives:
    """Global-view embeddings of real non-paintings for one backbone, with kind and source,
    and the texture statistics of `stats_recipe` (None in files built before them)."""

    features: np.ndarray  # (n, embedding_dim) float32
    kind: np.ndarray  # index into NOT_PAINTING_KINDS
    source: np.ndarray  # index into sources
    sources: list[str]
    meta: dict
    stats: np.ndarray | None = None  # (n, stats_dim) float32

    def stats_for(self, recipe: str) -> np.ndarray | None:
        """The texture statistics, when they are the ones `recipe` computes."""
        return self.stats if self.stats is not None and self.meta.get("stats_recipe") == recipe else None

    def source_names(self) -> np.ndarray:
        return np.asarray(self.sources, dtype=object)[self.source]

    def provenance(self) -> dict:
        return {
            "file": f"assets/negatives/{self.meta.get('backbone')}.safetensors",
            "n": int(len(self.features)),
            "counts": json.loads(self.meta.get("counts", "{}")),
            "sources": json.loads(self.meta.get("source_counts", "{}")),
            "manifest_sha256": self.meta.get("manifest_sha256", ""),
            "built": self.meta.get("built", ""),
        }


def shipped_negatives(backbone: str, weights_id: str) -> ShippedNegatives | None:
    """The real non-paintings shipped for `backbone`, or None when none match it (another
    backbone, or other weights: their embeddings would live in another space)."""
    from safetensors import safe_open

    path = NEGATIVES_DIR / f"{backbone}.safetensors"
    if not path.is_file():
        return None
    with safe_open(str(path), framework="numpy") as handle:
        meta = handle.metadata() or {}
        if meta.get("weights_id") != weights_id:
            return None
        kinds = json.loads(meta["kinds"])
        kind = np.array([REAL_KIND[kinds[k]] for k in handle.get_tensor("kind")], np.int64)
        stats = handle.get_tensor("stats").astype(np.float32) if "stats" in handle.keys() else None
        return ShippedNegatives(handle.get_tensor("features").astype(np.float32), kind,
                                handle.get_tensor("source").astype(np.int64), json.loads(meta["sources"]), meta, stats)


def shipped_pictures() -> FolderNonPaintings | None:
    """Real photographs whose licences let them ship as pictures (scripts/build_negatives.py
    --pictures): what a backbone without shipped features embeds itself, cached like any
    image; None when this installation has none."""
    folder = NEGATIVES_DIR / "pictures"
    return folder_non_paintings(folder) if folder.is_dir() else None


@dataclass
class FolderNonPaintings:
    """A user's own non-painting images: their paths and kinds (index into
    NOT_PAINTING_KINDS, -1: none named), listed once from `folder`."""

    folder: Path
    paths: list[Path]
    kinds: np.ndarray

    def sources(self) -> np.ndarray:
        """Where each image comes from: the first folder under `folder` below its kind's
        (a camera, a site), else its kind's folder, else the folder itself."""
        names = []
        for path in self.paths:
            parts = path.relative_to(self.folder).parts[:-1]
            names.append("/".join(parts[:2]) if parts else self.folder.name)
        return np.array(names, dtype=object)

    def provenance(self, read: np.ndarray) -> dict:
        """What config.json and the model card say of them (`read`: which could be read)."""
        kinds = self.kinds[read]
        counts = {kind: int((kinds == i).sum()) for kind, i in REAL_KIND.items() if (kinds == i).any()}
        if (kinds < 0).any():
            counts["other"] = int((kinds < 0).sum())
        return {"folder": str(self.folder), "n": int(len(kinds)), "counts": counts}


def folder_non_paintings(folder: str | os.PathLike) -> FolderNonPaintings:
    """The images under `folder` and their kinds.

    An image's kind is the folder under `folder` it sits in when that is named photo,
    chart or document (the layout of scripts/build_negatives.py's input), else none (-1).
    A fine-tuned network embeds differently from the one the shipped features came from,
    so its detector needs the images themselves.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ArtstyleError(f"{root}: no such folder of non-painting images")
    paths = sorted(p for p in root.rglob("*") if p.is_file() and is_image_name(p.name))
    if not paths:
        raise ArtstyleError(f"{root}: no images in this folder of non-paintings")
    named = [p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1 else "" for p in paths]
    return FolderNonPaintings(root, paths, np.array([REAL_KIND.get(name, -1) for name in named], np.int64))
