"""Self-contained HTML evaluation report: plots and thumbnails embedded as data URIs.

One file a cataloguer can e-mail: headline numbers with their 95 % intervals and what
chance would score, slices per size band and source, recall per movement (untested ones
said as such), the confusion matrix, a reliability diagram with its counts, and the most
confident mistakes as thumbnails, each (given the classifier) beside the heat-map of the
movement it was taken for and the training paintings nearest to it: a wrong answer shows
why it looked right. Given the classifier, a section on the model closes it
(`report_model`).
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np

from ..data.labels import humanise_artist
from ..files import atomic_write_bytes
from ..model.evaluation import Evaluation
from ..model.metrics import knows_none, no_slices_reason, reliability, share_text, slices, wilson_interval
from .html_parts import cards, data_uri, figure_uri, image_uri, page, scroll_box, thumbnail_figure
from .report_model import model_section

N_MISTAKES = 12
N_NEAREST = 3


def _confusion_plot(evaluation: Evaluation) -> str:
    from matplotlib.figure import Figure

    matrix = np.asarray(evaluation.metrics["confusion"]["matrix"], dtype=float)
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    labels = evaluation.labels
    size = max(5.0, 0.45 * len(labels) + 2)
    fig = Figure(figsize=(size + 1, size))
    ax = fig.subplots()
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted movement")
    ax.set_ylabel("true movement")
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j]:
                color = "white" if normalised[i, j] > 0.5 else "black"
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=8, color=color)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    ax.set_title("Confusion matrix (counts; colour = row share)")
    return figure_uri(fig)


def _recall_plot(evaluation: Evaluation) -> str:
    """Recall per tested movement with its 95 % interval, against chance (one movement in K
    guessed at random): a movement the model misses shows, however good the average."""
    from matplotlib.figure import Figure

    per_class = evaluation.metrics["per_class"]
    labels = [label for label in evaluation.labels if per_class[label]["support"] > 0]
    recall = np.array([per_class[label]["recall"] for label in labels])
    bounds = np.array([wilson_interval(per_class[label]["recall"], per_class[label]["support"]) for label in labels])
    fig = Figure(figsize=(7, max(2.5, 0.35 * len(labels) + 1)))
    ax = fig.subplots()
    ax.barh(range(len(labels)), recall, color="#4c72b0",
            xerr=np.abs(bounds.T - recall), error_kw={"ecolor": "#333333", "capsize": 2, "linewidth": 0.8})
    ax.set_yticks(range(len(labels)), [f"{label} (n={per_class[label]['support']})" for label in labels])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.axvline(1 / len(evaluation.labels), color="#c44e52", linestyle="--",
               label=f"chance (1 in {len(evaluation.labels)})")
    ax.set_xlabel("recall: share of the movement's paintings named right (bars: 95 % interval)")
    ax.legend(loc="upper left", bbox_to_anchor=(0, -0.12 - 0.4 / len(labels)), frameon=False)  # below: never on a bar
    ax.set_title("Recall per movement")
    return figure_uri(fig)


MIN_BIN = 5  # answers a reliability bin needs before it joins the line (fewer: a hollow marker)


def _reliability_plot(evaluation: Evaluation) -> str:
    """Reliability diagram: does "70 %" come true 70 % of the time? The line joins bins of at
    least `MIN_BIN` answers; smaller bins are hollow markers (a bin of 2 says little); marker
    area grows with the answers in the bin, whose counts the table below gives."""
    from matplotlib.figure import Figure

    points = reliability(evaluation.proba, evaluation.y_true)
    fig = Figure(figsize=(5, 4.6))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="#999999", linestyle="--", label="perfect calibration")
    confidence, accuracy, count = (np.array(v) for v in zip(*points))
    big = count >= MIN_BIN
    size = 20 + 200 * count / count.max()
    if big.any():
        ax.plot(confidence[big], accuracy[big], color="#4c72b0", marker="o", markersize=0,
                label=f"this model (bins of {MIN_BIN}+ answers)")
        ax.scatter(confidence[big], accuracy[big], s=size[big], color="#4c72b0", zorder=3, clip_on=False)
    if (~big).any():
        ax.scatter(confidence[~big], accuracy[~big], s=size[~big], facecolors="none", edgecolors="#4c72b0",
                   zorder=3, clip_on=False, label=f"bins of under {MIN_BIN} answers")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.04, 1.06)
    ax.set_xlabel("top probability (confidence)")
    ax.set_ylabel("share of answers that were right")
    ax.set_title(f"Reliability (ECE {evaluation.metrics['ece']:.3f}, n = {len(evaluation.y_true)})")
    ax.legend(loc="upper left", bbox_to_anchor=(0, -0.14), frameon=False)
    return figure_uri(fig)


def _reliability_table(evaluation: Evaluation) -> str:
    rows = "".join(f"<tr><td>{c:.2f}</td><td>{a:.2f}</td><td>{n}</td></tr>"
                   for c, a, n in reliability(evaluation.proba, evaluation.y_true))
    return f"<table><tr><th>mean confidence</th><th>share right</th><th>answers</th></tr>{rows}</table>"


def confident_mistakes(evaluation: Evaluation, n: int = N_MISTAKES) -> list[tuple[int, int, float]]:
    """(row, predicted class, probability) of the wrong predictions made with most confidence."""
    if len(evaluation.y_true) == 0:
        return []
    predicted = evaluation.proba.argmax(axis=1)
    wrong = np.flatnonzero(predicted != evaluation.y_true)
    order = wrong[np.argsort(-evaluation.proba[wrong, predicted[wrong]], kind="stable")][:n]
    return [(int(i), int(predicted[i]), float(evaluation.proba[i, predicted[i]])) for i in order]


PANEL_SIDE = 254  # each half of a mistake's heat-map panel: 520 px wide in all, shown at its own size


def heat_map_note(clf, mistakes: int) -> str | None:
    """Why the mistakes come without heat-maps, when they do."""
    from ..errors import TORCH_INSTALL, missing_torch

    if not mistakes:
        return None
    if clf is None:
        return "No heat-maps or nearest paintings beside the mistakes: the report was written without the model."
    missing = missing_torch()
    return (f"No heat-maps beside the mistakes: they need PyTorch ({' and '.join(missing)} not installed): "
            f"{TORCH_INSTALL}." if missing else None)


def _mistake_context(clf, paths: list[str], predicted: list[str]) -> list[str]:
    """Per mistake: the heat-map of the predicted movement and the nearest training
    paintings, as HTML (empty without a classifier)."""
    if clf is None or not paths:
        return [""] * len(paths)
    from ..errors import missing_torch

    esc = html.escape
    has_torch = not missing_torch()  # heat-maps need the torch extra; the rest of the report does not
    index = getattr(clf, "similar_", None)
    nearest = clf.similar(paths, k=N_NEAREST) if index is not None else [None] * len(paths)
    out = []
    for path, movement, near in zip(paths, predicted, nearest):
        parts = []
        if has_torch:
            (explained,) = clf.explain([path], movement=movement)
            if explained.heat is not None:  # the painting beside where it saw the movement, with the scale
                panel = explained.panel(PANEL_SIDE)
                parts.append(f'<img class=panel width={panel.width} src="{image_uri(panel, max(panel.size))}" '
                             f'alt="where it saw {esc(movement)}">')
        if near is not None and near.neighbours:
            items = []
            for n in near.neighbours:
                image = f'<img src="{data_uri(n.thumbnail, "image/webp")}" alt="">' if n.has_thumbnail else ""
                items.append(f"<figure>{image}<figcaption><b>{esc(n.movement)}</b><br>{esc(humanise_artist(n.artist))}"
                             f"<br>{esc(os.path.basename(n.file))}<br>{n.similarity:.0%} similar</figcaption></figure>")
            kept = "" if index is not None and index.thumbnails else "<br>(this model keeps no pictures of them)"
            parts.append(f"<div><b>nearest training paintings</b>{kept}<div class=near>{''.join(items)}</div></div>")
        out.append("".join(parts))
    return out


def _share(value: float, n: int) -> str:
    """A headline card's share with its 95 % interval (the card beside it gives n)."""
    if n <= 0:
        return "not measured"
    low, high = wilson_interval(value, n)
    return f"{value:.1%} ({low:.0%}-{high:.0%})"


