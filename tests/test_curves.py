"""Training curves: each head kind's regularisation path (and fine-tuning's epochs, see
test_finetune) travel in the model folder as a TensorBoard event file, written without
torch, and the report draws them."""

from __future__ import annotations

import json

import pytest

from artstyle.model.curves import EVENTS_FILE, training_curves


def test_the_head_paths_are_read_back_from_the_folder_by_tensorboard(trained_model):
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                      reason="the tensorboard extra is not installed")
    _, folder = trained_model
    paths = json.loads((folder / "config.json").read_text())["head"]["held_out_macro_f1"]
    assert set(paths) == {"logreg", "svm", "mlp"}  # the fixture chose among every kind
    assert (folder / EVENTS_FILE).is_file()
    events = accumulator.EventAccumulator(str(folder / "tensorboard"))
    events.Reload()
    for kind, path in paths.items():
        f1 = events.Scalars(f"head/{kind}/held_out_macro_f1")
        alpha = events.Scalars(f"head/{kind}/alpha")
        assert [p.step for p in f1] == list(range(len(path)))
        assert [p.value for p in f1] == pytest.approx(list(path.values()), rel=1e-6)
        assert [p.value for p in alpha] == pytest.approx([float(a) for a in path], rel=1e-6)


def test_a_frozen_model_has_no_fine_tuning_curves_and_resaving_keeps_one_event_file(trained_model, tmp_path):
    from artstyle import StyleClassifier

    clf, folder = trained_model
    assert not [c for c in training_curves(clf.config_) if c.tag.startswith("finetune/")]
    again = StyleClassifier.load(folder, cache_dir=False).save(tmp_path / "copy")
    StyleClassifier.load(again, cache_dir=False).save(again)  # saved twice into the same folder
    assert [p.name for p in (again / "tensorboard").iterdir()] == [EVENTS_FILE.split("/")[-1]]
