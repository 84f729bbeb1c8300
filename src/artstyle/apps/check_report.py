"""The dataset doctor's findings as one self-contained HTML page, a plot per finding."""

from __future__ import annotations

import html
import os
from collections import Counter
from pathlib import Path

import numpy as np

from ..data.doctor import NEAREST_SAMPLE, DatasetCheck
from ..files import atomic_write_bytes
from .html_parts import cards, figure_uri, page, scroll_box, thumbnail_figure

MAX_THUMBNAILS = 24
MAX_ROWS = 200
ALERT, NORMAL = "#c44e52", "#4c72b0"


def _integer_ticks(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _bars(names: list[str], values: list[float], title: str, xlabel: str, flagged: frozenset[str] | set[str] = frozenset(),
          line: float | None = None, line_label: str = "") -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, max(2.2, 0.3 * len(names) + 1)))
    ax = fig.subplots()
    ax.barh(range(len(names)), values, color=[ALERT if n in flagged else NORMAL for n in names])
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    if line is not None:
        ax.axvline(line, color="#555", linestyle="--", label=line_label)
        ax.legend(loc="lower right")
    if all(float(v).is_integer() for v in values):
        _integer_ticks(ax)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return figure_uri(fig)


def _histogram(values: list[int], title: str, xlabel: str, threshold: float, threshold_label: str,
               log: bool = False) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3))
    ax = fig.subplots()
    data = np.asarray(values, dtype=float)
    bins = np.geomspace(max(data.min(), 1), max(data.max(), 2), 40).tolist() if log else 40
    ax.hist(data, bins=bins, color=NORMAL)
    if log:
        from matplotlib.ticker import NullFormatter, ScalarFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.axvline(threshold, color=ALERT, linestyle="--", label=threshold_label)
    ax.legend()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("images")
    ax.set_title(title)
    return figure_uri(fig)


def _heatmap(rows: list[str], columns: list[str], matrix: np.ndarray, title: str) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(5, 0.5 * len(columns) + 3), max(2.5, 0.35 * len(rows) + 1.5)))
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues", aspect="auto", vmin=0, vmax=max(1, matrix.max()))  # a lone 1 is not white
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for i in range(len(rows)):
        for j in range(len(columns)):
            if matrix[i, j]:
                dark = matrix[i, j] > matrix.max() / 2
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_title(title)
    return figure_uri(fig)


def _duplicate_bars(groups: list[list[str]], label_of: dict[str, str]) -> str:
    """Per movement: duplicate groups inside it, and files whose copy sits under another movement."""
    from matplotlib.figure import Figure

    within: Counter[str] = Counter()  # files per movement, by the kind of group they are in
    across: Counter[str] = Counter()
    for group in groups:
        kind = across if len({label_of[p] for p in group}) > 1 else within
        kind.update(label_of[p] for p in group)
    names = sorted(set(within) | set(across))
    fig = Figure(figsize=(7, max(2.2, 0.3 * len(names) + 1.2)))
    ax = fig.subplots()
    ax.barh(range(len(names)), [within[n] for n in names], color=NORMAL, label="copies in the same movement")
    ax.barh(range(len(names)), [across[n] for n in names], left=[within[n] for n in names], color=ALERT,
            label="copies under another movement")
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    _integer_ticks(ax)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=2, frameon=False)
    ax.set_xlabel("files")
    ax.set_title("Exact duplicates per movement")
    return figure_uri(fig)


def _img(uri: str, alt: str) -> str:
    return f'<img class=plot alt="{html.escape(alt)}" src="{uri}">'


def _table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows[:MAX_ROWS])
    more = f"<p>... and {len(rows) - MAX_ROWS} more (see --format json).</p>" if len(rows) > MAX_ROWS else ""
    return scroll_box(f"<table><tr>{head}</tr>{body}</table>") + more


def _thumbs(check: DatasetCheck, groups: list[tuple[list[str], str]]) -> str:
    """Side-by-side thumbnails of each group of related files, with a caption line per group."""
    out = []
    for paths, caption in groups[:MAX_THUMBNAILS]:
        figures = "".join(thumbnail_figure(check.abspath(p), html.escape(p)) for p in paths)
        out.append(f"<div class=group><p>{html.escape(caption)}</p><div class=grid>{figures}</div></div>")
    return "".join(out)


def _size_section(sizes: dict) -> str:
    """Median short side per movement and per source folder; red: more than `ratio` times
    away from the rest of the collection (a model may learn size instead of style)."""
    if not sizes.get("per_movement"):
        return ""
    flagged = {**sizes["flagged_movements"], **{f"source {k}": v for k, v in sizes["flagged_sources"].items()}}
    groups = {**sizes["per_movement"], **{f"source {k}": v for k, v in sizes["per_source"].items()}}
    names = list(groups)
    verdict = (f"Red: median more than {sizes['ratio']:g}x away from the rest of the collection: "
               + html.escape(", ".join(f"{n} ({f:g}x)" for n, f in flagged.items()))
               + ". A model trained on it may learn image size along with the movement; `artstyle train` "
               "counters it by also showing the head every painting shrunk (--size-variants, on by default), "
               "and scores small and full-size paintings apart.") if flagged else "No movement or source stands out."
    return (
        f"<h2>Sizes per movement and source ({len(flagged)} flagged)</h2><p>{verdict}</p>"
        + _img(_bars(names, [groups[n]["median"] for n in names], "Median shortest side", "pixels", set(flagged)),
               "median shortest side per movement and source")
        + _table(["group", "min", "p10", "median", "p90", "max"],
                 [[n, *(groups[n][k] for k in ("min", "p10", "median", "p90", "max"))] for n in names])
    )