def _headline(m: dict, labels: list[str]) -> str:
    """The headline numbers, each share with its 95 % interval, and what chance would score."""
    n = m["n_images"]

    def share(value: float) -> str:
        return _share(value, n)

    tested = [label for label in labels if m["per_class"][label]["support"] > 0]
    largest = max((m["per_class"][label]["support"] for label in tested), default=0)
    return cards([
        ("images", n),
        ("accuracy (95 % interval)", share(m["accuracy"])),
        ("top-3 accuracy (95 % interval)", share(m["top3_accuracy"])),
        *([("movement family top-1 (95 % interval)", share(m["family_accuracy"]))] if m.get("families") else []),
        ("macro-F1", f"{m['macro_f1']:.3f}"),
        ("calibration error (ECE)", f"{m['ece']:.3f}"),
        ("chance: a random movement / the commonest", f"{1 / len(labels):.1%} / {largest / n:.1%}" if n else "-"),
    ])


def _per_movement_rows(m: dict) -> str:
    """One row per movement; one that had no images says so instead of a row of zeros."""
    esc = html.escape
    rows = []
    for label, c in m["per_class"].items():
        if c["support"] == 0:
            rows.append(f"<tr class=untested><td>{esc(label)}</td><td colspan=4 class=text>not tested: "
                        "no images of this movement</td></tr>")
            continue
        low, high = wilson_interval(c["recall"], c["support"])
        rows.append(f"<tr><td>{esc(label)}</td><td>{c['precision']:.2f}</td><td>{c['recall']:.2f} "
                    f"({low:.2f}-{high:.2f})</td><td>{c['f1']:.2f}</td><td>{c['support']}</td></tr>")
    return "".join(rows)


