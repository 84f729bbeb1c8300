"""A Markdown model card written from a bundle: what a user must know before trusting it.

Everything comes from the bundle itself (config, metrics, splits.csv), so the card of a
retrained model is regenerated, never edited by hand (`artstyle info MODEL --format markdown`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..data.labels import PANDORA_MOVEMENTS, count_artists
from ..data.splits import parse_splits_csv
from ..model.bundle import Bundle
from ..model.calibration import Abstention
from ..model.metrics import family_text, share_text, wilson_interval

TOP_CONFUSIONS = 8


def _dataset_name(dataset: dict) -> str:
    """The training folder's name (older model folders recorded its path instead)."""
    name = dataset.get("name") or dataset.get("root")
    return Path(name).name if name else "?"


def trained_on(config: dict, splits_csv: str) -> str:
    """'351 images by 98 artists from paintings (57 more held out for test)': the images the
    head learnt from, counted the one way `train`, `info`, the card and the report all use
    (placeholder artists such as "unknown" are not counted as painters)."""
    rows = parse_splits_csv(splits_csv)
    trained = [r for r in rows if r["split"] in ("train", "val")]
    dataset = config.get("dataset", {})
    sources = Counter(r.get("source", "") for r in trained)
    where = (" and ".join(f"{name} ({n:,})" for name, n in sources.items()) if len(sources) > 1
             else _dataset_name(dataset))
    held = len(rows) - len(trained)
    return (f"{len(trained):,} images by {count_artists(r['artist'] for r in trained):,} artists from {where}"
            + (f" ({held:,} more held out for test)" if held else ""))


def split_summary(split: dict) -> str:
    """'by artist (seed 0): 5,750 train, 658 test'; movements left untested named."""
    counts = split.get("counts") or {}
    parts = ", ".join(f"{n:,} {part}" for part, n in counts.items() if n) or "no images"
    mode = split.get("mode") or "?"
    mode = {"artist": "by artist", "stratified": "by image"}.get(mode, mode)
    untested = split.get("untested") or []
    return f"{mode} (seed {split.get('seed', '?')}): {parts}" + (f"; untested: {', '.join(untested)}" if untested else "")


def size_bands_summary(bands: dict) -> str:
    """How the model treats full-size pictures apart from small ones (`model/size_bands.py`)."""
    before, after = bands["held_out_before"]["full size"], bands["held_out_after"]["full size"]
    f1 = bands["full_size_bias_macro_f1"]
    bias = ("full-size pictures also get a per-movement correction, kept because it raised their cross-fitted "
            f"macro-F1 from {f1['without']:.3f} to {f1['with']:.3f}" if bands["full_size_bias"] else
            "a per-movement correction for full-size pictures was tried and left out (cross-fitted macro-F1 "
            f"{f1['with']:.3f} with it, {f1['without']:.3f} without)")
    return (f"each size band has its own temperature, fitted on held-out paintings "
            f"({bands['held_out_paintings']['full size']} full-size, {bands['held_out_paintings']['small']} small); "
            f"{bias}. On the full-size ones: top-1 {before['accuracy']:.1%} -> {after['accuracy']:.1%}, "
            f"ECE {before['ece']:.3f} -> {after['ece']:.3f}")


def temperature_summary(config: dict) -> str:
    """'1.23', or one per size band when the model has them."""
    bands = config["head"].get("size_bands")
    if bands:
        return ", ".join(f"{t:.2f} ({band} pictures)" for band, t in bands["temperature"].items())
    return f"{config['temperature']:.2f}"


def _pct(value: float) -> str:
    return f"{value:.0%}"


def of_count(n: int | None) -> str:
    """' of 12,386' after a rate: the count it was measured on, when recorded."""
    return f" of {n:,}" if n else " of the"


