"""Kill a training run mid-extraction; the rerun resumes from the cache and matches a clean run."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from synth import FAST, FAST_CLI, STYLES, paint

from artstyle import StyleClassifier, load_bundle


def _cached(cache):
    return {p: p.stat().st_mtime_ns for p in cache.glob("*/*/*.npy")}


def test_killed_run_resumes_without_recomputing(paintings, tmp_path):
    cache = tmp_path / "cache"
    command = [sys.executable, "-m", "artstyle", "train", str(paintings), "--out", str(tmp_path / "model"),
               "--cache-dir", str(cache), "--batch-size", "2", "--size-variants", "0", *FAST_CLI]  # paintings only
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while len(_cached(cache)) < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _cached(cache)
    total = len(list(paintings.glob("*/*/*.jpg")))
    assert 0 < len(before) < total, "the run should have been killed part-way"
    assert not (tmp_path / "model").exists()
    # SIGKILL can land mid-write: a hidden temp file may stay behind, but every entry the
    # cache can see is complete (written to a temp name, then renamed into place).
    for entry in before:
        assert np.load(entry, allow_pickle=False).ndim == 1, f"{entry} is a partial cache entry"
    assert all(p.name.startswith(".") for p in cache.glob("*/*/*.tmp"))

    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"features: {len(before)} reused from cache, {total - len(before)} computed" in rerun.stderr
    after = _cached(cache)
    assert len(after) == total
    assert all(after[p] == mtime for p, mtime in before.items()), "finished images were recomputed"

    clean = StyleClassifier(**FAST, size_variants=None, cache_dir=tmp_path / "clean-cache", show_progress=False).fit(paintings)
    resumed = load_bundle(tmp_path / "model")
    assert np.allclose(resumed.head.weight, clean.head_.weight, atol=1e-5)
    assert resumed.metrics["accuracy"] == clean.metrics_["accuracy"]


# Runs the CLI with the feature cache pausing in the main thread after its 4th entry, so
# Ctrl-C lands mid-extraction however busy the machine is (no race against progress).
PAUSE_AFTER_FOUR = """
import pathlib, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # as a terminal's foreground job: a parent
# that ignores SIGINT (a test runner after some library's handler) would hand the child SIG_IGN
from artstyle.features import cache
marker = pathlib.Path(sys.argv.pop(1))
put, stored = cache.FeatureCache.put, []
def paused_put(self, key, vector):
    put(self, key, vector)
    stored.append(key)
    if len(stored) == 4:
        marker.touch()
        time.sleep(300)
cache.FeatureCache.put = paused_put
from artstyle.apps.cli import main
sys.argv[0] = "artstyle"
main()
"""


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(paintings, tmp_path):
    cache, marker = tmp_path / "cache", tmp_path / "paused"
    command = [sys.executable, "-c", PAUSE_AFTER_FOUR, str(marker), "train", str(paintings),
               "--out", str(tmp_path / "model"), "--cache-dir", str(cache), "--batch-size", "2", *FAST_CLI]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert marker.exists(), "the run never reached its fourth cached image"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "resume" in err and "Traceback" not in err
    assert not (tmp_path / "model").exists()
    assert len(_cached(cache)) == 4, "the images finished before Ctrl-C stay cached"
    time.sleep(0.5)
    assert _processes_mentioning(str(cache)) == [], "decode workers outlived the interrupted run"


def _processes_mentioning(text):
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                found.append(cmdline.parent.name)
        except OSError:
            pass  # the process ended while we looked
    return found


def _lanes():
    """Threads decoding and embedding groups of images."""
    return [t for t in threading.enumerate() if t.name.startswith("artstyle-lane")]


def test_an_error_mid_extraction_leaves_no_lanes_running(tmp_path):
    paths = []
    for i in range(40):
        paths.append(tmp_path / f"{i}.png")
        paint(list(STYLES)[i % 4], 0, seed=i).save(paths[-1])
    clf = StyleClassifier(features="global", cache_dir=False, workers=2, batch_size=4, show_progress=False)
    backbone = clf.feature_extractors[0].backbone
    calls = []

    def failing_embed(batch, stats=False, threads=None):
        calls.append(len(_lanes()))
        if len(calls) == 3:
            raise RuntimeError("out of memory")
        return type(backbone).embed(backbone, batch, stats, threads)

    backbone.embed = failing_embed
    with pytest.raises(RuntimeError, match="out of memory") as error:
        clf.extract(paths)
    assert error.traceback  # the traceback, frames and all, is still alive here
    assert calls[-1] == 2  # both lanes were there when the network failed
    deadline = time.monotonic() + 10
    while _lanes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _lanes() == []
