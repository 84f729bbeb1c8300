"""Synthetic 'paintings' for tests: per movement a learnable look, per artist a variation.

Each style differs in palette and in mark-making (stripes, dots, short brush strokes,
colour blocks, concentric rings, scribbles), the way movements differ in palette and
brushwork; artists shift hue, scale and density, so held-out artists are new but related.
"""

from __future__ import annotations

import colorsys
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from artstyle.errors import TORCH_INSTALL, missing_torch

# What the light install leaves out (`pip install artstyle` has no PyTorch): tests that need
# it are marked `torch` (or, where every test of a module does, import it by importorskip).
TORCH_MISSING = missing_torch()
NEEDS_TORCH = f"needs PyTorch, which the light install leaves out: {TORCH_INSTALL}"

# folder name -> (base hues, mark style); folder names in several real-world spellings
STYLES = {
    "01_StripedArt": ((0.02, 0.08), "stripes"),
    "02_dot_painting": ((0.58, 0.62), "dots"),
    "03-Brush Strokes": ((0.30, 0.36), "strokes"),
    "04 Colour Blocks": ((0.0, 0.15, 0.65), "blocks"),
    "05_Rings": ((0.80, 0.88), "rings"),
    "06_Scribbles": ((0.12, 0.5), "scribbles"),
}