def _data_section(bundle: Bundle) -> list[str]:
    rows = parse_splits_csv(bundle.splits_csv)
    images = Counter(r["label"] for r in rows)
    artists = {label: count_artists(r["artist"] for r in rows if r["label"] == label) for label in images}
    missing = [m for m in PANDORA_MOVEMENTS if m not in bundle.config["labels"]]
    lines = [
        "## Training data", "",
        f"{trained_on(bundle.config, bundle.splits_csv)}, {len(bundle.config['labels'])} movements "
        "(the table counts every image of the folder, held out or not):", "",
        "| movement | paintings | artists |", "|---|---:|---:|",
        *(f"| {label} | {images[label]} | {artists[label]} |" for label in bundle.config["labels"]),
    ]
    sources = Counter(r.get("source", "") for r in rows)
    if len(sources) > 1:
        lines += ["", "From " + ", ".join(f"`{name}` ({n})" for name, n in sources.items()) + "."]
    sizes = (bundle.config.get("sizes") or {}).get("short_side")
    if sizes:
        lines += ["", f"Shortest side of the training paintings: median {sizes['median']} px "
                  f"(10% under {sizes['p10']} px, 10% over {sizes['p90']} px)."]
    variants = bundle.config.get("size_variants")
    if variants:
        lines += ["", f"Each training painting larger than that was also seen shrunk, {variants['copies']} times, to a "
                  f"shortest side of {variants['low']}-{variants['high']} px, so that thumbnails get the answer the "
                  f"full-size painting gets; movements, sources and artists were weighted by "
                  f"`{bundle.config.get('balance', 'class')}` balancing."]
    held_out = sum(r["split"] == "test" for r in rows)
    if held_out:
        lines += ["", f"{held_out} of them were held out for testing; the head never saw them."]
    if missing:
        lines += ["", f"Never predicted (no training paintings): {', '.join(missing)}."]
    return lines


def finetune_summary(record: dict) -> str:
    """One line on how a backbone was fine-tuned (for `info` and the model card)."""
    recipe = record["recipe"]
    history = {h["epoch"]: h for h in record.get("history", [])}
    kept = record.get("kept_epoch", record.get("best_epoch"))  # records made before kept_epoch kept the best
    val = (f", validation accuracy {history[kept]['val_accuracy']:.0%} on {record['val_images']} images by other artists"
           if history.get(kept, {}).get("val_accuracy") is not None else "")
    return (f"{record['stages_trained']} of {record['stages']} stages of {record['base']} trained on "
            f"{record['train_images']} paintings for {record['epochs_run']} epochs (kept epoch {kept}"
            f"{val}); AdamW, lr {recipe['lr']:g} at the top x{recipe['layer_decay']:g} per stage below, "
            f"label smoothing {recipe['label_smoothing']:g}, {record['device']}, {record['seconds']:.0f} s")


def similar_summary(info: dict) -> str:
    """What the model's similarity index holds, in one line."""
    return (f"an index of its {info['count']} training paintings ({info['dim']} numbers each"
            f"{', with thumbnails' if info['thumbnails'] else ', no thumbnails'}"
            f"{', approximate search' if info['approximate'] else ''})")


def precision_summary(config: dict, here: bool = False) -> str:
    """The model's embedding precisions in one line: fp32, or also the int8 one `artstyle
    quantize` added, with its weight range, calibration and agreement with fp32; with
    `here`, which one runs on this machine by default."""
    from ..features.int8 import graph_weight_range, int8_pays_here

    records = [b["graph_int8"].get("quantization", {}) for b in config["features"]["backbones"] if b.get("graph_int8")]
    if len(records) < len(config["features"]["backbones"]):
        return "fp32 (no int8 embedding; `artstyle quantize` adds one)"
    q = records[0]
    weight_range = graph_weight_range(q)
    agreement = q.get("agreement", {})
    same = (f", same top movement as fp32 on {agreement['same_top1']:.0%} of {agreement['paintings']} other paintings "
            f"(largest probability change {agreement['max_abs_diff']:.2f})" if agreement.get("paintings") else "")
    needs = "AVX-512 VNNI or ARM dot products" if weight_range == "full" else "AVX2 or ARM dot products"
    if here:
        runs = ("; int8 runs by default here (--precision fp32 to avoid it)" if int8_pays_here(weight_range=weight_range)
                else f"; fp32 runs by default here: this CPU lacks {needs} (--precision int8 forces int8)")
    else:
        runs = f"; int8 runs by default on CPUs with {needs}, fp32 elsewhere"
    return (f"fp32, and int8 ({weight_range}-range weights) calibrated on {q.get('paintings', '?')} training "
            f"paintings{same}{runs}")


