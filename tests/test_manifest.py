"""Manifests: a collection listed in a CSV or JSON Lines file trains, evaluates, checks and
predicts like the same images in a tree of folders."""

from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pytest
from synth import FAST, paint
from test_cli import run

from artstyle import StyleClassifier
from artstyle.data.dataset import scan_dataset
from artstyle.data.manifest import read_manifest
from artstyle.errors import DatasetError


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _tree_rows(tree):
    """(path, movement folder, artist folder) of every image of a tree, relative to it."""
    return [(p.relative_to(tree).as_posix(), p.parts[-3], p.parts[-2]) for p in sorted(tree.rglob("*.jpg"))]


def test_a_manifest_trained_model_equals_the_tree_trained_model(paintings, cache_dir, tmp_path):
    manifest = _write_csv(paintings / "labels.csv", ["path", "movement", "artist"], _tree_rows(paintings))
    try:
        tree_model = StyleClassifier(**FAST, split="artist", cache_dir=cache_dir, show_progress=False).fit(paintings)
        listed_model = StyleClassifier(**FAST, split="artist", cache_dir=cache_dir, show_progress=False).fit(manifest)
    finally:
        manifest.unlink()  # the session's tree stays as other tests know it
    assert list(listed_model.classes_) == list(tree_model.classes_)
    assert listed_model.metrics_["accuracy"] == tree_model.metrics_["accuracy"]
    new = [paint(style, artist=a, seed=777 + a) for a, style in enumerate(["01_StripedArt", "02_dot_painting",
                                                                          "03-Brush Strokes", "04 Colour Blocks"])]
    np.testing.assert_allclose(listed_model.predict_proba(new), tree_model.predict_proba(new), atol=1e-6)


def test_hugging_face_metadata_csv_is_read_as_is_and_mixes_with_folders(tmp_path):
    hf = tmp_path / "hf"
    (hf / "train").mkdir(parents=True)
    rows = []
    for i in range(4):
        paint("05_Rings", artist=i, seed=i).save(hf / "train" / f"{i}.jpg")
        rows.append((f"train/{i}.jpg", "Fauvism", f"Painting {i}"))
    _write_csv(hf / "metadata.csv", ["file_name", "style", "title"], rows)
    jsonl = tmp_path / "more" / "list.jsonl"
    jsonl.parent.mkdir()
    paint("01_StripedArt", artist=0, seed=5).save(jsonl.parent / "a.jpg")
    jsonl.write_text(json.dumps({"path": "a.jpg", "movement": "16_AbstractArt", "artist": "Kandinsky",
                                 "source": "catalogue"}) + "\n")
    manifest = read_manifest(hf / "metadata.csv")
    assert manifest.ignored_columns == ["title"] and [r.path for r in manifest.rows] == [f"train/{i}.jpg" for i in range(4)]
    dataset = scan_dataset([hf / "metadata.csv", jsonl], show_progress=False)
    assert dataset.labels == ["abstract art", "fauvism"]
    assert {(r.path, r.label, r.artist, r.source) for r in dataset.records} >= {
        ("train/0.jpg", "fauvism", "unknown", "hf"), ("a.jpg", "abstract art", "Kandinsky", "catalogue")}
    assert dataset.abspath(dataset.records[-1]).is_file()


def test_bad_rows_are_reported_with_their_line_and_left_out(tmp_path, caplog):
    paint("05_Rings", artist=0, seed=1).save(tmp_path / "ok.jpg")
    manifest = _write_csv(tmp_path / "list.csv", ["path", "movement"],
                          [("ok.jpg", "fauvism"), ("gone.jpg", "fauvism"), ("ok.jpg", ""), ("ok.jpg", "fauvism", "x")])
    with caplog.at_level(logging.WARNING, logger="artstyle"):
        dataset = scan_dataset(manifest, show_progress=False)
    assert [r.path for r in dataset.records] == ["ok.jpg"]
    text = caplog.text
    assert f"{manifest}:3: gone.jpg: no such file" in text and f"{manifest}:4: ok.jpg: empty movement" in text
    assert f"{manifest}:5: more values than the header has columns (x)" in text and "3 row(s) left out" in text
    jsonl = tmp_path / "list.jsonl"
    jsonl.write_text('{"path": "ok.jpg", "movement": "fauvism"}\nnot json\n[1]\n')
    found = read_manifest(jsonl)
    assert len(found.rows) == 1 and [line for line, _ in found.problems] == [2, 3]
    with pytest.raises(DatasetError, match="no movement column"):
        read_manifest(_write_csv(tmp_path / "nolabel.csv", ["path", "title"], [("ok.jpg", "x")]))
    with pytest.raises(DatasetError, match=r"no usable rows \(1 left out, e.g. line 2: gone.jpg: no such file\)"):
        read_manifest(_write_csv(tmp_path / "none.csv", ["path", "movement"], [("gone.jpg", "fauvism")]))


def test_check_evaluate_and_predict_read_a_manifest(capsys, monkeypatch, trained_model, paintings, cache_dir, tmp_path):
    _, folder = trained_model
    rows = _tree_rows(paintings)[::4]
    manifest = _write_csv(tmp_path / "labels.csv", ["path", "movement", "artist"],
                          [(str(paintings / p), m, a) for p, m, a in rows])
    code, out, err = run(capsys, monkeypatch, "check", manifest)
    assert code == 0 and f"{len(rows)} images" in out.replace(",", "") + err
    code, out, _ = run(capsys, monkeypatch, "evaluate", folder, manifest, "--all", "--format", "json",
                       "--cache-dir", cache_dir, "-q")
    result = json.loads(out)
    assert code == 0 and result["on_training_images"]["n_images"] + result["n_images"] == len(rows)
    paths_only = _write_csv(tmp_path / "to_label.csv", ["path"], [(str(paintings / p),) for p, _, _ in rows[:3]])
    code, out, _ = run(capsys, monkeypatch, "predict", paths_only, "--model", folder, "--format", "json")
    assert code == 0 and [a["path"] for a in json.loads(out)] == [str(paintings / p) for p, _, _ in rows[:3]]
    code, _, err = run(capsys, monkeypatch, "train", tmp_path / "missing.csv", "--out", tmp_path / "m")
    assert code != 0 and "missing.csv: no such manifest" in err
