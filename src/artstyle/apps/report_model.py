"""The report's section on the model itself: what it is (backbone, recipe, head, detector,
version, the command that made it), how its head was chosen (the cross-validation table and
each kind's regularisation path) and how fine-tuning went, epoch by epoch. Read from the
model's config.json; the curves are the ones its TensorBoard event file holds
(`model.curves`).
"""

from __future__ import annotations

import html

from ..model.calibration import Abstention
from ..model.curves import finetune_curves, head_paths
from ..model.metrics import share_text
from .html_parts import figure_uri, scroll_box
from .model_card import of_count, trained_on


def _path_plot(config: dict) -> str:
    """Held-out macro-F1 against regularisation strength, one line per head kind."""
    from matplotlib.figure import Figure

    paths = head_paths(config)
    fig = Figure(figsize=(6, 3.4))
    ax = fig.subplots()
    chosen = config["head"].get("kind")
    for kind, path in paths.items():
        alphas, f1 = zip(*path)
        ax.plot(alphas, f1, marker="o", label=kind + (" (kept)" if kind == chosen else ""),
                linewidth=2.5 if kind == chosen else 1.2)
    ax.set_xscale("log")
    ax.invert_xaxis()  # strong -> weak, as cross-validation walks it
    ax.set_xlabel("regularisation strength (alpha; weaker to the right)")
    ax.set_ylabel("held-out macro-F1")
    ax.set_title("Head choice: each kind's regularisation path")
    ax.legend()
    return figure_uri(fig)


def _finetune_plot(config: dict) -> str:
    """Fine-tuning per epoch: losses and validation accuracy; the learning rate beside them."""
    from matplotlib.figure import Figure

    curves = {c.tag.split("/")[1]: c for c in finetune_curves(config)}
    fig = Figure(figsize=(10, 3.4))
    losses, accuracy, rate = fig.subplots(1, 3)
    for ax, names, title in ((losses, ("train_loss", "val_loss"), "loss"),
                             (accuracy, ("val_top1", "val_top3"), "validation accuracy"),
                             (rate, ("learning_rate",), "learning rate (top stage)")):
        for name in names:
            if name in curves:
                epochs, values = zip(*curves[name].points)
                ax.plot(epochs, values, marker="o", label=curves[name].label)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        if len(names) > 1:
            ax.legend()
    accuracy.set_ylim(0, 1.05)
    fig.tight_layout()
    return figure_uri(fig)


def _cv_table(config: dict) -> str:
    """Kinds by alpha: the held-out macro-F1 each candidate scored, the kept one in bold."""
    head = config["head"]
    paths = head_paths(config)
    alphas = sorted({a for path in paths.values() for a, _ in path}, reverse=True)
    rows = []
    for kind, path in paths.items():
        scores = dict(path)
        cells = "".join(
            "<td></td>" if a not in scores else
            f"<td><b>{scores[a]:.3f}</b></td>" if kind == head.get("kind") and a == head.get("alpha") else
            f"<td>{scores[a]:.3f}</td>" for a in alphas)
        rows.append(f"<tr><td>{html.escape(kind)}</td>{cells}</tr>")
    header = "".join(f"<th>{a:g}</th>" for a in alphas)
    return f"<table><tr><th>head \\ alpha</th>{header}</tr>{''.join(rows)}</table>"


def _facts(config: dict, splits_csv: str | None) -> list[tuple[str, str]]:
    head = config["head"]
    backbones = config["features"]["backbones"]
    facts = [("backbone", " + ".join(f"{b['name']} ({b.get('weights_id', 'weights unknown')})" for b in backbones)),
             ("features (recipe)", config["features"]["recipe"]),
             ("head", f"{head.get('kind', head.get('type'))}, alpha {head.get('alpha', 0):g}, chosen by "
                      f"{head.get('cv_folds', '?')}-fold cross-validation on artist-disjoint folds"
              if head.get("cv_folds") else str(head.get("kind", head.get("type"))))]
    selection = head.get("selection")
    if selection:
        facts.append(("head choice", f"{selection['rule']} (standard error {selection['standard_error']:.3f}; "
                                     f"best: {selection['best_kind']} at {selection['best_macro_f1']:.3f})"))
    held = head.get("held_out")
    if held:
        sure = round(held["sure_share"] * held["n_images"])
        facts.append(("calibration", f"temperature {head.get('temperature', 1):.2f}; held out: ECE {held['ece']:.3f}, "
                                     f"sure of {share_text(held['sure_share'], held['n_images'], 0)} and right on "
                                     f"{share_text(held['accuracy_when_sure'] or 0, sure, 0)} of those"))
    facts.append(("flags", Abstention.from_config(config).describe()))
    detector = head.get("painting_detector")
    if detector:
        facts.append(("painting detector", f"flags {detector.get('held_out_negatives_flagged', 0):.0%}"
                                           f"{of_count(detector.get('negatives'))} held-out non-paintings and "
                                           f"{detector.get('held_out_paintings_flagged', 0):.1%}"
                                           f"{of_count(detector.get('held_out_paintings'))} held-out paintings"))
    tuned = backbones[0].get("finetuned")
    if tuned:
        facts.append(("fine-tuning", f"{tuned['stages_trained']} of {tuned['stages']} stages, {tuned['epochs_run']} "
                                     f"epochs on {tuned['train_images']} images ({tuned['val_images']} validation), "
                                     f"kept epoch {tuned['kept_epoch']}"))
    if splits_csv:
        facts.append(("trained on", trained_on(config, splits_csv)))
    facts.append(("made by", f"artstyle {config.get('artstyle_version', '?')} on {config.get('created', '?')}"))
    facts.append(("command", config.get("command") or "the Python API (no command line recorded)"))
    return facts


def model_section(config: dict, splits_csv: str | None = None) -> str:
    """The section as HTML."""
    rows = "".join(f"<tr><td>{html.escape(name)}</td><td class=text>{html.escape(value)}</td></tr>"
                   for name, value in _facts(config, splits_csv))
    parts = [f"<h2>The model</h2><table class=facts>{rows}</table>"]
    if head_paths(config):
        parts.append("<h3>How the head was chosen</h3><p>Held-out macro-F1 of each candidate (paintings of artists "
                     f"each fold's head never saw).</p>{scroll_box(_cv_table(config))}"
                     f'<img class=plot alt="regularisation paths" src="{_path_plot(config)}">')
    if finetune_curves(config):
        parts.append("<h3>Fine-tuning, epoch by epoch</h3>"
                     f'<img class=plot alt="fine-tuning curves" src="{_finetune_plot(config)}">')
    parts.append("<p class=note>The same curves are in the model folder as TensorBoard events: "
                 "<code>tensorboard --logdir MODEL</code>.</p>")
    return "".join(parts)