def _model_section(config: dict) -> list[str]:
    features, head, abstention = config["features"], config["head"], Abstention.from_config(config)
    backbones = " + ".join(f"{b['name']}{' (fine-tuned)' if b.get('finetuned') else ''} ({b['preprocessing']['size']} px)"
                           for b in features["backbones"])
    tuned = [f"- Fine-tuned: {finetune_summary(b['finetuned'])}. Base weights `{b['finetuned']['base_weights_id']}`."
             for b in features["backbones"] if b.get("finetuned")]
    lines = [
        "## Model", "",
        f"- Features: recipe `{features['recipe']}` on {backbones}, {features.get('dim', '?')} numbers per image.",
        *tuned,
        f"- Embedding precision: {precision_summary(config)}.",
        f"- Head: {head.get('kind', head['type'])} (regularisation {head.get('alpha', '?')}), chosen by "
        f"{head.get('cv_folds', '?')}-fold cross-validation by {config['split'].get('cv_grouping', 'artist')}; "
        f"temperature {temperature_summary(config)}.",
        *([f"- Size bands: {size_bands_summary(head['size_bands'])}."] if head.get("size_bands") else []),
        f"- Flags (`uncertain`, `mixed`): {abstention.describe()}.",
    ]
    if config.get("similar"):
        lines.append(f"- Similar paintings (`artstyle similar`): {similar_summary(config['similar'])}.")
    sure = head.get("held_out", {})
    if sure.get("accuracy_when_sure") is not None:
        lines.append(
            f"- When the model is sure (not `uncertain`), it is right "
            f"{share_text(sure['accuracy_when_sure'], round(sure['sure_share'] * sure['n_images']), 0)} of the time "
            f"on paintings by artists it did not see; it is sure of {share_text(sure['sure_share'], sure['n_images'], 0)} "
            f"of them (cross-validated; calibration error {sure['ece']:.3f})."
        )
    detector = head.get("painting_detector")
    if config.get("painting_detector") and detector:
        held = detector.get("held_out_paintings_flagged")
        real = detector.get("real_negatives")
        where = (f"from {real['folder']}, embedded by this model's network" if real and "folder" in real
                 else f"shipped with artstyle; sources: {', '.join(real['sources'])}" if real else "")
        taught = (f"{real['n']} real non-paintings ("
                  + ", ".join(f"{n} {kind}s" if kind != "other" else f"{n} others" for kind, n in real["counts"].items())
                  + f"; {where}) and {detector.get('generated_negatives', 0)} generated ones"
                  if real else f"{detector['negatives']} generated non-paintings only (no real ones ship for this backbone)")
        groups = detector.get("held_out_paintings_flagged_by_group", {})
        by_group = (" (" + ", ".join(f"{g.replace('|', ', ')} {_pct(rate)}" for g, rate in groups.items()) + ")"
                    if len(groups) > 1 else "")
        lines.append(
            f"- `is_painting` from a detector trained against {taught}; "
            + (f"it flags {_pct(held)}{of_count(detector.get('held_out_paintings'))} held-out paintings{by_group} and "
               f"{_pct(detector['held_out_negatives_flagged'])}{of_count(detector.get('negatives'))} held-out non-paintings."
               if held is not None else "its threshold was not validated.")
        )
        by_source = detector.get("held_out_negatives_flagged_by_source")
        if by_source:
            lines.append(f"- Non-paintings flagged when their source, with the others of its fold "
                         f"({config['head'].get('cv_folds', '?')} folds), was held out from the detector that scored them "
                         "(what a camera it never saw gets): "
                         + ", ".join(f"{name} {_pct(rate)}" for name, rate in sorted(by_source.items(), key=lambda kv: kv[1]))
                         + ".")
    return lines


