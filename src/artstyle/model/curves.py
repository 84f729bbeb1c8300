"""A model's training curves, read from its config.json: fine-tuning per epoch (training
loss, validation loss, top-1 and top-3, learning rate) and each head kind's held-out
macro-F1 along its regularisation path. The report draws them; the model folder carries
them as TensorBoard event files, so `tensorboard --logdir MODEL` shows them as the
seed's `retrain.py` runs were watched.

The events are written with tensorboardX (protobuf and numpy, no torch); `tensorboard`
itself is only needed to look at them (`pip install 'artstyle[tensorboard]'`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

EVENTS_FILE = "tensorboard/events.out.tfevents.0.artstyle"  # one fixed name: a re-saved model replaces it

FINETUNE_SERIES = (  # history key, tag, what it is
    ("train_loss", "finetune/train_loss", "training loss"),
    ("val_loss", "finetune/val_loss", "validation loss"),
    ("val_accuracy", "finetune/val_top1", "validation top-1"),
    ("val_top3", "finetune/val_top3", "validation top-3"),
    ("lr", "finetune/learning_rate", "learning rate (top stage)"),
)


@dataclass
class Curve:
    """One scalar series: `tag` as TensorBoard names it, (step, value) points."""

    tag: str
    label: str
    points: list[tuple[int, float]]


def finetune_curves(config: dict) -> list[Curve]:
    """Fine-tuning's per-epoch series (none for a frozen backbone)."""
    backbones = config.get("features", {}).get("backbones", [])
    history = (backbones[0].get("finetuned") or {}).get("history", []) if backbones else []
    curves = []
    for key, tag, label in FINETUNE_SERIES:
        points = [(int(row["epoch"]), float(row[key])) for row in history if row.get(key) is not None]
        if points:
            curves.append(Curve(tag, label, points))
    return curves


def head_paths(config: dict) -> dict[str, list[tuple[float, float]]]:
    """Per head kind: (alpha, held-out macro-F1) from strong to weak regularisation, as
    cross-validation walked it."""
    scores = config.get("head", {}).get("held_out_macro_f1") or {}
    return {kind: [(float(alpha), float(f1)) for alpha, f1 in path.items()]
            for kind, path in scores.items() if isinstance(path, dict)}


def training_curves(config: dict) -> list[Curve]:
    """Every curve of the model: fine-tuning's, then each head kind's path (step: its
    position along the path, strong to weak)."""
    curves = finetune_curves(config)
    for kind, path in head_paths(config).items():
        curves.append(Curve(f"head/{kind}/held_out_macro_f1", f"{kind}: held-out macro-F1",
                            [(step, f1) for step, (_, f1) in enumerate(path)]))
        curves.append(Curve(f"head/{kind}/alpha", f"{kind}: regularisation strength",
                            [(step, alpha) for step, (alpha, _) in enumerate(path)]))
    return curves


def tensorboard_events(config: dict) -> bytes | None:
    """The curves as the bytes of one TensorBoard event file (None: no curves)."""
    curves = training_curves(config)
    if not curves:
        return None
    from tensorboardX import SummaryWriter

    with tempfile.TemporaryDirectory() as folder:
        writer = SummaryWriter(folder, filename_suffix=".artstyle")
        for curve in curves:
            for step, value in curve.points:
                writer.add_scalar(curve.tag, value, step)
        writer.close()
        (events,) = Path(folder).glob("events.out.tfevents.*")
        return events.read_bytes()
