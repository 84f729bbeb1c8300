"""The CLI contract other tools rely on: commands, JSON shapes, exit codes, one-line errors."""

import csv
import io
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from synth import FAST_CLI, STYLES, make_tree, paint

from artstyle.apps.cli import main
from artstyle.model.metrics import share_text, wilson_interval


def run(capsys, monkeypatch, *args, stdin=None):
    args = [str(a) for a in args]
    if "-q" in args:  # a global option: it goes before the command
        args.remove("-q")
        args.insert(0, "-q")
    monkeypatch.setattr(sys, "argv", ["artstyle", *args])
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def new_images(tmp_path):
    folder = tmp_path / "inbox" / "sub"
    folder.mkdir(parents=True)
    paths = []
    for i, style in enumerate(list(STYLES)[:4]):
        paths.append(folder / f"new {i}.jpg")
        paint(style, 6, seed=700 + i).save(paths[-1])
    (folder / "broken.jpg").write_bytes(b"nope")
    return paths, folder / "broken.jpg"


def test_train_cli_artist_split(capsys, monkeypatch, paintings, cache_dir, tmp_path):
    code, out, err = run(capsys, monkeypatch, "train", paintings, "--out", tmp_path / "m", "--split", "artist",
                         "--seed", "2", "--cache-dir", cache_dir, "-q", *FAST_CLI)
    assert code == 0, err
    assert "model saved to" in err and "accuracy" in err
    rows = list(csv.DictReader(open(tmp_path / "m" / "splits.csv")))
    assert len(rows) == 96 and {r["split"] for r in rows} == {"train", "test"}
    by_artist = {}
    for r in rows:
        by_artist.setdefault(r["artist"], set()).add(r["split"])
    assert all(len(s) == 1 for s in by_artist.values())


def test_train_records_balancing_size_variants_and_scores_by_size(capsys, monkeypatch, paintings, cache_dir, tmp_path):
    code, _, err = run(capsys, monkeypatch, "train", paintings, "--out", tmp_path / "m", "--cache-dir", cache_dir,
                       "-q", *FAST_CLI)
    assert code == 0, err
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["balance"] == "breadth" and config["size_variants"]["copies"] == 2  # the defaults
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert sum(band["n_images"] for band in metrics["by_size"].values()) == metrics["n_images"]
    code, out, err = run(capsys, monkeypatch, "info", tmp_path / "m", "--format", "markdown")
    assert code == 0 and "| size band |" in out and "also seen shrunk" in out, err
    code, _, err = run(capsys, monkeypatch, "train", paintings, "--out", tmp_path / "plain", "--cache-dir", cache_dir,
                       "--balance", "class", "--size-variants", "0", "-q", *FAST_CLI)
    assert code == 0, err
    config = json.loads((tmp_path / "plain" / "config.json").read_text())
    assert config["balance"] == "class" and config["size_variants"] is None
    code, _, err = run(capsys, monkeypatch, "train", paintings, "--out", tmp_path / "bad", "--balance", "nope", "-q")
    assert code != 0 and "unknown balancing 'nope'" in err


def test_train_with_external_test_dir(capsys, monkeypatch, paintings, cache_dir, tmp_path):
    external = make_tree(tmp_path / "external", artists=1, per_artist=4, seed=9)
    code, _, err = run(capsys, monkeypatch, "train", paintings, "--out", tmp_path / "m", "--test-dir", external,
                       "--cache-dir", cache_dir, "-q", *FAST_CLI)
    assert code == 0, err
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["evaluated_on"] == str(external) and metrics["n_images"] == 16
    assert metrics["accuracy"] >= 0.9
    make_tree(external, styles=["05_Rings"], artists=1, per_artist=2, seed=9)  # a movement training never saw
    code, _, err = run(capsys, monkeypatch, "train", paintings, "--out", tmp_path / "m2", "--test-dir", external,
                       "--cache-dir", cache_dir, *FAST_CLI)
    assert code == 0, err
    metrics = json.loads((tmp_path / "m2" / "metrics.json").read_text())
    assert metrics["unknown_to_model"] == {"rings": 2} and metrics["n_images"] == 18
    assert "scored as misses: rings (2 images)" in " ".join(err.split())
    code, _, err = run(capsys, monkeypatch, "train", paintings, "--out", tmp_path / "m3", "--test-dir", external,
                       "--strict", "--cache-dir", cache_dir, "-q", *FAST_CLI)
    assert code == 1 and "classes unknown to the model: 'rings'" in err


