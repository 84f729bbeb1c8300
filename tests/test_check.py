"""`artstyle check`: the dataset doctor finds planted problems, and only those, without touching the data."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synth import make_tree, paint
from typer.testing import CliRunner

from artstyle import check_dataset
from artstyle.apps.cli import app
from artstyle.data.doctor import difference_hash

MIN_SIDE = ["--min-side", "95"]  # the generated paintings (and the planted copy) are 98-240 px


@pytest.fixture(scope="module")
def messy(tmp_path_factory) -> Path:
    """A clean generated tree plus one planted instance of every problem the doctor knows."""
    root = make_tree(tmp_path_factory.mktemp("messy"), styles=["01_StripedArt", "02_dot_painting", "05_Rings"],
                     artists=3, per_artist=4)
    stripes, dots, rings = root / "01_StripedArt", root / "02_dot_painting", root / "05_Rings"
    shutil.copy(stripes / "Painter A0" / "0.jpg", stripes / "Painter B0" / "copy of 0.jpg")  # same class
    shutil.copy(dots / "Painter A1" / "1.jpg", rings / "Painter A2" / "misfiled.jpg")  # across classes
    original = Image.open(rings / "Painter C2" / "2.jpg")
    resized = original.resize((original.width * 7 // 10, original.height * 7 // 10), Image.Resampling.LANCZOS)
    resized.save(rings / "Painter B2" / "small version.jpg", quality=60)  # near duplicate, same class
    good = (stripes / "Painter C0" / "3.jpg").read_bytes()
    (stripes / "Painter C0" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (dots / "Painter B1" / "notes.jpg").write_text("not a picture")
    (dots / "Painter B1" / "empty.png").write_bytes(b"")
    paint("02_dot_painting", artist=0, seed=77, size=(90, 70)).save(dots / "Painter C1" / "thumb.jpg", quality=90)
    (dots / "painter_a0").mkdir()  # the stripes class's "Painter A0", spelled differently
    paint("02_dot_painting", artist=0, seed=78, size=(200, 160)).save(dots / "painter_a0" / "late work.jpg", quality=90)
    return root


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_check_finds_every_planted_problem_and_nothing_else(messy):
    before = _snapshot(messy)
    runner = CliRunner()
    result = runner.invoke(app, ["-q", "check", str(messy), "--format", "json", *MIN_SIDE])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)

    assert found["class_counts"] == {"dot painting": 12 + 1 + 1, "rings": 12 + 2, "striped art": 12 + 1}
    assert found["artists_per_class"] == {"dot painting": 4, "rings": 3, "striped art": 3}
    assert {u["path"]: u["reason"] for u in found["unreadable"]} == {
        "01_StripedArt/Painter C0/truncated.jpg": "cannot decode: truncated image data",
        "02_dot_painting/Painter B1/empty.png": "empty file (0 bytes)",
        "02_dot_painting/Painter B1/notes.jpg": "not a readable image (unknown or corrupt format)",
    }
    assert found["exact_duplicates"] == [
        {"paths": ["01_StripedArt/Painter A0/0.jpg", "01_StripedArt/Painter B0/copy of 0.jpg"], "across_classes": False},
        {"paths": ["02_dot_painting/Painter A1/1.jpg", "05_Rings/Painter A2/misfiled.jpg"], "across_classes": True},
    ]
    assert [(n["a"], n["b"], n["across_classes"]) for n in found["near_duplicates"]] == [
        ("05_Rings/Painter B2/small version.jpg", "05_Rings/Painter C2/2.jpg", False)
    ]
    assert [t["path"] for t in found["tiny"]] == ["02_dot_painting/Painter C1/thumb.jpg"]
    assert found["artists_in_several_classes"] == {"Painter A0": {"dot painting": 1, "striped art": 4}}
    assert found["dominated_by_one_artist"] == {}  # 3-4 painters with 4-5 images each
    assert _snapshot(messy) == before  # not one byte or timestamp changed


def test_the_report_has_a_plot_per_finding_and_the_fix_plan_suggests_actions(messy, tmp_path):
    before = _snapshot(messy)
    report, plan = tmp_path / "check.html", tmp_path / "plan.csv"
    result = CliRunner().invoke(app, ["-q", "check", str(messy), *MIN_SIDE, "--report", str(report), "--fix-plan", str(plan)])
    assert result.exit_code == 0, result.output
    assert "unreadable: 3" in result.stdout and "near duplicates: 1" in result.stdout

    page = report.read_text()
    assert "http" not in page.replace("http-equiv", "")  # self-contained: no external asset
    plots = {alt for alt in ("images per movement", "artists per movement", "largest artist share", "image sizes",
                             "unreadable files by reason",
                             "exact duplicates per movement", "nearest-image distances", "artists under several movements")
             if f'alt="{alt}"' in page}
    assert len(plots) == 8
    assert page.count("data:image/png;base64,") >= 8 and page.count("data:image/jpeg;base64,") >= 5  # plots, thumbnails

    with plan.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    actions = {(r["action"], r["path"]) for r in rows}
    assert ("delete", "01_StripedArt/Painter B0/copy of 0.jpg") in actions
    assert ("delete", "01_StripedArt/Painter A0/0.jpg") not in actions  # one copy is kept
    assert {("review-label", "02_dot_painting/Painter A1/1.jpg"), ("review-label", "05_Rings/Painter A2/misfiled.jpg")} <= actions
    assert ("review-duplicate", "05_Rings/Painter C2/2.jpg") in actions
    assert ("delete-or-replace", "01_StripedArt/Painter C0/truncated.jpg") in actions
    assert ("replace", "02_dot_painting/Painter C1/thumb.jpg") in actions
    assert ("review-artist", "Painter A0") in actions
    assert _snapshot(messy) == before


def test_difference_hash_keeps_copies_close_and_different_paintings_far():
    original = paint("03-Brush Strokes", artist=1, seed=4, size=(400, 300))
    copy = original.resize((240, 180), Image.Resampling.LANCZOS)
    other = paint("03-Brush Strokes", artist=1, seed=5, size=(400, 300))  # same style and artist, new picture

    def bits(a, b) -> int:
        return int(sum(bin(x ^ y).count("1") for x, y in zip(difference_hash(a), difference_hash(b))))

    assert bits(original, copy) <= 6
    assert bits(original, other) >= 30


def test_check_of_a_clean_tree_reports_no_problems(tmp_path):
    root = make_tree(tmp_path / "clean", styles=["01_StripedArt", "05_Rings"], artists=2, per_artist=3)
    check = check_dataset(root, min_side=100, show_progress=False)
    assert (check.unreadable, check.exact_duplicates, check.near_duplicates, check.tiny()) == ([], [], [], [])
    assert check.fix_plan() == []


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() == 0, reason="root reads unreadable files")
def test_a_file_without_read_permission_is_reported(tmp_path):
    root = make_tree(tmp_path / "t", styles=["01_StripedArt", "05_Rings"], artists=2, per_artist=2)
    locked = root / "05_Rings" / "Painter A1" / "0.jpg"
    locked.chmod(0)
    try:
        check = check_dataset(root, show_progress=False)
    finally:
        locked.chmod(0o644)
    assert check.unreadable == [("05_Rings/Painter A1/0.jpg", "permission denied")]


def test_a_movement_painted_mostly_by_one_artist_is_flagged(tmp_path):
    root = make_tree(tmp_path / "t", styles=["01_StripedArt", "05_Rings"], artists=2, per_artist=3)
    for n in range(4):  # Painter A1 now has 7 of the 10 rings
        paint("05_Rings", artist=0, seed=500 + n).save(root / "05_Rings" / "Painter A1" / f"extra {n}.jpg", quality=90)
    (root / "01_StripedArt" / "Unidentified_artists").mkdir()
    for n in range(5):  # an "unidentified" folder is many hands, never flagged
        paint("01_StripedArt", artist=1, seed=600 + n).save(root / "01_StripedArt" / "Unidentified_artists" / f"{n}.jpg")
    check = check_dataset(root, min_side=100, show_progress=False)
    assert check.dominated() == {"rings": {"artist": "Painter A1", "share": 0.7}}
    assert [r["action"] for r in check.fix_plan()] == ["add-artists"]


def test_the_cli_defaults_are_the_library_defaults_and_a_missing_folder_is_one_line(tmp_path):
    import inspect

    from artstyle.apps import cli
    from artstyle.data import doctor

    options = inspect.signature(cli.check).parameters
    assert (options["min_side"].default.default, options["near_distance"].default.default) == (
        doctor.MIN_SIDE, doctor.NEAR_DISTANCE)
    result = CliRunner().invoke(app, ["check", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "not a folder" in str(result.exception)


def test_near_duplicate_search_finds_what_all_pairs_finds():
    """Multi-index hashing against the all-pairs comparison it replaces, on planted copies."""
    from artstyle.data.doctor import _pairs_within, near_duplicate_pairs, nearest_distances

    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 256, size=(1500, 16), dtype=np.uint8)
    for _ in range(150):  # copies with 0-13 flipped bits
        i, j = rng.integers(0, len(hashes), 2)
        bits = np.unpackbits(hashes[i])
        bits[rng.choice(128, rng.integers(0, 14), replace=False)] ^= 1
        hashes[j] = np.packbits(bits)
    for distance in (0, 6, 12, 40):  # 40: chunks too narrow, all pairs
        found = near_duplicate_pairs(hashes, distance)
        assert found == sorted(_pairs_within(hashes, np.arange(len(hashes)), distance, 256))
    assert len(near_duplicate_pairs(hashes, 12)) >= 100
    nearest = nearest_distances(hashes, sample=len(hashes))
    pairs = {i for i, j, d in near_duplicate_pairs(hashes, 12)} | {j for i, j, d in near_duplicate_pairs(hashes, 12)}
    assert {int(i) for i in np.flatnonzero(nearest <= 12)} == pairs
