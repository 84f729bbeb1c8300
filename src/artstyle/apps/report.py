"""Self-contained HTML evaluation report: plots and thumbnails embedded as data URIs.

One file a cataloguer can e-mail: headline numbers, confusion-matrix heat-map,
per-class F1 bars, a reliability diagram, and the most confident mistakes as thumbnails,
each (given the classifier) beside the heat-map of the movement it was taken for and the
training paintings nearest to it: a wrong answer shows why it looked right.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np

from ..files import atomic_write_bytes
from ..model.classifier import Evaluation
from ..model.metrics import reliability, slices
from .html_parts import cards, data_uri, figure_uri, image_uri, page, thumbnail_figure

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
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=8, color=color)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    ax.set_title("Confusion matrix (counts; colour = row share)")
    return figure_uri(fig)


def _f1_plot(evaluation: Evaluation) -> str:
    from matplotlib.figure import Figure

    per_class = evaluation.metrics["per_class"]
    labels = [label for label in evaluation.labels if per_class[label]["support"] > 0]
    f1 = [per_class[label]["f1"] for label in labels]
    fig = Figure(figsize=(7, max(2.5, 0.35 * len(labels) + 1)))
    ax = fig.subplots()
    ax.barh(range(len(labels)), f1, color="#4c72b0")
    ax.set_yticks(range(len(labels)), [f"{l} (n={per_class[l]['support']})" for l in labels])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.axvline(evaluation.metrics["macro_f1"], color="#c44e52", linestyle="--", label="macro-F1")
    ax.set_xlabel("F1")
    ax.legend(loc="lower right")
    ax.set_title("F1 per movement")
    return figure_uri(fig)


def _reliability_plot(evaluation: Evaluation) -> str:
    """Reliability diagram: does "70 %" come true 70 % of the time? Dot size = answers in the bin."""
    from matplotlib.figure import Figure

    points = reliability(evaluation.proba, evaluation.y_true)
    fig = Figure(figsize=(5, 4.6))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="#999999", linestyle="--", label="perfect calibration")
    confidence, accuracy, count = (np.array(v) for v in zip(*points))
    ax.plot(confidence, accuracy, color="#4c72b0", marker="o", markersize=0, label="this model")
    ax.scatter(confidence, accuracy, s=20 + 200 * count / count.max(), color="#4c72b0", zorder=3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("top probability (confidence)")
    ax.set_ylabel("share of answers that were right")
    ax.set_title(f"Reliability (ECE {evaluation.metrics['ece']:.3f})")
    ax.legend(loc="upper left")
    return figure_uri(fig)


def confident_mistakes(evaluation: Evaluation, n: int = N_MISTAKES) -> list[tuple[int, int, float]]:
    """(row, predicted class, probability) of the wrong predictions made with most confidence."""
    if len(evaluation.y_true) == 0:
        return []
    predicted = evaluation.proba.argmax(axis=1)
    wrong = np.flatnonzero(predicted != evaluation.y_true)
    order = wrong[np.argsort(-evaluation.proba[wrong, predicted[wrong]], kind="stable")][:n]
    return [(int(i), int(predicted[i]), float(evaluation.proba[i, predicted[i]])) for i in order]


def _mistake_context(clf, paths: list[str], predicted: list[str]) -> list[str]:
    """Per mistake: the heat-map of the predicted movement and the nearest training
    paintings, as HTML (empty without a classifier)."""
    if clf is None or not paths:
        return [""] * len(paths)
    esc = html.escape
    index = getattr(clf, "similar_", None)
    nearest = clf.similar(paths, k=N_NEAREST) if index is not None else [None] * len(paths)
    out = []
    for path, movement, near in zip(paths, predicted, nearest):
        (explained,) = clf.explain([path], movement=movement)
        parts = []
        if explained.heat is not None:
            parts.append(f'<figure><img src="{image_uri(explained.overlay(320), 160)}" alt="heat-map">'
                         f"<figcaption>where it saw <b>{esc(movement)}</b></figcaption></figure>")
        if near is not None and near.neighbours:
            items = []
            for n in near.neighbours:
                thumb = index.thumbnails[n.index] if index.thumbnails else b""
                image = f'<img src="{data_uri(thumb, "image/webp")}" alt="">' if thumb else "<div class=noimg></div>"
                items.append(f"<figure>{image}<figcaption><b>{esc(n.movement)}</b><br>{esc(n.artist)}<br>"
                             f"{esc(os.path.basename(n.file))} ({n.similarity:.2f})</figcaption></figure>")
            parts.append(f"<div><b>nearest training paintings</b><div class=near>{''.join(items)}</div></div>")
        out.append("".join(parts))
    return out


def render_report(evaluation: Evaluation, title: str, clf=None) -> str:
    """The report as one HTML string; with the classifier `clf`, its mistakes come with
    heat-maps and nearest training paintings."""
    m = evaluation.metrics
    esc = html.escape
    headline = cards([
        ("images", m["n_images"]),
        ("accuracy", f"{m['accuracy']:.1%}"),
        ("top-3 accuracy", f"{m['top3_accuracy']:.1%}"),
        ("macro-F1", f"{m['macro_f1']:.3f}"),
        ("calibration error (ECE)", f"{m['ece']:.3f}"),
    ])
    rows = "".join(
        f"<tr><td>{esc(label)}</td><td>{c['precision']:.2f}</td><td>{c['recall']:.2f}</td>"
        f"<td>{c['f1']:.2f}</td><td>{c['support']}</td></tr>"
        for label, c in m["per_class"].items()
    )
    slice_rows = "".join(
        f"<tr><td>{esc(name)}</td><td>{g['n_images']}</td><td>{g['accuracy']:.1%} ± {se:.1%}</td>"
        f"<td>{g['top3_accuracy']:.1%}</td><td>{g['macro_f1']:.3f}</td><td>{g['ece']:.3f}</td></tr>"
        for name, g, se in slices(m))
    slice_table = ("<h2>By size band and source</h2><table><tr><th>slice</th><th>images</th><th>accuracy "
                   "(± standard error)</th><th>top-3</th><th>macro-F1</th><th>ECE</th></tr>"
                   f"{slice_rows}</table>") if slice_rows else ""
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
    if m.get("unknown_to_model"):
        notes.append("Movements the model does not know, scored as misses: " + esc(
            ", ".join(f"{label} ({n})" for label, n in m["unknown_to_model"].items())))
    if m.get("untested"):
        notes.append("Not tested (no images): " + esc(", ".join(m["untested"])))
    if m.get("in_several_movements"):
        notes.append(f"{m['in_several_movements']} image(s) are filed under several movements (the same file twice): "
                     "each is scored once and counts as right when the model names any of its movements.")
    if m.get("size_shift"):
        notes.append(f"These images are {m['size_shift']:g}x the size of the training images (median short side): "
                     "the scores may not hold for images of the training size.")
    if m.get("excluded_training_images"):
        notes.append(f"{m['excluded_training_images']} training images were left out of the scores.")
    if m.get("skipped"):
        notes.append(f"{len(m['skipped'])} unreadable file(s) skipped: " + esc(
            "; ".join(f"{s['path']}: {s['reason']}" for s in m["skipped"][:20])))
    confusion = _confusion_plot(evaluation) if m["n_images"] else ""
    f1 = _f1_plot(evaluation) if m["n_images"] else ""
    calibration = _reliability_plot(evaluation) if m["n_images"] else ""
    return page(title, f"""{headline}
{''.join(f'<p class=note>{n}</p>' for n in notes)}
<h2>Confusion matrix</h2>{f'<img class=plot alt="confusion matrix" src="{confusion}">' if confusion else '<p>No images scored.</p>'}
<h2>Per movement</h2>{f'<img class=plot alt="F1 per class" src="{f1}">' if f1 else ''}
<table><tr><th>movement</th><th>precision</th><th>recall</th><th>F1</th><th>images</th></tr>{rows}</table>
{slice_table}
<h2>Calibration</h2>{f'<img class=plot alt="reliability diagram" src="{calibration}">' if calibration else ''}
<p class=note>Points on the diagonal mean the probabilities can be taken at their word; below it the model is over-confident, above it under-confident.</p>
<h2>Most confident mistakes</h2>{''.join(mistakes) or '<p>None.</p>'}""")


def write_report(evaluation: Evaluation, path: str | os.PathLike, title: str = "artstyle evaluation", clf=None) -> Path:
    target = Path(path).expanduser()
    atomic_write_bytes(target, render_report(evaluation, title, clf).encode())
    return target
