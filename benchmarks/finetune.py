"""Fine-tuning benchmark: frozen vs fine-tuned backbone, on folds that keep artists apart.

    python benchmarks/finetune.py ../shared/data/paintings [../shared/data/wikiart] [--folds 3]
        [--only-fold K] [--epochs 10] [--lr 1e-4] [--keep last] [--small-share 0.25] [--device auto] [--json]

The first folder is the full-size collection, the others are extra data (WikiArt's small
copies). The artist-disjoint outer folds are those of `benchmarks/accuracy.py` (same
draw, same seed), so its frozen figures and these line up. For each outer fold both
models are trained exactly as `artstyle train` trains them (the fine-tuned one with
`--finetune`: the network learns on the training artists less a validation fifth, which
then fits the head's regularisation and temperature), and scored by the same scores as
the accuracy benchmark:

  (i)   full-size paintings of the first folder's held-out artists,
  (ii)  the extra folders' held-out paintings (when given),
  (iii) (i) with the scored paintings shrunk to a 224-px long side.

Fine-tuning is slow on a CPU (about 10 training images/s on 2 cores): `--only-fold K`
runs one outer fold, whose figures then carry their binomial standard error only. The
gain of fine-tuning is paired (same paintings), with its standard error. Fine-tuning
checkpoints every few minutes in the cache, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from accuracy import paired, score, shrunk  # the accuracy benchmark's scores, not a copy of them

from artstyle import StyleClassifier
from artstyle.data.dataset import scan_dataset
from artstyle.data.splits import make_folds
from artstyle.features.finetune import FineTuning, resolve_device

PANDORA_IMAGES = 18_038


def run(args: argparse.Namespace) -> dict:
    dataset = scan_dataset(args.data, show_progress=False)
    records = list(dataset.records)
    paths = [dataset.abspath(r) for r in records]
    keys = [r.sha256 for r in records]
    labels = sorted(dataset.labels)
    y = np.array([labels.index(r.label) for r in records])
    full = np.array([r.source == records[0].source for r in records])  # the first folder's paintings
    outer = make_folds(records, args.folds, "artist", seed=args.seed)
    folds = [args.only_fold] if args.only_fold is not None else list(range(args.folds))
    held = np.isin(outer, folds)
    device = resolve_device(args.device).type
    print(f"{len(records)} paintings ({full.sum()} full-size), {len(labels)} movements, {args.folds} artist-disjoint "
          f"folds, scoring fold(s) {folds}: {(held & full).sum()} full-size, {(held & ~full).sum()} extra; "
          f"{args.features}, head {args.head}; {torch.get_num_threads()} threads, device {device}", flush=True)
    tuning = FineTuning(stages=args.stages, epochs=args.epochs, lr=args.lr, keep=args.keep, small_share=args.small_share,
                        tile_share=args.tile_share, color_jitter=args.color_jitter, batch_size=args.batch_size,
                        patience=args.patience, seed=args.seed)
    results: dict = {}
    for arm, finetune in {"frozen": None, "fine-tuned": tuning}.items():
        proba = np.zeros((len(records), len(labels)))
        proba_small = np.zeros_like(proba)
        seconds, rates, records_tuned = [], [], []
        for fold in folds:
            start = time.perf_counter()
            clf = StyleClassifier(features=args.features, head=args.head, test_fraction=0.0, seed=args.seed,
                                  cache_dir=args.cache_dir, finetune=finetune, device=args.device,
                                  show_progress=False).fit(dataset.subset(outer != fold), non_paintings=args.non_paintings)
            seconds.append(time.perf_counter() - start)
            if clf.finetuned_:
                record = clf.finetuned_
                rates.append(record["train_images"] * record["epochs_run"] / max(record["seconds"], 1e-9))
                records_tuned.append({k: record[k] for k in ("epochs_run", "best_epoch", "kept_epoch", "history", "seconds")})
                print(f"  fold {fold}: fine-tuned {record['epochs_run']} epochs (kept {record['kept_epoch']}, lowest "
                      f"validation loss at {record['best_epoch']}) in {record['seconds']:.0f} s", flush=True)
            columns = [labels.index(c) for c in clf.classes_]
            test = np.flatnonzero(outer == fold)
            proba[np.ix_(test, columns)] = clf.predict_proba([paths[i] for i in test])
            small = np.flatnonzero((outer == fold) & full)
            proba_small[np.ix_(small, columns)] = clf.predict_proba([shrunk(paths[i], records[i].size) for i in small])
        entry = {"train_seconds_per_fold": float(np.mean(seconds)),
                 "finetune_images_per_second": float(np.mean(rates)) if rates else None, "runs": records_tuned}
        for name, mask, p in (("i", held & full, proba), ("ii", held & ~full, proba), ("iii", held & full, proba_small)):
            if mask.any():
                entry[name] = score(y[mask], p[mask], labels, [keys[i] for i in np.flatnonzero(mask)], outer[mask])
                entry[name + "_right"] = p[mask].argmax(1) == y[mask]
                m = entry[name]
                print(f"{arm:>10} ({name}): top-1 {m['top1']:.3f} +- {m['top1_se']:.3f}  top-3 {m['top3']:.3f}  "
                      f"macro-F1 {m['macro_f1']:.3f}  ECE {m['ece']:.3f}  (n {m['n']})", flush=True)
        print(f"{arm:>10}: train {np.mean(seconds):.0f} s/fold" + (f", fine-tuning {np.mean(rates):.1f} img/s" if rates else ""))
        results[arm] = entry
    gains = {}
    for name in ("i", "ii", "iii"):
        if name + "_right" in results["frozen"]:
            mean, se = paired(results["frozen"].pop(name + "_right"), results["fine-tuned"].pop(name + "_right"))
            gains[name] = {"gain": mean, "se": se}
            print(f"({name}) fine-tuned - frozen: {mean * 100:+.1f} +- {se * 100:.1f} points top-1 (paired)")
    rate = results["fine-tuned"]["finetune_images_per_second"]
    projection = PANDORA_IMAGES * 0.8 * 0.8 * args.epochs / rate / 60 if rate else None  # 80 % train x 80 % after val
    print(f"Pandora18k projection on this {device.upper()}: {projection:.0f} min for {args.epochs} epochs")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (RSS) {peak:.0f} MB")
    return {"config": {**vars(args), "data": [str(d) for d in args.data]}, "recipe": tuning.to_dict(),
            "machine": platform.processor() or platform.machine(), "device": device, "results": results,
            "gains": gains, "pandora18k_minutes": projection, "peak_rss_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, nargs="+", help="the full-size collection, then any extra data")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--only-fold", type=int, default=None, help="run and score this outer fold only")
    parser.add_argument("--features", default=None, help="recipe (default: artstyle's)")
    parser.add_argument("--head", default="logreg")
    defaults = FineTuning()
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--keep", default=defaults.keep, help="last: the schedule's end; best: lowest validation loss")
    parser.add_argument("--small-share", type=float, default=defaults.small_share)
    parser.add_argument("--tile-share", type=float, default=defaults.tile_share)
    parser.add_argument("--stages", type=int, default=None)
    parser.add_argument("--color-jitter", type=float, default=defaults.color_jitter)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--patience", type=int, default=defaults.patience, help="with --keep best")
    parser.add_argument("--non-paintings", type=Path, default=None,
                        help="non-painting images for the detector, embedded by each model's own network")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "artstyle-bench-cache")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.features is None:
        from artstyle.features.recipes import DEFAULT_RECIPE

        args.features = DEFAULT_RECIPE
    result = run(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