def _family_lines(metrics: dict) -> list[str]:
    """The family figure and what the families are (`data.families`), when there are any."""
    family = family_text(metrics)
    if family is None:
        return []
    groups = "; ".join(f"{name}: {', '.join(movements)}" for name, movements in metrics["families"].items())
    return [f"Movement families ({groups}): {family}, right when the most probable family (the sum over its "
            "movements) holds the painting's movement.", ""]


def _scores_section(metrics: dict) -> list[str]:
    if not metrics.get("n_images"):
        return ["## Accuracy", "", "No held-out scores: too few artists to validate."]
    n = metrics["n_images"]
    lines = [
        "## Accuracy", "",
        f"Measured by {metrics.get('evaluated_on', 'a held-out split')} (shares with their 95 % Wilson interval and "
        f"number of paintings): top-1 {share_text(metrics['accuracy'], n)}, top-3 {share_text(metrics['top3_accuracy'], n)}, "
        f"macro-F1 {metrics['macro_f1']:.2f}, calibration error (ECE) {metrics['ece']:.3f}.", "",
        *_family_lines(metrics),
        "| movement | recall (95 % interval) | precision | F1 | paintings scored |", "|---|---:|---:|---:|---:|",
    ]
    for label, m in metrics["per_class"].items():
        if m["support"]:
            low, high = wilson_interval(m["recall"], m["support"])
            lines.append(f"| {label} | {m['recall']:.2f} ({low:.2f}-{high:.2f}) | {m['precision']:.2f} | {m['f1']:.2f} "
                         f"| {m['support']} |")
        else:
            lines.append(f"| {label} | untested | | | 0 |")
    for title, groups in (("size band", metrics.get("by_size")), ("source", metrics.get("by_source"))):
        if groups:
            lines += ["", f"| {title} | top-1 (95 % interval, n) | top-3 | macro-F1 | ECE |", "|---|---:|---:|---:|---:|"]
            lines += [f"| {name} | {share_text(m['accuracy'], m['n_images'])} | {m['top3_accuracy']:.2f} "
                      f"| {m['macro_f1']:.2f} | {m['ece']:.3f} |" for name, m in groups.items()]
    return lines


def _confusions_section(metrics: dict) -> list[str]:
    confusion = metrics.get("confusion")
    if not confusion:
        return []
    labels, matrix = confusion["labels"], confusion["matrix"]
    pairs = sorted(
        ((matrix[i][j], labels[i], labels[j], sum(matrix[i])) for i in range(len(labels))
         for j in range(len(labels)) if i != j and matrix[i][j]),
        key=lambda p: (-p[0], p[1], p[2]),
    )[:TOP_CONFUSIONS]
    if not pairs:
        return []
    return ["## Known confusions", "", *(f"- {true} taken for {pred}: {n} of {total}" for n, true, pred, total in pairs)]


def _honesty(config: dict, metrics: dict) -> str:
    split, evaluated_on = config.get("split", {}), metrics.get("evaluated_on", "")
    if evaluated_on == "test split":
        by_artist = split.get("mode") == "artist"
    elif "cross-validation" in evaluated_on:
        by_artist = split.get("cv_grouping") == "artist"
    else:
        return (f"- The scores above were measured on `{evaluated_on}`: they hold for new artists only if its "
                "artists are not among the training artists.")
    if by_artist:
        return ("- The scores above were measured on paintings by artists the model had not seen: expect them on new "
                "artists; paintings by the training artists score better.")
    return ("- The scores above were measured on paintings whose artists may also be in the training data: they "
            "overstate accuracy on artists the model has not seen.")