def test_evaluate_json_contract_scores_only_held_out(capsys, monkeypatch, trained_model, paintings, cache_dir):
    clf, folder = trained_model
    code, out, err = run(capsys, monkeypatch, "evaluate", folder, paintings, "--format", "json", "--cache-dir", cache_dir, "-q")
    assert code == 0, err
    result = json.loads(out)
    for key in ("accuracy", "top3_accuracy", "macro_f1", "ece", "n_images", "per_class", "confusion", "skipped"):
        assert key in result
    assert result["n_images"] == clf.config_["split"]["counts"]["test"]
    assert result["excluded_training_images"] == 96 - result["n_images"]
    assert result["accuracy"] == pytest.approx(clf.metrics_["accuracy"])
    label = next(iter(result["per_class"]))
    assert set(result["per_class"][label]) == {"precision", "recall", "f1", "support"}
    assert result["confusion"]["labels"] == list(clf.classes_)
    assert sum(map(sum, result["confusion"]["matrix"])) == result["n_images"]
    code, out, _ = run(capsys, monkeypatch, "evaluate", folder, paintings, "--format", "json", "--all",
                       "--cache-dir", cache_dir, "-q")
    with_training = json.loads(out)
    # --all scores the training images apart, as memorised: the headline stays the held-out one
    assert with_training["n_images"] == result["n_images"]
    assert with_training["accuracy"] == pytest.approx(result["accuracy"])
    assert with_training["on_training_images"]["n_images"] == 96 - result["n_images"]


def test_evaluate_says_it_left_out_training_images(capsys, monkeypatch, trained_model, paintings, cache_dir):
    _, folder = trained_model
    code, out, err = run(capsys, monkeypatch, "evaluate", folder, paintings, "--cache-dir", cache_dir)
    assert code == 0 and "were used to train this model: left out" in err
    assert "accuracy" in out and "macro-F1" in out


def test_evaluate_report_is_self_contained(capsys, monkeypatch, trained_model, paintings, cache_dir, tmp_path):
    _, folder = trained_model
    report = tmp_path / "report.html"
    code, _, err = run(capsys, monkeypatch, "evaluate", folder, paintings, "--all", "--report", report,
                       "--cache-dir", cache_dir, "-q")
    assert code == 0, err
    page = report.read_text()
    # confusion matrix, recall per movement, reliability diagram, the heads' regularisation paths
    assert page.count("data:image/png;base64,") == 4
    assert "Confusion matrix" in page and "Most confident mistakes" in page and "reliability diagram" in page
    assert "accuracy (95 % interval)" in page and "chance: a random movement" in page
    assert "<th>answers</th>" in page  # the count of each reliability bin
    assert "The model" in page and "How the head was chosen" in page and "efficientnet_lite0" in page
    assert "the Python API (no command line recorded)" in page  # the fixture was not trained from the CLI
    assert not re.search(r"(src|href)=\"https?://", page)


def test_evaluate_counts_unknown_movements_as_misses_and_strict_refuses(capsys, monkeypatch, trained_model, paintings,
                                                                          cache_dir, tmp_path):
    clf, folder = trained_model
    other = tmp_path / "other"
    shutil.copytree(paintings, other)
    make_tree(other, styles=["05_Rings"], artists=1, per_artist=3)
    code, out, err = run(capsys, monkeypatch, "evaluate", folder, other, "--all", "--format", "json",
                         "--cache-dir", cache_dir)
    assert code == 0, err
    m = json.loads(out)
    held_out = clf.config_["split"]["counts"]["test"]
    assert m["unknown_to_model"] == {"rings": 3} and m["n_images"] == held_out + 3
    assert m["on_training_images"]["n_images"] == 96 - held_out  # apart, as memorised
    assert m["per_class"]["rings"]["support"] == 3 and m["per_class"]["rings"]["recall"] == 0.0
    known = clf.evaluate(paintings)
    assert m["accuracy"] == pytest.approx(known.metrics["accuracy"] * held_out / (held_out + 3))  # the 3: misses
    assert "unknown to the model, scored as misses: rings (3 images)" in " ".join(err.split())
    capsys.readouterr()  # what evaluate() logged
    code, _, err = run(capsys, monkeypatch, "evaluate", folder, tmp_path / "other", "--strict", "-q")
    assert code == 1
    assert err.strip().count("\n") == 0 and "classes unknown to the model: 'rings'" in err


