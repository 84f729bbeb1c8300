"""Why the model said what it said: a Grad-CAM heat-map for one movement over the painting.

Grad-CAM weighs each channel of the backbone's last feature map (a vision transformer's
patch tokens entering its last block, on their grid) by the gradient of the
movement's score (through the recipe's pooling and the trained head) and keeps the
positive sum. The multicrop recipe sees the picture's centre square twice: whole (view 0)
and as 2 x 2 tiles at twice the size; each tile's map goes to its quarter of the square
and the whole view's map is stretched over it, then the two are added, so the heat-map
has the tiles' finer grid. The model answers from the centre square of a non-square
picture; so that the map covers all of it, squares from one end to the other (as few as
cover it) are explained too, for the same movement, and the maps averaged where they
overlap.

Written here rather than with `grad-cam`/`captum`: those explain one network's own output,
while an answer here comes from several views, pooled, through a head fitted outside torch.
The torch engine runs it (gradients); ONNX Runtime has none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..data.images import ImageInput, load_image, source_name
from ..errors import ArtstyleError, ImageLoadError
from ..features.networks import token_grid

OVERLAY_ALPHA = 0.5  # heat-map weight in the overlay


@dataclass
class Explanation:
    """Heat-map of `movement` for one image: `heat` is (height, width) in [0, 1], the
    image's own size, or an error."""

    path: str
    movement: str | None = None
    probability: float | None = None
    heat: np.ndarray | None = None
    image: Image.Image | None = None
    error: str | None = None

    def overlay(self, max_side: int | None = 1024) -> Image.Image:
        """The painting with the heat-map over it (longer side at most `max_side`)."""
        if self.heat is None or self.image is None:
            raise ArtstyleError(f"{self.path}: no heat-map ({self.error})")
        return overlay(self.image, self.heat, max_side)

    def png(self, max_side: int | None = 1024) -> bytes:
        """`overlay()` as PNG bytes: what /api/explain answers (the page sets it beside the painting)."""
        return _png(self.overlay(max_side))

    def panel(self, side: int = 512) -> Image.Image:
        """The painting and its heat-map side by side, each `side` pixels on its longer side
        (small paintings are enlarged), under lines naming the movement and its probability
        and saying that the map is scaled to its own maximum, over the colour scale: what
        `artstyle explain` writes and the report shows."""
        from PIL import ImageDraw, ImageFont

        painting = self.image.convert("RGB")
        scale = side / max(painting.size)
        size = (max(1, round(painting.width * scale)), max(1, round(painting.height * scale)))
        left = painting.resize(size, Image.Resampling.LANCZOS)
        right = overlay(painting, self.heat, None).resize(size, Image.Resampling.LANCZOS)
        font = ImageFont.load_default(size=max(12, side // 28))
        line = font.size + 8
        lines = [f"Where the model saw {self.movement} ({self.probability:.0%})",
                 "brightness is relative: each map is scaled to its own maximum"]
        gap = 12
        width = max(2 * size[0] + gap, *(round(font.getlength(text)) + 4 for text in lines))
        head = line * len(lines)
        canvas = Image.new("RGB", (width, head + size[1] + 2 * line), "white")
        draw = ImageDraw.Draw(canvas)
        for i, text in enumerate(lines):
            draw.text((0, 2 + i * line), text, fill="#1f1b16" if i == 0 else "#6b6257", font=font)
        canvas.paste(left, (0, head))
        canvas.paste(right, (size[0] + gap, head))
        from matplotlib import colormaps

        ramp = (colormaps["inferno"](np.linspace(0, 1, size[0]))[:, :3] * 255).astype(np.uint8)
        top = head + size[1] + 6
        canvas.paste(Image.fromarray(np.repeat(ramp[None], line // 2, axis=0)), (size[0] + gap, top))
        draw.text((size[0] + gap, top + line // 2 + 2), "least", fill="#6b6257", font=font)
        draw.text((2 * size[0] + gap, top + line // 2 + 2), "most", fill="#6b6257", font=font, anchor="ra")
        return canvas

    def panel_png(self, side: int = 512) -> bytes:
        return _png(self.panel(side))


def _png(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def overlay(image: Image.Image, heat: np.ndarray, max_side: int | None = 1024) -> Image.Image:
    """Blend a [0, 1] heat-map (the image's size) over the image with the 'inferno' colours."""
    from matplotlib import colormaps

    image = image.convert("RGB")
    if max_side and max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side))
    heat_img = Image.fromarray((np.clip(heat, 0, 1) * 255).astype(np.uint8)).resize(image.size, Image.Resampling.BILINEAR)
    h = np.asarray(heat_img, np.float32)[..., None] / 255.0
    colours = colormaps["inferno"](h[..., 0])[..., :3] * 255.0
    base = np.asarray(image, np.float32)
    alpha = OVERLAY_ALPHA * np.sqrt(h)  # cold parts stay readable
    return Image.fromarray(np.clip(base * (1 - alpha) + colours * alpha, 0, 255).astype(np.uint8))


def _view_grid(cams: torch.Tensor, grid: int) -> torch.Tensor:
    """(views, h, w) Grad-CAMs of one image -> one map on the centre square: the tiles'
    mosaic plus the whole view's map stretched to its size."""
    whole = cams[0]
    if grid == 1:
        return whole
    h, w = whole.shape
    rows = [torch.cat(list(cams[1 + r * grid : 1 + (r + 1) * grid]), dim=1) for r in range(grid)]
    mosaic = torch.cat(rows, dim=0)
    stretched = F.interpolate(whole[None, None], size=(grid * h, grid * w), mode="bilinear", align_corners=False)[0, 0]
    return mosaic + stretched


def square_map(graph, extractors, image: Image.Image, target: int | None = None) -> tuple[np.ndarray, int, np.ndarray]:
    """(heat on the centre square at the feature-map grid, unnormalised; target class;
    probabilities) for one RGB image. `graph`: the classifier's `ProbabilityGraph` keeping
    its maps; `target` None: the most probable movement."""
    # the input asks for gradients so that the (frozen) network's maps get one
    views = [torch.from_numpy(e.preprocessing(image))[None].requires_grad_(True) for e in extractors]
    scores = graph.scores(*views)
    proba = torch.softmax(scores / graph.head.temperature, dim=1)[0].detach().numpy()
    target = int(proba.argmax()) if target is None else target
    scores[0, target].backward()
    total = None
    for embedding, extractor in zip(graph.embeddings, extractors):
        maps, grads = embedding.feature_map, embedding.feature_map.grad
        if maps.ndim == 3:  # a ViT's tokens: gradients on its patch tokens, laid out on their grid
            maps, grads = token_grid(maps, embedding.prefix), token_grid(grads, embedding.prefix)
        cams = F.relu((grads.mean(dim=(2, 3), keepdim=True) * maps).sum(dim=1)).detach()  # (views, h, w)
        if extractor.preprocessing.grid > 1 and not extractor.preprocessing.has_tiles(*image.size):
            square = cams.sum(dim=0)  # a picture too small for tiles: its "tiles" are the whole view again
        else:
            square = _view_grid(cams, extractor.preprocessing.grid)
        if total is not None and square.shape != total.shape:  # fused backbones with other grids
            square = F.interpolate(square[None, None], size=total.shape, mode="bilinear", align_corners=False)[0, 0]
        total = square if total is None else total + square
    return total.numpy(), target, proba


def windows(size: tuple[int, int]) -> list[tuple[int, int]]:
    """(left, top) of the squares (side: the short side) that cover a picture from one end
    of its long side to the other, evenly spaced and as few as do it; one for a square."""
    width, height = size
    side, long = min(width, height), max(width, height)
    n = -(-long // side)  # ceil
    starts = np.linspace(0, long - side, n).round().astype(int) if n > 1 else [0]
    return [(int(a), 0) if width >= height else (0, int(a)) for a in starts]


def cover_picture(maps: list[tuple[tuple[int, int], np.ndarray]], size: tuple[int, int]) -> np.ndarray:
    """(height, width) heat of the whole picture in [0, 1] from square maps at their
    (left, top): each resized to the short side, averaged where squares overlap."""
    width, height = size
    side = min(width, height)
    total, count = np.zeros((height, width), np.float32), np.zeros((height, width), np.float32)
    for (left, top), square in maps:
        resized = np.asarray(Image.fromarray(square.astype(np.float32)).resize((side, side), Image.Resampling.BILINEAR))
        total[top : top + side, left : left + side] += resized
        count[top : top + side, left : left + side] += 1
    heat = total / np.maximum(count, 1)
    peak = float(heat.max())
    return np.clip(heat / peak if peak > 0 else heat, 0, 1)


def place_on_image(square: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A map of a picture the model saw whole, squashed into its square (SigLIP) ->
    (height, width) map stretched back over all of it, scaled to [0, 1]."""
    resized = np.asarray(Image.fromarray(square.astype(np.float32)).resize(size, Image.Resampling.BILINEAR))
    peak = float(resized.max())
    return np.clip(resized / peak if peak > 0 else resized, 0, 1)


def picture_heat(graph, extractors, image: Image.Image, target: int | None, squash: bool) -> tuple[np.ndarray, int, np.ndarray]:
    """(heat over the whole picture in [0, 1], target class, probabilities as the model
    answers for the picture)."""
    square, target, proba = square_map(graph, extractors, image, target)
    if squash:
        return place_on_image(square, image.size), target, proba
    (width, height), side = image.size, min(image.size)
    centre = ((width - side) // 2, (height - side) // 2)  # the square the model answered from
    maps = [(centre, square)] + [
        ((left, top), square_map(graph, extractors, image.crop((left, top, left + side, top + side)), target)[0])
        for left, top in windows(image.size) if (left, top) != centre]
    return cover_picture(maps, image.size), target, proba


def explain_images(clf, images: list[ImageInput], movement: str | list[str] | None = None) -> list[Explanation]:
    """Grad-CAM heat-maps of `movement` (one for all images, one per image, or None: each
    image's predicted one) for `images`; an unreadable image gets an error instead of
    failing the rest."""
    from .export import ProbabilityGraph

    clf._check_fitted()
    labels = [str(c) for c in clf.classes_]
    wanted = movement if isinstance(movement, list) else [movement] * len(images)
    for name in wanted:
        if name is not None and name not in labels:
            raise ArtstyleError(f"unknown movement {name!r}; this model knows {', '.join(labels)}")
    extractors = clf.feature_extractors
    graph = ProbabilityGraph(clf, keep_maps=True).eval()  # builds the torch networks: gradients need them
    min_side = max(e.preprocessing.min_side for e in extractors)
    squash = extractors[0].preprocessing.resize_mode == "squash"
    results = []
    for i, source in enumerate(images):
        name = source_name(source, i)
        try:
            image = load_image(source, min_side=min_side)
        except ImageLoadError as exc:
            results.append(Explanation(name, error=str(exc)))
            continue
        target = None if wanted[i] is None else labels.index(wanted[i])
        heat, k, proba = picture_heat(graph, extractors, image, target, squash)
        results.append(Explanation(name, labels[k], float(proba[k]), heat, image))
    return results


@dataclass
class Deletion:
    """Faithfulness of one heat-map: the explained movement's probability on the whole
    painting, with its hottest cells removed, and with as many random cells removed; and
    the same for its score before the softmax (`*_score`), which does not saturate."""

    movement: str
    original: float
    hottest_removed: float
    random_removed: float
    original_score: float
    hottest_removed_score: float
    random_removed_score: float


def deletion_test(clf, image: Image.Image, movement: str | None = None, fraction: float = 0.2, draws: int = 5,
                  seed: int = 0) -> Deletion:
    """Remove (blur away) the hottest `fraction` of the cells of `movement`'s heat-map (None:
    the predicted movement's) over the centre square the model sees, then as many random
    cells (`draws` times): a faithful map loses more of the movement's probability to the
    first. The cells are the map's own grid."""
    from .export import ProbabilityGraph

    image = image.convert("RGB")
    graph = ProbabilityGraph(clf, keep_maps=True).eval()
    labels = [str(c) for c in clf.classes_]
    square, target, proba = square_map(graph, clf.feature_extractors, image,
                                       None if movement is None else labels.index(movement))
    cells = square.size
    n = max(1, round(fraction * cells))
    hottest = np.argsort(-square, axis=None, kind="stable")[:n]
    rng = np.random.default_rng(seed)
    randoms = [rng.choice(cells, n, replace=False) for _ in range(draws)]
    edited = [_paint_over(image, square.shape, chosen) for chosen in [hottest, *randoms]]
    with torch.no_grad():
        scores = graph.scores(*[torch.from_numpy(np.stack([e.preprocessing(img) for img in [image, *edited]]))
                                for e in clf.feature_extractors])
    after = torch.softmax(scores / graph.head.temperature, dim=1)[1:, target].numpy()
    score = scores[:, target].numpy()
    return Deletion(labels[target], float(proba[target]), float(after[0]), float(after[1:].mean()),
                    float(score[0]), float(score[1]), float(score[2:].mean()))


def _paint_over(image: Image.Image, grid: tuple[int, int], cells: np.ndarray) -> Image.Image:
    """`image` with the given cells of a grid over its centre square replaced by a heavy
    blur of the picture (what a cell showed is gone; no flat patches that look like a
    different kind of picture)."""
    from PIL import ImageFilter

    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    pixels = np.array(image)
    blurred = np.asarray(image.filter(ImageFilter.GaussianBlur(side / 24)))
    rows, cols = grid
    for cell in cells:
        r, c = divmod(int(cell), cols)
        y0, y1 = top + r * side // rows, top + (r + 1) * side // rows
        x0, x1 = left + c * side // cols, left + (c + 1) * side // cols
        pixels[y0:y1, x0:x1] = blurred[y0:y1, x0:x1]
    return Image.fromarray(pixels)
