"""What `artstyle review` keeps: the images under review, the model's answers (predicted
once, cached, resumable) and the decisions, saved at once and atomically to `labels.csv`.

`labels.csv` is a manifest (`data.manifest`): path (relative to it when below its folder),
movement, artist (when known), decided_by ("model": a person accepted the model's answer;
"person": a person chose another), model_movement and model_probability. A picture marked
"not a painting" is kept there with that movement; training leaves such rows out. The
user's images are only read, never moved or renamed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..data.families import family_of
from ..data.manifest import NOT_A_PAINTING, is_manifest, read_manifest
from ..data.remote import is_url
from ..errors import ArtstyleError
from ..files import atomic_write_bytes

log = logging.getLogger("artstyle")

LABEL_FIELDS = ("path", "movement", "artist", "decided_by", "model_movement", "model_probability")
CACHE_BATCH = 64  # answers written to the cache at a time: an interrupted run loses at most this many


@dataclass
class ReviewItem:
    """One image under review: its file, its name on the page, its artist when known."""

    file: Path
    name: str
    artist: str | None = None


def review_items(sources: list[str]) -> list[ReviewItem]:
    """The images of folders (recursive; an artist is the folder above the image when the
    tree is <movement>/<artist>/<image>), manifests (their artist column) and URLs (images,
    IIIF services and manifests, fetched into the URL cache: `data.remote`), in order."""
    from ..data.dataset import find_images
    from .output import fetch_inputs

    items: list[ReviewItem] = []
    for text in sources:
        source = Path(text)
        if is_url(text):
            for image in fetch_inputs([text]):
                if image.file is None:
                    log.warning("%s: %s", image.name, image.error)
                else:
                    items.append(ReviewItem(image.file, image.name))
        elif is_manifest(source):
            manifest = read_manifest(source, labelled=False)
            manifest.report()
            items += [ReviewItem(row.file, row.path, row.artist) for row in manifest.rows]
        elif source.is_dir():
            for path in find_images(source):
                parts = path.relative_to(source).parts
                items.append(ReviewItem(path, path.relative_to(source).as_posix(), parts[1] if len(parts) == 3 else None))
        else:
            items.append(ReviewItem(source, source.name))
    seen: set[Path] = set()
    unique = []
    for item in items:  # one image listed twice is reviewed once
        key = item.file.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


def file_key(path: Path) -> str:
    """An image file as it is now (path, size, modification time): what its cached answer and
    thumbnail are keyed by."""
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


class AnswerCache:
    """The model's answers per image file (path, size and modification time), for one model:
    a JSON Lines file appended batch by batch, so an interrupted review resumes."""

    def __init__(self, folder: Path, model_id: str):
        self.file = folder / f"answers-{model_id}.jsonl"
        self.answers: dict[str, dict] = {}
        if self.file.is_file():
            for line in self.file.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self.answers[row["key"]] = row["answer"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut by an interruption: that image is predicted again

    def fill(self, items: list[ReviewItem], predict: Callable[[list[Path]], list[dict]],
             advance: Callable[[int], None]) -> list[dict]:
        """Each item's answer, predicting the ones not cached in batches."""
        keys = [file_key(item.file) for item in items]
        missing = [i for i, key in enumerate(keys) if key not in self.answers]
        advance(len(items) - len(missing))
        self.file.parent.mkdir(parents=True, exist_ok=True)
        for start in range(0, len(missing), CACHE_BATCH):
            batch = missing[start:start + CACHE_BATCH]
            answers = predict([items[i].file for i in batch])
            with self.file.open("a", encoding="utf-8") as out:
                for i, answer in zip(batch, answers):
                    self.answers[keys[i]] = answer
                    out.write(json.dumps({"key": keys[i], "answer": answer}) + "\n")
            advance(len(batch))
        return [self.answers[key] for key in keys]