def _training_section(m: dict) -> str:
    """`evaluate --all`: the training images' scores apart, greyed and titled for what they are."""
    memorised = m.get("on_training_images")
    if not memorised:
        return ""
    n = memorised["n_images"]
    return (f"<section class=memorised><h2>On training images (memorised; not a measure of skill)</h2>"
            f"<p>The model learnt these {n:,} images: naming their movement shows what it remembers, not how it does "
            "on paintings it has not seen. The figures above leave them out.</p>" + cards([
                ("training images", f"{n:,}"),
                ("accuracy (95 % interval)", _share(memorised["accuracy"], n)),
                ("top-3 accuracy (95 % interval)", _share(memorised["top3_accuracy"], n)),
            ]) + "</section>")


def _heading(m: dict) -> str:
    """What the headline was measured on, or why it is no test of movements at all."""
    n = m["n_images"]
    if knows_none(m):
        flagged = m.get("flagged_not_painting", 0)
        return (f"<p class=verdict>Not a test of movements: none of these {n:,} images is of a movement the model "
                f"knows ({html.escape(', '.join(m.get('unknown_to_model', {})))}), so every movement answer is a miss "
                f"by construction. The painting detector flagged {share_text(flagged / n, n, 0)} of them as not "
                "paintings.</p>")
    return (f"<p class=verdict>Held out: {n:,} images the model never trained on"
            + (f" ({html.escape(m['evaluated_on'])})" if m.get("evaluated_on") else "") + ".</p>")


