"""Fine-tuning: adapt the backbone's own weights to paintings before features are taken.

Frozen ImageNet features stop improving at some point; training the network itself on
the paintings moves past it. The tuned backbone then goes through the usual pipeline
(features, head, calibration, detector) like any other weights, under its own weights id.

The run is deterministic for a seed: the order of each epoch and every random crop
derive from (seed, epoch, image), so a run killed at any moment resumes from its last
checkpoint (every epoch, and every few minutes inside one) and ends where an
uninterrupted run ends. Checkpoints are single safetensors files written atomically.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.images import ImageInput, load_image, shrink
from ..errors import ArtstyleError, ImageLoadError
from ..files import atomic_write_bytes
from ..progress import progress_bar
from .backbones import Backbone
from .finetune_recipe import FineTuning
from .preprocess import Preprocessing

log = logging.getLogger("artstyle")

DEVICES = ("auto", "cpu", "cuda")
WEIGHTS_FILE = "backbone.safetensors"
_CHECKPOINT = "checkpoint.safetensors"
_ALGORITHM = 2  # bump when a change to the training loop changes its results: old checkpoints then go unused


def ignore_interrupts(_worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process, which stops them; otherwise a
    worker caught mid-transfer prints a traceback of its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass
class FineTuned:
    """A finished run: the tuned backbone's weights file and what config.json records."""

    weights: Path
    record: dict


def resolve_device(device: str) -> torch.device:
    """`auto`: the GPU when PyTorch sees one, else the CPU."""
    if device not in DEVICES:
        raise ArtstyleError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ArtstyleError("device cuda: PyTorch sees no CUDA GPU here (use --device cpu or auto)")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def stage_groups(model: nn.Module) -> list[list[str]]:
    """Parameter names per stage, input side first (timm's coarse grouping: stem, each
    block stage, the final convolution)."""
    from timm.models import group_parameters

    matcher = model.group_matcher(coarse=True) if hasattr(model, "group_matcher") else None
    if matcher is None:
        return [[name for name, _ in model.named_parameters()]]
    groups = group_parameters(model, matcher)
    return [list(names) for _, names in sorted(groups.items())]


class _Views(torch.utils.data.Dataset):
    """Decoded images cut into training views (random, style-preserving) or the central
    global view (validation). Training items are asked for as (epoch, index): the view
    depends on both, and a worker that lives across epochs must be told which one it is.
    Failures travel as data: the extraction reports them later."""

    def __init__(self, sources: Sequence[ImageInput], labels: np.ndarray, preprocessing: Preprocessing,
                 config: FineTuning, train: bool):
        self.sources, self.labels = sources, labels
        self.preprocessing, self.config, self.train = preprocessing, config, train

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, key: int | tuple[int, int]):
        epoch, index = key if self.train else (0, key)
        p = self.preprocessing
        try:
            img = load_image(self.sources[index], min_side=p.min_side if self.train else p.size)
        except ImageLoadError:
            return index, None, -1
        if self.train:
            config = self.config
            rng = np.random.default_rng([config.seed, epoch, index])
            if rng.random() < config.small_share:
                img = shrink(img, int(rng.integers(config.small_low, config.small_high + 1)))
            view = p.training_view(img, rng, config.color_jitter, config.tile_share)
        else:
            view = p.global_view(img)
        return index, view, int(self.labels[index])


class _EpochOrder(torch.utils.data.Sampler):
    """The training order of the current epoch, as (epoch, index) keys; set before each
    epoch. One DataLoader reads it all run long, so its worker is forked once, not once
    per epoch (each fork made the training process copy every page it then wrote)."""

    def __init__(self) -> None:
        self.epoch, self.order = 0, []

    def __iter__(self):
        return ((self.epoch, i) for i in self.order)

    def __len__(self) -> int:
        return len(self.order)


def _collate(items):
    good = [(i, arr, y) for i, arr, y in items if arr is not None]
    if not good:
        return None
    return torch.from_numpy(np.stack([a for _, a, _ in good])), torch.tensor([y for _, _, y in good])