class LabelStore:
    """The decisions, one row per decided image, rewritten atomically at every decision."""

    def __init__(self, file: Path):
        self.file = file
        self.rows: dict[str, dict] = {}  # path as written -> row
        self._keys: dict[Path, str] = {}
        if file.is_file():
            with file.open(newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                if list(reader.fieldnames or []) != list(LABEL_FIELDS):  # someone else's file: never rewrite it
                    raise ArtstyleError(f"{file}: not a labels file written by `artstyle review` (its columns are "
                                        f"{', '.join(reader.fieldnames or []) or 'none'}); give --labels-csv a new file")
                for row in reader:
                    if row.get("path"):
                        self.rows[row["path"]] = {k: row.get(k, "") or "" for k in LABEL_FIELDS}

    def key(self, item: ReviewItem) -> str:
        """The image's path as labels.csv writes it: relative to its folder when below it."""
        if item.file not in self._keys:
            try:
                self._keys[item.file] = item.file.resolve().relative_to(self.file.parent.resolve()).as_posix()
            except ValueError:
                self._keys[item.file] = str(item.file.resolve())
        return self._keys[item.file]

    def decision(self, item: ReviewItem) -> dict | None:
        return self.rows.get(self.key(item))

    def decide(self, item: ReviewItem, movement: str, decided_by: str, model_says: str | None,
               probability: float | None) -> dict:
        """Save one decision; `model_says` is the model's answer (a movement or NOT_A_PAINTING)."""
        row = {"path": self.key(item), "movement": movement, "artist": item.artist or "", "decided_by": decided_by,
               "model_movement": model_says or "", "model_probability": "" if probability is None else f"{probability:.4f}"}
        self.rows[row["path"]] = row
        self._write()
        return row

    def undo(self, item: ReviewItem) -> None:
        if self.rows.pop(self.key(item), None) is not None:
            self._write()

    def _write(self) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, LABEL_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows.values())
        atomic_write_bytes(self.file, buffer.getvalue().encode("utf-8"))


class ReviewSession:
    """Images, the model's answers and the decisions of one review."""

    def __init__(self, items: list[ReviewItem], answers: list[dict], labels: LabelStore, movements: list[str]):
        self.items, self.answers, self.labels = items, answers, labels
        self.movements = movements

    def view(self, index: int) -> dict:
        """One image as the page lists it."""
        item, answer = self.items[index], self.answers[index]
        top = (answer.get("predictions") or [{}])[0]
        decision = self.labels.decision(item)
        flags = [name for name, on in (("unsure", answer.get("uncertain")), ("mixed", answer.get("mixed")),
                                       ("not a painting", answer.get("is_painting") is False),
                                       ("unreadable", answer.get("error"))) if on]
        family = answer.get("family") or {}
        return {"index": index, "name": item.name, "artist": item.artist, "movement": top.get("label"),
                "probability": top.get("probability"), "family": family.get("name") or family_of(top.get("label") or ""),
                "family_probability": family.get("probability"), "family_first": answer.get("family_first"),
                "flags": flags, "predictions": answer.get("predictions") or [],
                "summary": f"unreadable: {answer['error']}" if answer.get("error") else answer.get("summary", ""),
                "error": answer.get("error"), "decision": decision}

    def query(self, *, movement: str = "", family: str = "", flag: str = "", status: str = "",
              sort: str = "confidence", offset: int = 0, limit: int = 60) -> dict:
        """A page of images, filtered and sorted; `total` counts the filtered ones."""
        views = [self.view(i) for i in range(len(self.items))]
        if movement:
            views = [v for v in views if v["movement"] == movement]
        if family:
            views = [v for v in views if v["family"] == family]
        if flag:
            views = [v for v in views if flag in v["flags"]]
        if status == "undecided":
            views = [v for v in views if v["decision"] is None]
        elif status == "decided":
            views = [v for v in views if v["decision"] is not None]
        if sort == "confidence":  # least sure first: what a reviewer should look at first
            views.sort(key=lambda v: (v["probability"] is not None, v["probability"] or 0.0))
        elif sort == "confidence-desc":
            views.sort(key=lambda v: -(v["probability"] or 0.0))
        else:
            views.sort(key=lambda v: v["name"])
        decided = sum(1 for item in self.items if self.labels.decision(item) is not None)
        return {"total": len(views), "decided": decided, "images": len(self.items),
                "items": views[offset:offset + limit]}

    def decide(self, index: int, movement: str | None) -> dict:
        """Accept the model's answer (`movement` None) or choose a movement or NOT_A_PAINTING."""
        answer = self.answers[index]
        model_says = NOT_A_PAINTING if answer.get("is_painting") is False else (
            (answer.get("predictions") or [{}])[0].get("label"))
        if movement is None:
            if model_says is None:
                raise ValueError(f"{self.items[index].name}: the model has no answer to accept ({answer.get('error')})")
            movement = model_says
        if movement != NOT_A_PAINTING and movement not in self.movements:
            raise ValueError(f"unknown movement {movement!r}; this model knows {', '.join(self.movements)}")
        top = (answer.get("predictions") or [{}])[0]
        return self.labels.decide(self.items[index], movement, "model" if movement == model_says else "person",
                                  model_says, top.get("probability"))


def model_id(model_folder: Path) -> str:
    """A short fingerprint of a model folder's config: answers cached for one model are not
    another's."""
    return hashlib.sha256((model_folder / "config.json").read_bytes()).hexdigest()[:16]


def review_folder(labels_file: Path) -> Path:
    """Where the review keeps its caches: beside labels.csv, never among the user's images."""
    return labels_file.parent / ".artstyle-review"

