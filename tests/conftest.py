"""Shared fixtures: generated painting trees, one feature cache, one trained model per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub


def _pin_xdist_worker() -> None:
    """Under pytest-xdist (`-n N`), worker i runs on every N-th CPU only: the engines size
    their thread pools by the CPUs a process may use, so N workers share the machine
    instead of each spreading torch and ONNX Runtime over all of it (which ran the suite
    no faster than one process). Subprocesses a test starts inherit the pinning."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not worker or not count or not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    mine = cpus[int(worker.removeprefix("gw")) % len(cpus) :: int(count)] or cpus
    os.sched_setaffinity(0, mine)
    os.environ["OMP_NUM_THREADS"] = str(len(mine))  # torch reads it when it is first imported


_pin_xdist_worker()

from synth import NEEDS_TORCH, TORCH_MISSING, make_tree  # noqa: E402


def pytest_collection_modifyitems(config, items):
    """Tests marked `torch` are skipped, saying what to install, where PyTorch is not."""
    if TORCH_MISSING:
        skip = pytest.mark.skip(reason=NEEDS_TORCH)
        for item in items:
            if "torch" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory):
    """The user cache (exported graphs, the default feature cache) lives in the session's
    tmp dir, never in the home folder of whoever runs the tests."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ARTSTYLE_CACHE_DIR", str(tmp_path_factory.mktemp("user-cache")))
        yield


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One feature cache for the session: each generated image is embedded once."""
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture(scope="session")
def paintings(tmp_path_factory) -> Path:
    """4 movements x 4 artists x 6 images, folder names in mixed real-world spellings."""
    return make_tree(tmp_path_factory.mktemp("paintings"), artists=4, per_artist=6)


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory, paintings, cache_dir):
    """A classifier trained (stratified split, head chosen among all kinds, painting
    detector on) on `paintings` and saved; (classifier, folder)."""
    from artstyle import StyleClassifier

    clf = StyleClassifier(features="global", split="stratified", negatives=40, cache_dir=cache_dir,
                          show_progress=False).fit(paintings)
    folder = clf.save(tmp_path_factory.mktemp("models") / "model")
    return clf, folder