def _color(rng: np.random.Generator, hue: float, shift: float) -> tuple[int, int, int]:
    h = (hue + shift + rng.normal(0, 0.02)) % 1.0
    s = float(np.clip(rng.uniform(0.55, 0.95), 0, 1))
    v = float(np.clip(rng.uniform(0.45, 0.95), 0, 1))
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def paint(style: str, artist: int, seed: int, size: tuple[int, int] = (192, 160)) -> Image.Image:
    """One picture in `style` (a STYLES key) by artist number `artist`."""
    hues, marks = STYLES[style]
    rng = np.random.default_rng(seed)
    shift = 0.03 * artist
    scale = 1.0 + 0.25 * (artist % 3)
    w, h = size
    img = Image.new("RGB", size, _color(rng, hues[0], shift))
    draw = ImageDraw.Draw(img)
    pick = lambda: _color(rng, hues[int(rng.integers(len(hues)))], shift)  # noqa: E731
    if marks == "stripes":
        step = int(10 * scale)
        angle = rng.uniform(-0.4, 0.4) + artist * 0.2
        for k in range(-h, w + h, step):
            dx = math.tan(angle) * h
            draw.line([(k, 0), (k + dx, h)], fill=pick(), width=max(2, step // 2))
    elif marks == "dots":
        for _ in range(int(120 / scale)):
            x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(2, 6) * scale
            draw.ellipse([x - r, y - r, x + r, y + r], fill=pick())
    elif marks == "strokes":
        for _ in range(int(260 / scale)):
            x, y = rng.uniform(0, w), rng.uniform(0, h)
            a = rng.normal(0.8 + 0.3 * artist, 0.3)
            length = rng.uniform(6, 14) * scale
            draw.line([(x, y), (x + length * math.cos(a), y + length * math.sin(a))], fill=pick(), width=3)
    elif marks == "blocks":
        for _ in range(int(8 + 3 * artist)):
            x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
            x1, y1 = x0 + rng.uniform(20, 70) * scale, y0 + rng.uniform(20, 70) * scale
            draw.rectangle([x0, y0, x1, y1], fill=pick(), outline=(20, 20, 20), width=4)
    elif marks == "rings":
        cx, cy = rng.uniform(0.3 * w, 0.7 * w), rng.uniform(0.3 * h, 0.7 * h)
        for r in range(int(max(w, h) * 1.2), 4, -int(9 * scale)):
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=pick(), width=int(4 * scale))
    elif marks == "scribbles":
        for _ in range(int(14 + 2 * artist)):
            points = np.cumsum(rng.normal(0, 9 * scale, size=(12, 2)), axis=0) + [rng.uniform(0, w), rng.uniform(0, h)]
            draw.line([tuple(p) for p in points], fill=pick(), width=2, joint="curve")
    img = img.filter(ImageFilter.GaussianBlur(0.6))
    noise = rng.normal(0, 6, size=(h, w, 3))
    return Image.fromarray(np.clip(np.asarray(img, np.float32) + noise, 0, 255).astype(np.uint8))


def paint_crossed(kind: int, artist: int, seed: int, size: tuple[int, int] = (192, 160)) -> Image.Image:
    """Short warm and cool strokes on grey, half laid horizontally and half vertically: kind 0
    lays the warm ones flat, kind 1 the cool ones. Both kinds share palette, stroke size and
    stroke directions; only which colour runs which way tells them apart, a conjunction that
    ImageNet's pooled features blur and a trained network can learn. Artists shift the hues,
    the stroke length and the grey."""
    rng = np.random.default_rng(seed)
    grey = int(rng.uniform(90, 170))
    img = Image.new("RGB", size, (grey, grey, grey))
    draw = ImageDraw.Draw(img)
    length = 8 + 2 * (artist % 3)
    for _ in range(400):
        warm = rng.random() < 0.5
        flat = warm == (kind == 0)
        x, y = rng.uniform(0, size[0]), rng.uniform(0, size[1])
        a = rng.normal(0.0 if flat else math.pi / 2, 0.15)
        dx, dy = math.cos(a) * length / 2, math.sin(a) * length / 2
        hue = (0.03 if warm else 0.6) + 0.02 * (artist % 4)
        r, g, b = colorsys.hsv_to_rgb((hue + rng.normal(0, 0.03)) % 1.0, rng.uniform(0.6, 0.95), rng.uniform(0.6, 0.95))
        draw.line([(x - dx, y - dy), (x + dx, y + dy)], fill=(int(r * 255), int(g * 255), int(b * 255)), width=2)
    return img


TEXTURES = ("stripes", "dots", "strokes", "scribbles")


def paint_texture(marks: str, artist: int, seed: int, size: tuple[int, int] = (480, 400),
                  purity: float = 1.0) -> Image.Image:
    """A picture told apart only by its mark-making: a share `purity` of its marks are of
    kind `marks` (one of TEXTURES), the rest of any kind. Every texture draws from the same
    palette, and marks scale with the picture, so a shrunk copy is the same painting with
    less detail. Artists vary density and mark size."""
    rng = np.random.default_rng(seed)
    w, h = size
    unit = min(size) / 160  # marks in proportion to the picture
    img = Image.new("RGB", size, _color(rng, rng.random(), 0.0))
    draw = ImageDraw.Draw(img)
    scale = unit * (1.0 + 0.2 * (artist % 3))
    for _ in range(int(220 + 20 * artist)):
        kind = marks if rng.random() < purity else TEXTURES[int(rng.integers(len(TEXTURES)))]
        x, y, colour = rng.uniform(0, w), rng.uniform(0, h), _color(rng, rng.random(), 0.0)
        if kind == "stripes":
            draw.line([(x - 20 * scale, y), (x + 20 * scale, y)], fill=colour, width=max(2, int(4 * scale)))
        elif kind == "dots":
            r = rng.uniform(2, 5) * scale
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
        elif kind == "strokes":
            a, length = rng.normal(0.8, 0.25), rng.uniform(6, 12) * scale
            draw.line([(x, y), (x + length * math.cos(a), y + length * math.sin(a))], fill=colour, width=max(1, int(2 * unit)))
        else:
            points = np.cumsum(rng.normal(0, 4 * scale, size=(8, 2)), axis=0) + [x, y]
            draw.line([tuple(p) for p in points], fill=colour, width=max(1, int(unit)), joint="curve")
    return img


def make_tree(
    root: Path,
    styles: list[str] | None = None,
    artists: int = 4,
    per_artist: int = 6,
    seed: int = 0,
) -> Path:
    """Write DATA/<style>/<artist>/<n>.jpg and return DATA; the same arguments give the same files."""
    styles = styles or list(STYLES)[:4]
    for si, style in enumerate(styles):
        for a in range(artists):
            folder = root / style / f"Painter {chr(65 + a)}{si}"
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(per_artist):
                size = (int(160 + 40 * ((n + a) % 3)), int(140 + 30 * (n % 2)))
                paint(style, a, seed=seed * 100000 + si * 1000 + a * 100 + n, size=size).save(
                    folder / f"{n}.jpg", quality=90
                )
    return root


def write_png_bomb(path: Path, side: int = 30000) -> None:
    """A tiny PNG whose header claims side x side pixels: Pillow's bomb guard must refuse it."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


# Training settings for tests that are not about recipes, head choice or the painting
# detector: one view, one head kind, no generated negatives (seconds instead of minutes).
FAST = {"features": "global", "head": "logreg", "negatives": 0}
FAST_CLI = ["--features", "global", "--head", "logreg", "--negatives", "0"]



def non_paintings_for_tests(n: int = 24, seed: int = 11) -> list[tuple[str, Image.Image]]:
    """Charts, tables and slides rendered with matplotlib, flat colour and noise: a different
    renderer from the generator the painting detector learns from."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    out: list[tuple[str, Image.Image]] = []
    for i in range(n):
        kind = ("chart", "table", "slide", "flat", "noise", "plot")[i % 6]
        if kind == "flat":
            out.append((kind, Image.new("RGB", (640, 480), tuple(int(v) for v in rng.integers(0, 256, 3)))))
            continue
        if kind == "noise":
            out.append((kind, Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))))
            continue
        fig = plt.figure(figsize=(6.4, 4.8), dpi=100)
        ax = fig.add_subplot()
        if kind == "chart":
            ax.bar(range(6), rng.random(6))
        elif kind == "plot":
            ax.plot(np.cumsum(rng.normal(size=(40, 2)), axis=0))
        elif kind == "table":
            ax.axis("off")
            ax.table(cellText=np.round(rng.random((10, 4)) * 100, 1).astype(str).tolist(), loc="center")
        else:
            ax.axis("off")
            ax.text(0.05, 0.8, "Agenda", fontsize=30, transform=ax.transAxes)
            ax.text(0.05, 0.5, "- results\n- next steps", fontsize=18, transform=ax.transAxes)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        buffer.seek(0)
        out.append((kind, Image.open(buffer).convert("RGB")))
    return out