def _network_words(config: dict) -> str:
    """What the features come from, in words: frozen ImageNet EfficientNets, or otherwise."""
    backbones = config["features"]["backbones"]
    names = " + ".join(b["name"] for b in backbones)
    if any(b.get("finetuned") for b in backbones):
        return f"a network fine-tuned on these paintings ({names})"
    if all(b["name"].startswith("efficientnet_lite") for b in backbones):
        return "a frozen ImageNet network"
    return f"a frozen pretrained network ({names})"


def is_zero_shot(config: dict) -> bool:
    """Whether the folder names movements from text (`artstyle zero-shot`), with no training painting."""
    return config["head"].get("type") == "cosine"


def text_detector_summary(detector: dict) -> str:
    """How a zero-shot model decides "not a painting", in one line."""
    fitted = detector.get("fitted_on") or {}
    return (f"'not a painting' when prompts of a photo, chart or document hold over {detector['threshold']:.0%} of the "
            f"probability against those of a {', '.join(detector['painting_kinds'])}"
            + (f"; threshold chosen on {fitted['basis']} (flagging {fitted['paintings_flagged']:.0%} and "
               f"{fitted['non_paintings_flagged']:.0%} of them there)" if fitted else ""))


def _zero_shot_card(config: dict, title: str) -> str:
    """The card of a zero-shot folder: what names the movements, and that nothing measured it."""
    backbone = " + ".join(b["name"] for b in config["features"]["backbones"])
    lines = [
        f"# Model card: artstyle zero-shot model `{title}`", "",
        f"Created {config.get('created', '?')} with artstyle {config.get('artstyle_version', '?')}. Names the "
        f"movement of a picture from text alone: {backbone}'s embedding of the image against its text tower's "
        f"embedding of each movement's prompts (the mean of {len(config['head'].get('templates', []))} phrasings, "
        "e.g. \"a painting in the style of cubism.\").", "",
        "## Movements", "", f"{len(config['labels'])}: {', '.join(config['labels'])}.", "",
        "## Not a painting", "", f"- {text_detector_summary(config['painting_detector'])}." if config.get(
            "painting_detector") else "- no detector", "",
        "## Limits", "",
        "- **No painting trained or measured it**: its accuracy is unknown. Measure it on paintings of your own with "
        f"`artstyle evaluate {title} PAINTINGS` before relying on it.",
        "- Probabilities are the backbone's own softmax over the movements' prompts, not calibrated on paintings; "
        "`uncertain` and `mixed` use artstyle's default thresholds.",
    ]
    return "\n".join(lines) + "\n"


def model_card(bundle: Bundle, title: str) -> str:
    """The card as Markdown text."""
    config, metrics = bundle.config, bundle.metrics
    if is_zero_shot(config):
        return _zero_shot_card(config, title)
    n = len(parse_splits_csv(bundle.splits_csv))
    untested = metrics.get("untested") or []
    limits = [
        "## Limits", "",
        f"- Trained on {n} paintings{'' if n >= 10000 else ', not on Pandora18k (about 18,000)'}: "
        "a small collection gives rough, artist-dependent answers; read the probabilities and flags, not only the top label.",
        _honesty(config, metrics),
        "- Movements overlap and labels follow the artist's dominant style, so a painting can honestly sit between two.",
        f"- The features are {_network_words(config)}: photographs of paintings (frames, glare, perspective, "
        "cropped details) shift the answer.",
    ]
    if untested:
        limits.append(f"- Not measured (all paintings from one artist or workshop): {', '.join(untested)}.")
    sections = [
        [f"# Model card: artstyle model `{title}`", "",
         f"Created {config.get('created', '?')} with artstyle {config.get('artstyle_version', '?')}. "
         "Predicts the art movement of a painting with calibrated probabilities and the flags "
         "`uncertain`, `mixed` and `is_painting`."],
        _data_section(bundle), _model_section(config), _scores_section(metrics), _confusions_section(metrics), limits,
    ]
    return "\n\n".join("\n".join(s) for s in sections if s) + "\n"