def class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    """Loss weight per class, 1/sqrt(frequency), mean 1 over the images: rare movements
    count more without letting three images of one dominate the gradient."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1)), 0.0)
    weights /= (weights[y].mean() if len(y) else 1.0)
    return torch.tensor(weights, dtype=torch.float32)


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def run_key(backbone: Backbone, preprocessing: Preprocessing, config: FineTuning, train: Sequence[tuple[str, int]],
            val: Sequence[tuple[str, int]], labels: Sequence[str]) -> str:
    """Everything the tuned weights depend on, hashed: the checkpoint folder's name."""
    text = json.dumps({
        "algorithm": _ALGORITHM, "backbone": backbone.name, "weights_id": backbone.weights_id, "preprocessing": preprocessing.to_dict(),
        "config": config.to_dict(), "train": sorted(train), "val": sorted(val), "labels": list(labels),
    }, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class _Run:
    """The trainable network, optimiser and bookkeeping of one fine-tuning run."""

    def __init__(self, backbone: Backbone, n_classes: int, config: FineTuning, device: torch.device,
                 steps_per_epoch: int):
        self.config, self.device = config, device
        torch.manual_seed(config.seed)
        self.model = copy.deepcopy(backbone.model).to(device)
        self.classifier = nn.Linear(backbone.feature_dim, n_classes).to(device)
        groups = stage_groups(self.model)
        trained = groups if config.stages is None else groups[-config.stages:]
        params = dict(self.model.named_parameters())
        self.model.requires_grad_(False)
        param_groups = []
        for depth, names in enumerate(reversed(trained)):  # depth 0: the top stage
            for name in names:
                params[name].requires_grad_(True)
            param_groups.append({"params": [params[n] for n in names], "base_lr": config.lr * config.layer_decay ** depth})
        param_groups.append({"params": list(self.classifier.parameters()), "base_lr": config.head_lr})
        self.n_stages, self.n_trained = len(groups), len(trained)
        self.optimizer = torch.optim.AdamW(param_groups, lr=config.lr, weight_decay=config.weight_decay)
        self.amp = device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.total_steps = config.epochs * steps_per_epoch
        self.warmup = int(round(config.warmup_epochs * steps_per_epoch))
        self.state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best_epoch": -1, "best_score": None,
                      "history": [], "done": False, "seconds": 0.0}
        self.best: dict[str, torch.Tensor] | None = None

    def train_mode(self) -> None:
        """Trainable layers learn; batch-norm statistics stay those of ImageNet (small
        batches would make them noise)."""
        self.model.train()
        for module in self.model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            pooled = self.model.forward_head(self.model.forward_features(batch), pre_logits=True)
            return self.classifier(pooled).float()

    def step(self, batch: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module) -> float:
        factor = lr_factor(self.state["global_step"], self.total_steps, self.warmup)
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        torch.manual_seed(self.config.seed * 1_000_003 + self.state["global_step"])  # dropout, if any
        loss = loss_fn(self.logits(batch), y.to(self.device))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.state["global_step"] += 1
        self.state["step_in_epoch"] += 1
        return float(loss.detach())

    def backbone_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in self.model.state_dict().items()}

    # ------------------------------------------------------------ checkpoints
    def save(self, path: Path) -> None:
        from safetensors.torch import save

        tensors = {f"model/{k}": v for k, v in self.backbone_state().items()}
        tensors.update({f"classifier/{k}": v.detach().cpu().contiguous() for k, v in self.classifier.state_dict().items()})
        for i, param in enumerate(p for g in self.optimizer.param_groups for p in g["params"]):
            moments = self.optimizer.state.get(param)
            if moments:
                tensors[f"opt/{i}/exp_avg"] = moments["exp_avg"].detach().cpu().contiguous()
                tensors[f"opt/{i}/exp_avg_sq"] = moments["exp_avg_sq"].detach().cpu().contiguous()
        if self.best is not None:
            tensors.update({f"best/{k}": v for k, v in self.best.items()})
        state = {**self.state, "scaler": self.scaler.state_dict() if self.amp else None}
        atomic_write_bytes(path, save(tensors, metadata={"state": json.dumps(state)}))

    def restore(self, path: Path) -> bool:
        """Continue from a checkpoint; False (start afresh) when there is none or it is unreadable."""
        from safetensors import SafetensorError, safe_open

        if not path.is_file():
            return False
        try:
            with safe_open(str(path), framework="pt") as handle:
                state = json.loads(handle.metadata()["state"])
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}
            self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model/")})
            self.classifier.load_state_dict({k[11:]: v for k, v in tensors.items() if k.startswith("classifier/")})
            step = torch.tensor(float(state["global_step"]))
            for i, param in enumerate(p for g in self.optimizer.param_groups for p in g["params"]):
                if f"opt/{i}/exp_avg" in tensors:
                    self.optimizer.state[param] = {
                        "step": step.clone(),
                        "exp_avg": tensors[f"opt/{i}/exp_avg"].to(self.device),
                        "exp_avg_sq": tensors[f"opt/{i}/exp_avg_sq"].to(self.device),
                    }
            best = {k[5:]: v for k, v in tensors.items() if k.startswith("best/")}
        except (OSError, SafetensorError, KeyError, RuntimeError, ValueError) as exc:
            log.warning("%s: unreadable fine-tuning checkpoint, starting afresh (%s)", path, str(exc).splitlines()[0])
            return False
        self.best = best or None
        if self.amp and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        state.pop("scaler", None)
        self.state.update(state)
        return True


