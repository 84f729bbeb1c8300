import shutil

import pytest
from synth import paint

from artstyle import DatasetError, scan_dataset


def _tree(root):
    (root / "18_PopArt" / "Warhol").mkdir(parents=True)
    (root / "14_Cubism" / "Picasso_Pablo").mkdir(parents=True)
    (root / "14_Cubism" / "Braque").mkdir(parents=True)
    paint("01_StripedArt", 0, 1).save(root / "18_PopArt" / "Warhol" / "1.jpg")
    paint("01_StripedArt", 0, 2).save(root / "18_PopArt" / "loose.png")  # no artist folder
    paint("02_dot_painting", 0, 3).save(root / "14_Cubism" / "Picasso_Pablo" / "1.jpg")  # same name, other artist
    paint("02_dot_painting", 0, 4).save(root / "14_Cubism" / "Braque" / "1.jpg")
    (root / "14_Cubism" / "Braque" / ".DS_Store").write_bytes(b"x")
    (root / "14_Cubism" / "Braque" / "notes.txt").write_text("hi")
    (root / ".hidden_class").mkdir()
    (root / "README.md").write_text("top-level file")
    return root


def test_scan_labels_artists_and_ignored(tmp_path):
    ds = scan_dataset(_tree(tmp_path), show_progress=False)
    assert ds.labels == ["cubism", "pop art"]
    by_path = {r.path: r for r in ds.records}
    assert set(by_path) == {
        "18_PopArt/Warhol/1.jpg",
        "18_PopArt/loose.png",
        "14_Cubism/Picasso_Pablo/1.jpg",
        "14_Cubism/Braque/1.jpg",
    }
    assert by_path["18_PopArt/loose.png"].artist == "unknown"
    assert by_path["14_Cubism/Braque/1.jpg"].artist == "Braque"
    assert ds.ignored["hidden"] == 2 and ds.ignored["not an image"] == 1
    assert ds.ignored["file outside class folders"] == 1
    assert ds.class_counts() == {"cubism": 2, "pop art": 2}


def test_duplicates_and_conflicts(tmp_path):
    root = _tree(tmp_path)
    shutil.copy(root / "18_PopArt/Warhol/1.jpg", root / "14_Cubism/Braque/copy.jpg")
    shutil.copy(root / "14_Cubism/Braque/1.jpg", root / "14_Cubism/Braque/again.jpg")
    ds = scan_dataset(root, show_progress=False)
    assert len(ds.duplicate_groups()) == 2
    conflicts = ds.conflicting_duplicates()
    assert [sorted(r.path for r in g) for g in conflicts] == [["14_Cubism/Braque/copy.jpg", "18_PopArt/Warhol/1.jpg"]]


def test_folders_naming_the_same_class_merge(tmp_path):
    for name in ("pop_art", "Pop Art"):
        (tmp_path / name).mkdir()
        paint("01_StripedArt", 0, len(name)).save(tmp_path / name / "a.jpg")
    ds = scan_dataset(tmp_path, show_progress=False)
    assert ds.labels == ["pop art"] and len(ds.records) == 2


def test_empty_or_missing_tree_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="no images found"):
        scan_dataset(tmp_path, show_progress=False)
    with pytest.raises(DatasetError, match="not a folder"):
        scan_dataset(tmp_path / "missing", show_progress=False)