def render_report(evaluation: Evaluation, title: str, clf=None) -> str:
    """The report as one HTML string; with the classifier `clf`, a section on the model and
    its curves, and its mistakes come with heat-maps and nearest training paintings."""
    m = evaluation.metrics
    esc = html.escape
    slice_rows = "".join(
        f"<tr><td>{esc(name)}</td><td>{g['n_images']}</td><td>{share_text(g['accuracy'], g['n_images'], 0)}</td>"
        f"<td>{g['top3_accuracy']:.1%}</td><td>{g['macro_f1']:.3f}</td><td>{g['ece']:.3f}</td></tr>"
        for name, g in slices(m))
    no_slices = no_slices_reason(m)
    slice_table = ("<h2>By size band and source</h2>" + scroll_box("<table><tr><th>slice</th><th>images</th><th>accuracy "
                   "(95 % interval, n)</th><th>top-3</th><th>macro-F1</th><th>ECE (its own calibration)</th></tr>"
                   f"{slice_rows}</table>") if slice_rows else
                   f"<p class=note>{esc(no_slices)}</p>" if no_slices else "")
    mistakes = []
    worst = confident_mistakes(evaluation)
    context = _mistake_context(clf, [evaluation.paths[row] for row, _, _ in worst],
                               [evaluation.labels[predicted] for _, predicted, _ in worst])
    for (row, predicted, prob), extra in zip(worst, context):
        figure = thumbnail_figure(
            evaluation.paths[row],
            f"{esc(os.path.basename(evaluation.paths[row]))}<br>"
            f"true: <b>{esc(evaluation.labels[evaluation.y_true[row]])}</b><br>"
            f"predicted: <b>{esc(evaluation.labels[predicted])}</b> ({prob:.0%})",
        )
        mistakes.append(f"<div class=mistake>{figure}{extra}</div>")
    notes = []
    if m.get("unknown_to_model") and not knows_none(m):
        notes.append("Movements the model does not know, scored as misses: " + esc(
            ", ".join(f"{label} ({n})" for label, n in m["unknown_to_model"].items())))
    if m.get("untested"):
        notes.append(f"Not tested (no images), so nothing is known here of how the model does on: "
                     f"{esc(', '.join(m['untested']))}.")
    if m.get("in_several_movements"):
        notes.append(f"{m['in_several_movements']} image(s) are filed under several movements (the same file twice): "
                     "each is scored once and counts as right when the model names any of its movements.")
    if m.get("size_shift"):
        notes.append(f"These images are {m['size_shift']:g}x the size of the training images (median short side): "
                     "the scores may not hold for images of the training size.")
    if m.get("excluded_training_images") and not m.get("on_training_images"):
        notes.append(f"{m['excluded_training_images']} of the folder's images are training images of this model, "
                     "left out of the scores (<code>evaluate --all</code> scores them apart, as memorised).")
    heat_note = heat_map_note(clf, len(worst))
    if heat_note:
        notes.append(esc(heat_note))
    if m.get("skipped"):
        notes.append(f"{len(m['skipped'])} unreadable file(s) skipped: " + esc(
            "; ".join(f"{s['path']}: {s['reason']}" for s in m["skipped"][:20])))
    scored = m["n_images"] > 0
    confusion = _confusion_plot(evaluation) if scored else ""
    recall = _recall_plot(evaluation) if scored else ""
    calibration = _reliability_plot(evaluation) if scored else ""
    model = (model_section(clf.config_, getattr(clf, "splits_csv_", None))
             if clf is not None and getattr(clf, "config_", None) else "")
    return page(title, f"""{_heading(m)}{_headline(m, evaluation.labels)}
<p class=note>Intervals are 95 % Wilson intervals: with {m['n_images']} images, a share is known to within about
±{100 * (wilson_interval(0.5, m['n_images'])[1] - 0.5):.0f} points.</p>
{''.join(f'<p class=note>{n}</p>' for n in notes)}
{_training_section(m)}
{slice_table}
<h2>Per movement</h2>{f'<img class=plot alt="recall per movement" src="{recall}">' if recall else ''}
{scroll_box(f"<table><tr><th>movement</th><th>precision</th><th>recall (95 % interval)</th><th>F1</th><th>images</th></tr>{_per_movement_rows(m)}</table>")}
<h2>Confusion matrix</h2>{f'<img class=plot alt="confusion matrix" src="{confusion}">' if confusion else '<p>No images scored.</p>'}
<h2>Calibration</h2>{f'<img class=plot alt="reliability diagram" src="{calibration}">' + scroll_box(_reliability_table(evaluation)) if calibration else ''}
<p class=note>Points on the diagonal mean the probabilities can be taken at their word; below it the model is over-confident, above it under-confident. A bin of a few answers says little.</p>
<h2>Most confident mistakes</h2>{''.join(mistakes) or '<p>None.</p>'}
{model}""")


def write_report(evaluation: Evaluation, path: str | os.PathLike, title: str = "artstyle evaluation", clf=None) -> Path:
    target = Path(path).expanduser()
    atomic_write_bytes(target, render_report(evaluation, title, clf).encode())
    return target