def photo_like(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A rendered scene, the way a camera sees one: sky and ground gradients, lit spheres
    and boxes with soft shadows, depth blur and sensor noise. Not a painting."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    horizon = h * rng.uniform(0.35, 0.6)
    sky = np.array(rng.uniform([90, 140, 200], [150, 190, 250]))
    ground = np.array(rng.uniform([60, 70, 40], [140, 130, 90]))
    t = np.clip(yy / horizon, 0, 1)[..., None]
    img = np.where(yy[..., None] < horizon, sky * (0.75 + 0.25 * t), ground * (0.6 + 0.4 * (yy[..., None] - horizon) / (h - horizon)))
    light = np.array([rng.uniform(-1, 1), -1.0, 0.8])
    light /= np.linalg.norm(light)
    for _ in range(int(rng.integers(2, 5))):
        cx, r = rng.uniform(0.15, 0.85) * w, rng.uniform(0.06, 0.16) * w
        cy = horizon + rng.uniform(0.2, 0.8) * (h - horizon) - r
        colour = rng.uniform(30, 230, 3)
        shadow = ((xx - cx - r * 0.6) / (1.3 * r)) ** 2 + ((yy - cy - r * 0.9) / (0.35 * r)) ** 2 < 1
        img[shadow] *= 0.55
        dx, dy = (xx - cx) / r, (yy - cy) / r
        inside = dx**2 + dy**2 < 1
        dz = np.sqrt(np.clip(1 - dx**2 - dy**2, 0, 1))
        shade = np.clip(dx * light[0] + dy * light[1] + dz * light[2], 0, 1)
        highlight = shade**40 * 255
        sphere = colour * (0.2 + 0.8 * shade[..., None]) + highlight[..., None]
        img[inside] = sphere[inside]
    img = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.5)))
    noisy = np.asarray(img, np.float64) + rng.normal(0, rng.uniform(3, 8), (h, w, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=85)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")
