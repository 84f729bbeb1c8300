"""Ray Data (the `ray` extra), on a local Ray (one actor per CPU this process may use):
batch prediction equals the local one, path for path; a corrupt file is an error row; a
killed actor is retried; --resume computes only what is missing; extraction through Ray
fills the same cache."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from synth import FAST, STYLES, paint

ray = pytest.importorskip("ray", reason="the ray extra is not installed")
pq = pytest.importorskip("pyarrow.parquet")

from artstyle import StyleClassifier  # noqa: E402
from artstyle.apps.ray_predict import Predictor, predict_on_ray  # noqa: E402
from artstyle.errors import ArtstyleError  # noqa: E402
from artstyle.features.backbone import cpu_count  # noqa: E402
from artstyle.features.ray_extraction import connect, cpus  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    connect("local")  # as many CPUs as this process may use: under xdist a worker has one
    assert cpus() == cpu_count()
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """10 new paintings and one file that is not an image."""
    folder = tmp_path_factory.mktemp("scans")
    for i in range(10):
        paint(list(STYLES)[i % 4], artist=8, seed=300 + i).save(folder / f"scan {i:02d}.jpg")
    (folder / "notes.jpg").write_text("not an image")
    return folder


def _rows(out):
    return pq.read_table(out).to_pylist()


def test_predictions_through_ray_equal_the_local_ones(local_ray, trained_model, scans, tmp_path):
    clf, folder = trained_model
    predict_on_ray(str(scans), folder, tmp_path / "out", k=3, batch_size=4)
    rows = _rows(tmp_path / "out")
    paths = sorted(str(p) for p in scans.iterdir())
    assert sorted(r["path"] for r in rows) == paths  # every input exactly once
    local = {p.path: p.to_dict() for p in clf.predict_top_k(paths, k=3)}
    for row in rows:
        want = local[row["path"]]
        if want["error"]:
            assert row["error"] == want["error"] and row["predictions"] == []
            continue
        assert [p["label"] for p in row["predictions"]] == [p["label"] for p in want["predictions"]]
        np.testing.assert_allclose([p["probability"] for p in row["predictions"]],
                                   [p["probability"] for p in want["predictions"]], atol=1e-5)
        assert (row["uncertain"], row["mixed"], row["is_painting"]) == (want["uncertain"], want["mixed"], want["is_painting"])
    assert sum(r["error"] is not None for r in rows) == 1


def test_resume_computes_only_the_missing_paths(local_ray, trained_model, scans, tmp_path):
    _, folder = trained_model
    paths = sorted(str(p) for p in scans.glob("scan*.jpg"))
    (tmp_path / "first.txt").write_text("\n".join(paths[:4]) + "\n")
    (tmp_path / "all.txt").write_text("\n".join(paths) + "\n\n")
    out = tmp_path / "out"
    predict_on_ray(str(tmp_path / "first.txt"), folder, out)
    before = set(out.glob("*.parquet"))
    with pytest.raises(ArtstyleError, match="already holds results"):
        predict_on_ray(str(tmp_path / "all.txt"), folder, out)
    job = predict_on_ray(str(tmp_path / "all.txt"), folder, out, resume=True)
    assert job.skipped == 4
    added = [row["path"] for f in set(out.glob("*.parquet")) - before for row in pq.read_table(f).to_pylist()]
    assert sorted(added) == paths[4:]  # only the missing ones were computed
    assert sorted(r["path"] for r in _rows(out)) == paths


def test_a_killed_actor_is_retried_and_each_path_appears_once(local_ray, trained_model, scans, tmp_path):
    _, folder = trained_model
    marker = tmp_path / "killed-once"

    class DiesOnce(Predictor):  # defined here: Ray ships it by value
        def __call__(self, batch):
            if not marker.exists():
                marker.write_text("the actor died here")
                os._exit(1)
            return super().__call__(batch)

    predict_on_ray(str(scans), folder, tmp_path / "out", batch_size=4, predictor=DiesOnce)
    assert marker.exists()
    assert sorted(r["path"] for r in _rows(tmp_path / "out")) == sorted(str(p) for p in scans.iterdir())


def test_features_through_ray_equal_the_local_ones_and_fill_the_cache(local_ray, scans, tmp_path):
    from artstyle.data.dataset import content_key
    from artstyle.data.images import Resized
    from artstyle.features.cache import FeatureCache

    files = sorted(scans.glob("scan*.jpg"))
    paths = files + [Resized(files[0], 64), scans / "notes.jpg"]  # a shrunk view travels too
    on_ray = StyleClassifier(**FAST, cache_dir=tmp_path / "cache", ray="local", show_progress=False)
    extraction = on_ray.extract(paths)
    local = StyleClassifier(**FAST, cache_dir=False, show_progress=False).extract(paths)
    np.testing.assert_allclose(extraction.features, local.features, atol=1e-5)
    assert extraction.errors == local.errors and set(extraction.errors) == {len(paths) - 1}
    (extractor,) = on_ray.feature_extractors
    cache = FeatureCache(tmp_path / "cache", extractor.identity())
    for i, path in enumerate(paths[:-1]):
        np.testing.assert_array_equal(cache.get(content_key(path)), extraction.features[i])
    assert not np.allclose(extraction.features[-2], extraction.features[0])  # scan0 at 64 px is another view


def test_cli_predict_on_ray(local_ray, trained_model, scans, tmp_path):
    """The command line end to end, in its own process, joining this module's Ray by its
    address (`--ray local` starts one as the tests above do)."""
    _, folder = trained_model
    address = ray.get_runtime_context().gcs_address
    command = [sys.executable, "-m", "artstyle", "-q", "predict", "--ray", address, str(scans), "-m", str(folder),
               "--out", str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(_rows(tmp_path / "out")) == 11
    twice = subprocess.run([*command[:7], str(scans), *command[7:]], capture_output=True, text=True)  # two SOURCEs
    assert twice.returncode == 1 and "one SOURCE" in twice.stderr


def test_without_the_flag_nothing_imports_ray(trained_model, scans):
    _, folder = trained_model
    code = ("import sys; from artstyle import StyleClassifier; "
            f"clf = StyleClassifier.load({str(folder)!r}, cache_dir=False, show_progress=False); "
            f"clf.predict_top_k([{str(scans / 'scan 00.jpg')!r}]); clf.extract([{str(scans / 'scan 01.jpg')!r}]); "
            "import artstyle.apps.cli; print('ray' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_paths_given_as_uris_are_fetched_and_bad_ones_are_error_rows(local_ray, trained_model, scans, tmp_path):
    """pyarrow filesystem URIs (file:// here; s3:// and friends the same way)."""
    _, folder = trained_model
    good = [(scans / f"scan {i:02d}.jpg").as_uri() for i in range(3)]
    listing = tmp_path / "uris.txt"
    listing.write_text("\n".join([*good, (scans / "gone.jpg").as_uri(), "nosuchscheme://x/y.jpg"]) + "\n")
    predict_on_ray(str(listing), folder, tmp_path / "out")
    rows = {r["path"]: r for r in _rows(tmp_path / "out")}
    assert all(rows[uri]["error"] is None and rows[uri]["predictions"] for uri in good)
    assert rows[(scans / "gone.jpg").as_uri()]["error"].startswith("cannot read")
    assert rows["nosuchscheme://x/y.jpg"]["error"].startswith("cannot read")