def _evaluate(run: _Run, loader) -> tuple[float, float, float]:
    """Top-1 and top-3 accuracy and mean cross-entropy of the network's own classifier on
    validation views."""
    run.model.eval()
    right, right3, loss, n = 0, 0, 0.0, 0
    with torch.no_grad():
        for batch in loader:
            if batch is None:
                continue
            logits = run.logits(batch[0])
            y = batch[1].to(run.device)
            right += int((logits.argmax(1) == y).sum())
            top3 = logits.topk(min(3, logits.shape[1]), dim=1).indices
            right3 += int((top3 == y[:, None]).any(dim=1).sum())
            loss += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
            n += len(y)
    return (right / n, right3 / n, loss / n) if n else (float("nan"),) * 3


def finetune_backbone(
    backbone: Backbone,
    preprocessing: Preprocessing,
    train: tuple[Sequence[ImageInput], np.ndarray],
    val: tuple[Sequence[ImageInput], np.ndarray],
    n_classes: int,
    config: FineTuning,
    *,
    folder: Path,
    device: str = "auto",
    workers: int = 1,
    checkpoint_seconds: float = 300.0,
    show_progress: bool = True,
) -> FineTuned:
    """Train `backbone` (with a new classifier on top) on the `train` images and labels,
    early-stopping on `val`; checkpoints and the result live in `folder`.

    `preprocessing` gives the views' size and scales (the recipe's grid). Returns the
    weights of the last epoch, or with `config.keep` "best" of the epoch with the lowest
    validation loss (the last one without validation images).
    """
    folder.mkdir(parents=True, exist_ok=True)
    weights, checkpoint = folder / WEIGHTS_FILE, folder / _CHECKPOINT
    record_path = folder / "record.json"
    if weights.is_file() and record_path.is_file():
        log.info("fine-tuned backbone reused from %s", folder)
        return FineTuned(weights, json.loads(record_path.read_text()))
    if len(train[0]) < config.batch_size:
        raise ArtstyleError(f"fine-tuning needs at least {config.batch_size} training images (batch size)")
    target = resolve_device(device)
    train_set = _Views(train[0], train[1], preprocessing, config, train=True)
    steps_per_epoch = len(train_set) // config.batch_size  # the last partial batch is dropped
    run = _Run(backbone, n_classes, config, target, steps_per_epoch)
    if run.restore(checkpoint):
        log.info("fine-tuning resumes from its checkpoint: epoch %d, step %d of %d",
                 run.state["epoch"] + 1, run.state["step_in_epoch"], steps_per_epoch)
    if not len(val[0]):
        log.warning("no validation artists left for early stopping: fine-tuning runs all %d epochs", config.epochs)
    persistent = dict(num_workers=workers, persistent_workers=workers > 0, collate_fn=_collate,
                      worker_init_fn=ignore_interrupts)
    val_loader = torch.utils.data.DataLoader(_Views(val[0], val[1], preprocessing, config, train=False),
                                             batch_size=config.batch_size * 2, **persistent)
    epoch_order = _EpochOrder()
    loader = torch.utils.data.DataLoader(train_set, batch_size=config.batch_size, sampler=epoch_order, **persistent)
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(train[1], n_classes).to(target),
                                  label_smoothing=config.label_smoothing)
    log.info("fine-tuning %d of %d stages of %s on %s: %d training, %d validation images, up to %d epochs",
             run.n_trained, run.n_stages, backbone.name, target.type, len(train_set), len(val[0]), config.epochs)
    done_images = run.state["epoch"] * steps_per_epoch * config.batch_size
    with progress_bar(config.epochs * steps_per_epoch * config.batch_size, "Fine-tuning", enabled=show_progress,
                      completed=done_images + run.state["step_in_epoch"] * config.batch_size, status=True) as advance:
        last_save, started = time.monotonic(), time.monotonic() - run.state["seconds"]
        while not run.state["done"] and run.state["epoch"] < config.epochs:
            epoch = run.state["epoch"]
            order = np.random.default_rng([config.seed, epoch]).permutation(len(train_set))
            order = order[: steps_per_epoch * config.batch_size][run.state["step_in_epoch"] * config.batch_size:]
            epoch_order.epoch, epoch_order.order = epoch, order.tolist()
            run.train_mode()
            last = run.state["history"][-1] if run.state["history"] else None
            for batch in loader:
                loss = run.step(*batch, loss_fn) if batch is not None else float("nan")
                if loss == loss:  # the epoch's mean training loss, kept across a resume
                    run.state["loss_sum"] = run.state.get("loss_sum", 0.0) + loss
                    run.state["loss_n"] = run.state.get("loss_n", 0) + 1
                val_text = f", val {last['val_accuracy']:.0%}" if last and last.get("val_accuracy") is not None else ""
                advance(config.batch_size, status=f"epoch {epoch + 1}/{config.epochs}, loss {loss:.2f}{val_text}")
                if time.monotonic() - last_save > checkpoint_seconds:
                    run.state["seconds"] = time.monotonic() - started
                    run.save(checkpoint)
                    last_save = time.monotonic()
            accuracy, top3, val_loss = _evaluate(run, val_loader) if len(val[0]) else (None, None, None)
            lr = config.lr * lr_factor(max(run.state["global_step"] - 1, 0), run.total_steps, run.warmup)
            train_loss = run.state.get("loss_sum", 0.0) / max(run.state.get("loss_n", 0), 1)
            run.state["history"].append({"epoch": epoch + 1, "train_loss": train_loss, "val_accuracy": accuracy,
                                         "val_top3": top3, "val_loss": val_loss, "lr": lr})
            score = -val_loss if val_loss is not None else float(epoch)
            if run.state["best_score"] is None or score > run.state["best_score"]:
                run.state.update(best_score=score, best_epoch=epoch + 1)
                if config.keep == "best":
                    run.best = run.backbone_state()
            run.state.update(epoch=epoch + 1, step_in_epoch=0, seconds=time.monotonic() - started, loss_sum=0.0, loss_n=0)
            if config.keep == "best" and run.state["epoch"] - run.state["best_epoch"] >= config.patience:
                log.info("early stop after epoch %d: no lower validation loss since epoch %d",
                         epoch + 1, run.state["best_epoch"])
                run.state["done"] = True
            run.save(checkpoint)
            last_save = time.monotonic()
    return _finish(run, backbone, config, folder, len(train_set), len(val[0]))


def _finish(run: _Run, backbone: Backbone, config: FineTuning, folder: Path, n_train: int, n_val: int) -> FineTuned:
    from safetensors.torch import save

    state = run.state
    record = {
        "base": backbone.name,
        "base_weights_id": backbone.weights_id,
        "recipe": config.to_dict(),
        "stages_trained": run.n_trained,
        "stages": run.n_stages,
        "epochs_run": state["epoch"],
        "best_epoch": state["best_epoch"],
        "kept_epoch": state["best_epoch"] if config.keep == "best" else state["epoch"],
        "history": state["history"],
        "train_images": n_train,
        "val_images": n_val,
        "device": run.device.type,
        "seconds": round(state["seconds"], 1),
    }
    tensors = run.best if run.best is not None else run.backbone_state()
    weights = folder / WEIGHTS_FILE
    atomic_write_bytes(weights, save(tensors, metadata={"base_weights_id": backbone.weights_id}))
    atomic_write_bytes(folder / "record.json", json.dumps(record, indent=2).encode())
    return FineTuned(weights, record)

