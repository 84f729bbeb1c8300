"""Fine-tuning benchmark: frozen vs fine-tuned backbone, by cross-validation that keeps artists apart.

    python benchmarks/finetune.py ../shared/data/paintings [--folds 5] [--backbone efficientnet_lite0]
        [--epochs 10] [--lr 2e-4] [--layer-decay 0.8] [--stages N] [--color-jitter 0.1] [--device auto] [--json]

For each outer fold both models are trained exactly as `artstyle train` trains them (the
fine-tuned one with `--finetune`), on the other folds' artists, with the same head kind,
and scored on the held-out fold's artists: top-1, top-3, macro-F1, ECE over all folds,
training time per fold, and the fine-tuning throughput (training images per second).
On a GPU it also projects the time to fine-tune on Pandora18k (18k images) from that rate.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch

from artstyle import StyleClassifier
from artstyle.data.dataset import scan_dataset
from artstyle.data.splits import make_folds
from artstyle.features.finetune import FineTuning, resolve_device
from artstyle.model.metrics import classification_metrics

PANDORA_IMAGES = 18_038


def run(args: argparse.Namespace) -> dict:
    dataset = scan_dataset(args.data, show_progress=False)
    records = dataset.records
    labels = sorted(dataset.labels)
    outer = make_folds(records, args.folds, "artist", seed=args.seed)
    scored = outer >= 0
    print(f"{len(records)} paintings, {len(labels)} movements, {args.folds} artist-disjoint folds, "
          f"{scored.sum()} scored; {args.backbone} {args.features}, head {args.head}; "
          f"{torch.get_num_threads()} threads, device {resolve_device(args.device).type}", flush=True)
    tuning = FineTuning(stages=args.stages, epochs=args.epochs, lr=args.lr, layer_decay=args.layer_decay,
                        color_jitter=args.color_jitter, batch_size=args.batch_size, patience=args.patience,
                        seed=args.seed)
    arms = {"frozen": None, "fine-tuned": tuning}
    results = {}
    for arm, finetune in arms.items():
        proba = np.zeros((len(records), len(labels)))
        seconds, rates = [], []
        for fold in range(args.folds):
            train = dataset.subset(outer != fold)
            test = dataset.subset(outer == fold)
            start = time.perf_counter()
            clf = StyleClassifier(args.backbone, features=args.features, head=args.head, test_fraction=0.0,
                                  negatives=0, seed=args.seed, cache_dir=args.cache_dir, finetune=finetune,
                                  device=args.device, show_progress=False).fit(train)
            seconds.append(time.perf_counter() - start)
            if clf.finetuned_:
                record = clf.finetuned_
                rates.append(record["train_images"] * record["epochs_run"] / max(record["seconds"], 1e-9))
                print(f"  fold {fold}: fine-tuned {record['epochs_run']} epochs (best {record['best_epoch']}) "
                      f"in {record['seconds']:.0f} s", flush=True)
            evaluation = clf.evaluate(test, include_training=True)
            index = [labels.index(label) for label in evaluation.labels[: len(clf.classes_)]]
            scored_rows = dict(zip(evaluation.paths, evaluation.proba[:, : len(index)]))
            by_hash = {records[i].sha256: scored_rows[str(dataset.abspath(records[i]))]
                       for i in np.flatnonzero(outer == fold) if str(dataset.abspath(records[i])) in scored_rows}
            rows = np.flatnonzero(outer == fold)
            assert all(records[i].sha256 in by_hash for i in rows), "an image of the test fold could not be read"
            for i in rows:  # evaluate scores an image filed under two movements once: both rows get it
                proba[i, index] = by_hash[records[i].sha256]
        y = np.array([labels.index(r.label) for r in records])
        m = classification_metrics(y[scored], proba[scored], labels, keys=[records[i].sha256 for i in np.flatnonzero(scored)])
        results[arm] = {
            "top1": m["accuracy"], "top3": m["top3_accuracy"], "macro_f1": m["macro_f1"], "ece": m["ece"],
            "train_seconds_per_fold": float(np.mean(seconds)),
            "finetune_images_per_second": float(np.mean(rates)) if rates else None,
        }
        print(f"{arm:>10}: top-1 {m['accuracy']:.3f}  top-3 {m['top3_accuracy']:.3f}  macro-F1 {m['macro_f1']:.3f}  "
              f"ECE {m['ece']:.3f}  train {np.mean(seconds):.0f} s/fold"
              + (f"  fine-tuning {np.mean(rates):.1f} img/s" if rates else ""), flush=True)
    gain = results["fine-tuned"]["top1"] - results["frozen"]["top1"]
    rate = results["fine-tuned"]["finetune_images_per_second"]
    device = resolve_device(args.device).type
    projection = PANDORA_IMAGES * 0.72 * args.epochs / rate / 60 if rate else None  # 80 % train x 90 % after val
    print(f"gain: {gain * 100:+.1f} points top-1 (ratio fine-tuned/frozen {results['fine-tuned']['top1'] / results['frozen']['top1']:.2f})")
    if device == "cuda":
        print(f"Pandora18k projection on this GPU: {projection:.0f} min for {args.epochs} epochs")
    else:
        print(f"Pandora18k projection on this CPU: {projection:.0f} min for {args.epochs} epochs (GPU not measured)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (RSS) {peak:.0f} MB")
    return {"config": {**vars(args), "data": str(args.data), "cache_dir": str(args.cache_dir)}, "recipe": tuning.to_dict(),
            "machine": platform.processor() or platform.machine(), "device": device, "results": results,
            "gain_top1": gain, "pandora18k_minutes": projection, "peak_rss_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--features", default="multicrop")
    parser.add_argument("--head", default="logreg")
    defaults = FineTuning()
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--layer-decay", type=float, default=defaults.layer_decay)
    parser.add_argument("--stages", type=int, default=None)
    parser.add_argument("--color-jitter", type=float, default=defaults.color_jitter)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--patience", type=int, default=defaults.patience,
                        help="epochs without a better validation loss before stopping (>= --epochs: never stop early)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=None, help="feature and checkpoint cache (default: the user's)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    result = run(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