def render_check_report(check: DatasetCheck, title: str) -> str:
    """The findings of `check` as one HTML string."""
    d = check.to_dict()
    counts, artists = d["class_counts"], d["artists_per_class"]
    labels = list(counts)
    label_of = check.label_of()
    sections: list[str] = []

    under = set(d["under_represented"])
    median = float(np.median(list(counts.values()))) if counts else 0.0
    sections.append(
        "<h2>Images per movement</h2>"
        f"<p>Imbalance (largest / smallest class): {d['imbalance_ratio']:.1f}. "
        f"Red: under half the median class ({median:.0f}): {html.escape(', '.join(sorted(under)) or 'none')}.</p>"
        + _img(_bars(labels, [counts[l] for l in labels], "Images per movement", "images", under, median, "median"),
               "images per movement")
    )
    single = {label for label, n in artists.items() if n < 2}
    dominated = d["dominated_by_one_artist"]
    largest = check.largest_artist()
    top_share = [largest.get(label, ("", 0.0))[1] for label in labels]
    sections.append(
        "<h2>Artists per movement</h2><p>Red: one artist only; an artist-disjoint evaluation cannot score "
        f"these movements: {html.escape(', '.join(sorted(single)) or 'none')}.</p>"
        + _img(_bars(labels, [artists[l] for l in labels], "Artists per movement", "artists", single), "artists per movement")
        + "<p>Red: one named artist painted more than half of the movement's images, so the class may teach "
        f"that painter's hand rather than the movement: {html.escape(', '.join(sorted(dominated)) or 'none')}.</p>"
        + _img(_bars(labels, top_share, "Share of the most represented artist", "share of the movement's images",
                     set(dominated), 0.5, "half"), "largest artist share")
    )
    sides = [min(i.width, i.height) for i in check.images]
    tiny = check.tiny()
    sections.append(
        f"<h2>Image sizes and tiny images ({len(tiny)})</h2>"
        f"<p>Shortest side: {html.escape(', '.join(f'{k} {v} px' for k, v in d['shortest_side'].items()))}. Under {check.min_side} px the network "
        "sees an upscaled, blurred picture.</p>"
        + (_img(_histogram(sides, "Shortest side of each image", "pixels (log scale)", check.min_side,
                           f"{check.min_side} px", log=True), "image sizes") if sides else "")
        + _table(["image", "width", "height"], [[i.path, i.width, i.height] for i in tiny])
    )
    sections.append(_size_section(check.sizes))
    reasons = Counter(reason for _, reason in check.unreadable)
    sections.append(
        f"<h2>Unreadable files ({len(check.unreadable)})</h2>"
        + (_img(_bars(list(reasons), list(reasons.values()), "Unreadable files by reason", "files", set(reasons)),
                "unreadable files by reason") + _table(["file", "reason"], [list(u) for u in check.unreadable])
           if check.unreadable else "<p>None: every image decodes.</p>")
    )
    exact = check.exact_duplicates
    sections.append(
        f"<h2>Exact duplicates ({len(exact)} groups)</h2>"
        + ("<p>The same file under several movements is a mixed painting: artstyle keeps its copies on one side "
           "of every split, trains on it as each of its movements and scores it once, right if either is named.</p>"
           if any(len({label_of[p] for p in g}) > 1 for g in exact) else "")
        + (_img(_duplicate_bars(exact, label_of), "exact duplicates per movement")
           + _thumbs(check, [(g, "under " + ", ".join(sorted({label_of[p] for p in g}))) for g in exact])
           if exact else "<p>None: no two files have the same bytes.</p>")
    )
    near = check.near_duplicates
    sections.append(
        f"<h2>Near duplicates ({len(near)} pair{'s' * (len(near) != 1)})</h2>"
        "<p>Pictures whose difference hash differs in at most "
        f"{check.near_distance} of 128 bits (re-encoded, resized or lightly edited copies). The histogram shows "
        "each image's distance to its closest other image (of a random sample of "
        f"{NEAREST_SAMPLE:,} images when there are more): copies sit left of the line.</p>"
        + (_img(_histogram(check.nearest_distance, "Distance to the most similar other image", "differing bits",
                           check.near_distance + 0.5, "near-duplicate threshold"), "nearest-image distances")
           if len(check.nearest_distance) > 1 else "")
        + _thumbs(check, [([n.a, n.b], f"distance {n.distance}" + (" - under different movements" if n.across_classes else ""))
                          for n in near])
    )
    several = check.artists_in_several_classes()
    if several:
        names = list(several)[:40]
        columns = sorted({label for name in names for label in several[name]})
        matrix = np.array([[several[name].get(c, 0) for c in columns] for name in names])
        sections.append(
            f"<h2>Artists under several movements ({len(several)})</h2><p>Painters do change styles; "
            "check that these folders are the same person and that the labels are meant.</p>"
            + _img(_heatmap(names, columns, matrix, "Images per movement of each such artist"), "artists under several movements")
        )
    else:
        sections.append("<h2>Artists under several movements (0)</h2><p>None.</p>")

    headline = cards([
        ("images", d["n_images"]), ("movements", d["n_classes"]), ("artists", d["n_artists"]),
        ("unreadable", len(check.unreadable)), ("exact duplicate groups", len(exact)),
        ("near-duplicate pairs", len(near)), ("tiny images", len(tiny)), ("imbalance", f"{d['imbalance_ratio']:.1f}x"),
    ])
    intro = (f"<p>{html.escape(d['root'])}: nothing in it was changed. "
             "<code>artstyle check --fix-plan plan.csv</code> lists suggested actions.</p>")
    return page(title, intro + headline + "".join(sections))


def write_check_report(check: DatasetCheck, path: str | os.PathLike, title: str = "artstyle dataset check") -> Path:
    target = Path(path).expanduser()
    atomic_write_bytes(target, render_check_report(check, title).encode())
    return target
