"""The review's bookkeeping: answers predicted once and resumed, decisions saved atomically
to labels.csv (a manifest that trains), 10,000 images paged. The page itself is driven in
Chromium in test_browser.py."""

from __future__ import annotations

import csv
import logging

import pytest
from PIL import Image

from artstyle.apps.review_store import AnswerCache, LabelStore, ReviewItem, ReviewSession, review_items
from artstyle.data.dataset import scan_dataset
from artstyle.errors import ArtstyleError


def _answer(label: str, p: float, painting: bool = True) -> dict:
    return {"predictions": [{"label": label, "probability": p}, {"label": "other", "probability": 1 - p}],
            "uncertain": p < 0.5, "mixed": None, "is_painting": painting, "not_painting_kind": None,
            "family": None, "family_first": False, "error": None}


def test_answers_are_predicted_once_and_an_interrupted_run_resumes(tmp_path):
    files = []
    for i in range(150):
        files.append(tmp_path / f"{i}.png")
        Image.new("RGB", (8, 8), (i, 0, 0)).save(files[-1])
    items = [ReviewItem(f, f.name) for f in files]
    asked: list[int] = []

    def predict(batch):
        asked.append(len(batch))
        if len(asked) == 2:
            raise KeyboardInterrupt  # the second batch never finishes
        return [_answer("cubism", 0.9) for _ in batch]

    with pytest.raises(KeyboardInterrupt):
        AnswerCache(tmp_path / "cache", "m1").fill(items, predict, lambda n: None)
    asked.clear()
    answers = AnswerCache(tmp_path / "cache", "m1").fill(items, lambda b: asked.append(len(b)) or
                                                         [_answer("cubism", 0.9) for _ in b], lambda n: None)
    assert len(answers) == 150 and sum(asked) == 150 - 64  # the first batch of 64 was kept
    assert AnswerCache(tmp_path / "cache", "m2").answers == {}  # another model's answers are its own


def test_decisions_are_saved_atomically_resume_and_train_without_not_a_painting(tmp_path, caplog):
    data = tmp_path / "photos"
    data.mkdir()
    for i in range(4):
        Image.new("RGB", (32, 32), (40 * i, 90, 30)).save(data / f"{i}.jpg")
    before = {p.name: p.read_bytes() for p in data.iterdir()}
    items = review_items([str(data)])
    answers = [_answer("cubism", 0.9), _answer("fauvism", 0.4), _answer("cubism", 0.8, painting=False),
               _answer("cubism", 0.7)]
    labels = tmp_path / "labels.csv"
    session = ReviewSession(items, answers, LabelStore(labels), ["cubism", "fauvism"])
    assert session.decide(0, None)["decided_by"] == "model"
    assert session.decide(1, "cubism")["decided_by"] == "person"
    assert session.decide(2, None)["movement"] == "not a painting"
    with pytest.raises(ValueError, match="unknown movement 'rococo'"):
        session.decide(3, "rococo")
    resumed = ReviewSession(items, answers, LabelStore(labels), ["cubism", "fauvism"])
    assert resumed.query(status="decided")["total"] == 3 and resumed.query(status="undecided")["total"] == 1
    resumed.labels.undo(items[0])
    assert [r["path"] for r in csv.DictReader(labels.open())] == ["photos/1.jpg", "photos/2.jpg"]
    assert {p.name: p.read_bytes() for p in data.iterdir()} == before and sorted(tmp_path.iterdir()) == [labels, data]
    with caplog.at_level(logging.INFO, logger="artstyle"):
        dataset = scan_dataset(labels, show_progress=False)
    assert [(r.path, r.label) for r in dataset.records] == [("photos/1.jpg", "cubism")]
    assert "1 row(s) marked 'not a painting': not a movement, left out" in caplog.text


def test_someone_elses_labels_csv_is_refused_not_rewritten(tmp_path):
    theirs = tmp_path / "labels.csv"
    theirs.write_text("file,label,notes\na.jpg,cubism,from the 1998 catalogue\n")
    with pytest.raises(ArtstyleError, match="not a labels file written by `artstyle review`.*give --labels-csv a new file"):
        LabelStore(theirs)
    assert theirs.read_text() == "file,label,notes\na.jpg,cubism,from the 1998 catalogue\n"


def test_ten_thousand_images_are_filtered_sorted_and_paged(tmp_path):
    n = 10_000
    items = [ReviewItem(tmp_path / f"{i}.jpg", f"{i:05d}.jpg") for i in range(n)]
    answers = [_answer("cubism" if i % 3 else "fauvism", (i % 100) / 100, painting=i % 50 != 0) for i in range(n)]
    session = ReviewSession(items, answers, LabelStore(tmp_path / "labels.csv"), ["cubism", "fauvism"])
    page = session.query(offset=60, limit=60)
    assert page["total"] == n and len(page["items"]) == 60
    assert [v["probability"] for v in page["items"]] == sorted(v["probability"] for v in page["items"])
    assert session.query(flag="not a painting")["total"] == n // 50
    assert session.query(movement="fauvism")["total"] == len(range(0, n, 3))
    assert session.query(family="Early modernism")["total"] == n  # cubism and fauvism both belong to it
    assert session.query(sort="name", offset=n - 1)["items"][0]["name"] == "09999.jpg"
