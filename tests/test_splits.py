from collections import defaultdict

import pytest

from artstyle import ImageRecord, make_split
from artstyle.data.splits import artist_key, parse_splits_csv, splits_csv


def _records(classes=4, artists=5, per_artist=(1, 2, 3, 6, 10), seed_tag=""):
    out = []
    for c in range(classes):
        for a in range(artists):
            for n in range(per_artist[a % len(per_artist)]):
                out.append(ImageRecord(f"c{c}/a{a}/{n}.jpg", f"class {c}", f"Artist {c}-{a}", f"h{seed_tag}{c}-{a}-{n}"))
    return out


def test_artist_split_is_artist_disjoint_and_balanced():
    records = _records()
    split = make_split(records, "artist", seed=3)
    sides = defaultdict(set)
    for r in records:
        sides[artist_key(r)].add(split.assignment[r.path])
    assert all(len(s) == 1 for s in sides.values())
    for c in range(4):
        names = {split.assignment[r.path] for r in records if r.label == f"class {c}"}
        assert names == {"train", "val", "test"}  # every class tested and validated
    counts = split.counts()
    assert counts["train"] > counts["test"] > 0 and counts["val"] > 0


def test_artist_in_two_movements_stays_on_one_side():
    records = _records()
    records.append(ImageRecord("c1/x/dup.jpg", "class 1", "artist 0-0", "other"))  # same person, other case
    split = make_split(records, "artist", seed=0)
    assert split.assignment["c1/x/dup.jpg"] == split.assignment["c0/a0/0.jpg"]


def test_placeholder_artists_are_not_one_person():
    a = ImageRecord("a/Unidentified_artists/1.jpg", "rococo", "Unidentified_artists", "x")
    b = ImageRecord("b/Unidentified_artists/1.jpg", "baroque", "Unidentified_artists", "y")
    assert artist_key(a) != artist_key(b)


@pytest.mark.parametrize("mode", ["stratified", "artist"])
def test_splits_are_reproducible_by_seed(mode):
    records = _records()
    first = make_split(records, mode, seed=7).assignment
    assert make_split(list(reversed(records)), mode, seed=7).assignment == first
    assert any(make_split(records, mode, seed=s).assignment != first for s in range(8, 12))


def test_stratified_fractions():
    records = [ImageRecord(f"c{c}/{i}.jpg", f"c{c}", "unknown", f"{c}-{i}") for c in range(3) for i in range(100)]
    counts = make_split(records, "stratified", seed=1).counts()
    assert counts == {"train": 240, "val": 30, "test": 30}


def test_duplicates_never_cross_sides():
    records = _records(classes=2)
    # the same bytes in two classes and twice in one class
    records += [
        ImageRecord("c0/dupe.jpg", "class 0", "X", "shared"),
        ImageRecord("c1/dupe.jpg", "class 1", "Y", "shared"),
    ]
    for seed in range(20):
        split = make_split(records, "stratified", seed=seed)
        assert split.assignment["c0/dupe.jpg"] == split.assignment["c1/dupe.jpg"]


def test_tiny_classes_are_kept_for_training_and_reported(caplog):
    records = _records(classes=2)
    records += [ImageRecord("solo/1.jpg", "solo", "Lonely", "s1"), ImageRecord("solo/2.jpg", "solo", "Lonely", "s2")]
    split = make_split(records, "artist", seed=0)
    assert split.untested == ["solo"]
    assert {split.assignment["solo/1.jpg"], split.assignment["solo/2.jpg"]} == {"train"}
    assert "untested" in caplog.text and "solo" in caplog.text
    tiny = [ImageRecord("t/1.jpg", "t", "unknown", "t1"), ImageRecord("u/1.jpg", "u", "unknown", "u1")]
    assert make_split(tiny, "stratified").untested == ["t", "u"]


def test_test_fraction_zero_means_train_and_val_only():
    split = make_split(_records(), "stratified", seed=0, test_fraction=0.0)
    assert split.counts()["test"] == 0 and split.untested == []


def test_splits_csv_round_trip():
    records = _records(classes=2)
    split = make_split(records, "artist", seed=0)
    rows = parse_splits_csv(splits_csv(records, split))
    assert {row["path"]: row["split"] for row in rows} == split.assignment