def test_train_splits_by_artist_when_the_tree_has_artist_folders_else_by_image(capsys, monkeypatch, paintings,
                                                                               cache_dir, tmp_path):
    code, _, err = run(capsys, monkeypatch, "train", paintings, "--out", tmp_path / "a", "--cache-dir", cache_dir,
                       *FAST_CLI)
    assert code == 0, err
    assert "split by artist" in err and json.loads((tmp_path / "a" / "config.json").read_text())["split"]["mode"] == "artist"
    flat = tmp_path / "flat"  # images directly in the movement folders: no artists to hold out
    for image in paintings.glob("*/*/*.jpg"):
        target = flat / image.parent.parent.name / f"{image.parent.name}-{image.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(image, target)
    code, _, err = run(capsys, monkeypatch, "train", flat, "--out", tmp_path / "s", "--cache-dir", cache_dir, *FAST_CLI)
    assert code == 0, err
    assert "split by image" in err
    assert json.loads((tmp_path / "s" / "config.json").read_text())["split"]["mode"] == "stratified"


def test_predict_json_csv_table_and_stdin(capsys, monkeypatch, trained_model, new_images):
    _, folder = trained_model
    paths, broken = new_images
    code, out, err = run(capsys, monkeypatch, "predict", "--model", folder, *paths, broken, "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["path"] for r in rows] == [str(p) for p in [*paths, broken]]
    expected = ["striped art", "dot painting", "brush strokes", "colour blocks"]
    assert [r["predictions"][0]["label"] for r in rows[:4]] == expected
    for r in rows[:4]:
        probs = [p["probability"] for p in r["predictions"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and r["error"] is None
        assert isinstance(r["is_painting"], bool) and isinstance(r["uncertain"], bool)
        assert r["mixed"] is None or r["mixed"] == [p["label"] for p in r["predictions"][:2]]
    assert rows[4]["predictions"] == [] and "not a readable image" in rows[4]["error"]
    assert rows[4]["is_painting"] is None and rows[4]["uncertain"] is None

    code, out, _ = run(capsys, monkeypatch, "predict", "-m", folder, "-", "--format", "csv", "--top-k", "2",
                       stdin="\n".join(map(str, paths[:2])) + "\n")
    table = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["label_1"] for r in table] == expected[:2]
    assert set(table[0]) == {"path", "label_1", "probability_1", "label_2", "probability_2",
                             "uncertain", "mixed", "is_painting", "not_painting_kind", "in_training",
                             "training_movement", "family", "family_probability", "family_first", "error"}
    assert table[0]["is_painting"] in ("true", "false") and table[0]["uncertain"] in ("true", "false")

    code, out, _ = run(capsys, monkeypatch, "predict", "-m", folder, paths[0].parent.parent)  # folder, recursive
    assert code == 0 and "striped art" in out and "error" in out and out.count("new ") == 4


def test_predict_exit_status_1_only_when_everything_failed(capsys, monkeypatch, trained_model, tmp_path):
    _, folder = trained_model
    (tmp_path / "a.jpg").write_bytes(b"")
    code, out, _ = run(capsys, monkeypatch, "predict", "-m", folder, tmp_path / "a.jpg", tmp_path / "b.jpg",
                       "--format", "json")
    assert code == 1 and [r["error"] for r in json.loads(out)] == ["empty file (0 bytes)", "no such file"]


def test_info_backbones_and_broken_model(capsys, monkeypatch, trained_model, tmp_path):
    _, folder = trained_model
    code, out, _ = run(capsys, monkeypatch, "info", folder)
    assert code == 0 and "efficientnet_lite0" in out and "held-out scores" in out
    code, out, _ = run(capsys, monkeypatch, "info", folder, "--format", "json")
    assert json.loads(out)["config"]["format_version"] == 2
    code, out, _ = run(capsys, monkeypatch, "backbones")
    assert code == 0 and "efficientnet_lite2" in out and "timm:" in out
    broken = shutil.copytree(folder, tmp_path / "broken")
    (broken / "config.json").write_text("{")
    code, _, err = run(capsys, monkeypatch, "predict", "-m", broken, "x.jpg")
    assert code == 1 and err.startswith("error:") and err.strip().count("\n") == 0


def test_info_markdown_is_a_model_card(capsys, monkeypatch, trained_model):
    clf, folder = trained_model
    code, out, _ = run(capsys, monkeypatch, "info", folder, "--format", "markdown")
    assert code == 0 and out.startswith("# Model card: artstyle model `model`")
    metrics = clf.metrics_
    rows = list(csv.DictReader(io.StringIO(clf.splits_csv_)))
    trained = [r for r in rows if r["split"] != "test"]
    # the card counts what the head learnt from, the way `info` and the report do
    assert f"{len(trained)} images by {len({r['artist'] for r in trained})} artists from " in out
    assert f"({len(rows) - len(trained)} more held out for test)" in out
    assert "Never predicted (no training paintings): byzantine" in out
    assert f"top-1 {share_text(metrics['accuracy'], metrics['n_images'])}" in out and "## Limits" in out
    for label, m in metrics["per_class"].items():  # one row per movement, scores as in metrics.json
        low, high = wilson_interval(m["recall"], m["support"])
        assert (f"| {label} | {m['recall']:.2f} ({low:.2f}-{high:.2f}) | {m['precision']:.2f} | {m['f1']:.2f} "
                f"| {m['support']} |") in out
    matrix = np.array(metrics["confusion"]["matrix"])
    np.fill_diagonal(matrix, 0)
    if matrix.any():
        i, j = np.unravel_index(matrix.argmax(), matrix.shape)
        labels = metrics["confusion"]["labels"]
        assert f"- {labels[i]} taken for {labels[j]}: {matrix[i, j]} of" in out


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "serve", "similar", "check"])
def test_help_names_arguments_and_types_in_words(capsys, monkeypatch, command):
    """No `{data}...`, `<bool>` or `<list[Path]>`: what typer 0.27 prints (hence its pin)."""
    monkeypatch.setenv("COLUMNS", "120")
    code, out, _ = run(capsys, monkeypatch, command, "--help")
    assert code == 0 and f"{command} [OPTIONS]" in out
    assert not any(mark in out for mark in ("<bool>", "<list[", "<path>", "<str>", "{")), out


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "artstyle", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "train" in result.stdout and "predict" in result.stdout


