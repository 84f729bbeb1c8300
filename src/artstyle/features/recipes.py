"""Named feature recipes: how one painting becomes one vector (`--features NAME`).

A single thumbnail shows a network content (a face, a boat); style lives in brushwork,
craquelure and palette at native resolution. Recipes add views at twice the scale and
texture statistics of intermediate layers. Backbone fusion is orthogonal: several
backbones (`--backbone a+b`) each apply the recipe and their vectors are concatenated.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import ArtstyleError
from .preprocess import Preprocessing

DEFAULT_RECIPE = "sized+texture"
# Here, not in backbones, so that the CLI can name them without importing torch.
DEFAULT_BACKBONE = "efficientnet_lite0"
ENGINES = ("auto", "torch", "onnx")  # what runs the network; auto: onnx when ONNX Runtime is installed
# Strides of the feature maps texture statistics read (where the network reports them):
# 8 and 16 are fine enough for brushwork and coarse enough for palette; "texture" recipes
# add 2 and 4 (strokes, canvas grain) and 32 (layout).
STAT_STRIDES = (8, 16)
TEXTURE_STRIDES = (2, 4, 8, 16, 32)


@dataclass(frozen=True)
class FeatureRecipe:
    """Views per image and what is pooled from them.

    grid 1: one resized view. grid 2: that view plus 2 x 2 tiles of the picture at
    twice the size; the tiles' embeddings are mean- and max-pooled next to the global one.
    stats: per-channel mean and std of intermediate maps (at `stat_strides`), averaged
    over the views.
    sized: tiles only for pictures with the pixels for them (shortest side at least
    `grid * size`); a smaller picture's tiles are its global view (see `Preprocessing`),
    so a thumbnail and the full-size painting get nearly the same vector.
    """

    name: str
    grid: int
    stats: bool
    description: str
    sized: bool = False
    stat_strides: tuple[int, ...] = STAT_STRIDES

    def preprocessing(self, base: Preprocessing) -> Preprocessing:
        """The backbone's preprocessing with this recipe's views."""
        return replace(base, grid=self.grid, tile_min_side=self.grid * base.size if self.sized and self.grid > 1 else 0)

    def dim(self, embedding_dim: int, stats_dim: int) -> int:
        """Vector length for a backbone with these embedding and statistics sizes."""
        return embedding_dim * (3 if self.grid > 1 else 1) + (stats_dim if self.stats else 0)


RECIPES: dict[str, FeatureRecipe] = {
    r.name: r
    for r in (
        FeatureRecipe("global", 1, False, "one resized view of the whole picture (the classic thumbnail)"),
        FeatureRecipe("multicrop", 2, False, "global view + 2x2 tiles at twice the size, mean- and max-pooled"),
        FeatureRecipe("multicrop+stats", 2, True, "multicrop + mean/std of two intermediate feature maps (texture)"),
        FeatureRecipe("sized", 2, False, "multicrop where the picture has the pixels for tiles; "
                      "a small picture's global view stands in for them", sized=True),
        FeatureRecipe("sized+stats", 2, True, "sized + mean/std of two intermediate feature maps (texture)", sized=True),
        FeatureRecipe("sized+texture", 2, True, "sized + mean/std of five feature maps, strides 2 to 32 (strokes "
                      "and grain to layout)", sized=True, stat_strides=TEXTURE_STRIDES),
    )
}


def get_recipe(name: str) -> FeatureRecipe:
    if name not in RECIPES:
        raise ArtstyleError(f"unknown feature recipe {name!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[name]


def split_backbones(spec: str) -> list[str]:
    """'efficientnet_lite0+efficientnet_lite2' -> both names (fusion); one name -> [name]."""
    names = [part.strip() for part in spec.split("+")]
    if not all(names) or len(set(names)) != len(names):
        raise ArtstyleError(f"invalid backbone list {spec!r}: names joined by '+', each once")
    return names
