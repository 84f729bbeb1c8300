"""How the backbone is fine-tuned: the recipe alone, without torch, so that the CLI can offer
its defaults (`artstyle train --lr/--epochs/--finetune-batch`) without importing the
training code (`finetune`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..errors import ArtstyleError

KEEPS = ("last", "best")


@dataclass(frozen=True)
class FineTuning:
    """How the backbone is trained (the recipe recorded in config.json).

    `stages`: how many of the network's stages, counted from the top, are trained
    (None: all). Each stage below the top one learns at `layer_decay` times the rate of
    the one above it; the new classifier learns at `head_lr`. Early stopping watches the
    loss on the artist-disjoint validation images (`patience` epochs): on a few dozen
    images it is a steadier guide than accuracy.
    """

    stages: int | None = None
    epochs: int = 10
    lr: float = 1e-4  # top stage
    head_lr: float = 2e-3
    layer_decay: float = 0.8
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    batch_size: int = 16
    patience: int = 3
    color_jitter: float = 0.0
    keep: str = "last"
    tile_share: float = 0.5
    small_share: float = 0.25
    small_low: int = 96
    small_high: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if self.keep not in KEEPS:
            raise ArtstyleError(f"unknown fine-tuning keep {self.keep!r}; choose one of {', '.join(KEEPS)}")
        if not (0 <= self.tile_share <= 1 and 0 <= self.small_share <= 1 and 16 <= self.small_low <= self.small_high):
            raise ArtstyleError("fine-tuning view shares must lie in [0, 1] and 16 <= small_low <= small_high")
        if self.stages is not None and self.stages < 1:
            raise ArtstyleError("fine-tuning needs at least one stage to train (or all)")
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ArtstyleError("fine-tuning epochs, batch size and patience must be at least 1")
        if not (self.lr > 0 and self.head_lr > 0 and 0 < self.layer_decay <= 1):
            raise ArtstyleError("fine-tuning rates must be positive and layer_decay in (0, 1]")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FineTuning:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