@pytest.mark.torch
def test_export_onnx_gives_the_same_probabilities(capsys, monkeypatch, trained_model, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    clf, folder = trained_model
    target = tmp_path / "out" / "model.onnx"
    code, _, err = run(capsys, monkeypatch, "export", folder, "--onnx", target)
    assert code == 0 and "probabilities" in err
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["labels"]) == list(clf.classes_)
    images = [paint(s, artist=1, seed=70 + i) for i, s in enumerate(list(STYLES)[:4])]
    prep = clf.feature_extractors[0].preprocessing
    assert json.loads(meta["preprocessing"]) == [prep.to_dict()]
    views = np.stack([prep(img) for img in images])
    (probabilities,) = session.run(None, {"views": views})
    np.testing.assert_allclose(probabilities, clf.predict_proba(images), atol=1e-4)


@pytest.mark.torch
def test_export_covers_tiles_statistics_and_the_mlp_head(tmp_path, cache_dir):
    ort = pytest.importorskip("onnxruntime")
    from artstyle import StyleClassifier
    from artstyle.model.export import export_onnx

    styles = list(STYLES)[:2]
    images = [paint(s, artist=a, seed=a * 7 + i) for i, s in enumerate(styles) for a in range(8)]
    labels = [s for s in styles for _ in range(8)]
    clf = StyleClassifier(features="multicrop+stats", head="mlp", negatives=0, test_fraction=0,
                          cache_dir=cache_dir, show_progress=False).fit(images, labels)
    assert clf.head_.kind == "mlp"
    session = ort.InferenceSession(str(export_onnx(clf, tmp_path / "m.onnx")), providers=["CPUExecutionProvider"])
    prep = clf.feature_extractors[0].preprocessing
    (probabilities,) = session.run(None, {"views": np.stack([prep(img) for img in images[:3]])})
    np.testing.assert_allclose(probabilities, clf.predict_proba(images[:3]), atol=1e-4)


def test_a_missing_folder_or_swapped_arguments_answer_in_one_line_before_loading(capsys, monkeypatch, trained_model,
                                                                                  paintings, tmp_path):
    _, folder = trained_model
    code, _, err = run(capsys, monkeypatch, "train", tmp_path / "nope", "--out", tmp_path / "m")
    assert code == 1 and "nope: not a folder (no such painting folder)" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, monkeypatch, "evaluate", paintings, folder)
    assert code == 1 and "the model comes first" in " ".join(err.split()) and "Traceback" not in err
    code, _, err = run(capsys, monkeypatch, "evaluate", tmp_path, paintings)
    assert code == 1 and "usage: artstyle evaluate MODEL DATA" in " ".join(err.split())
