"""Training pairs from a dataset the transform made from real photos: which rows, the CLIP filter, the split, the CLI."""

import io
import json
import logging

import datasets
import numpy as np
import pytest
from PIL import Image

from u2s_datasets import columns as C
from u2s_datasets.cli import main
from u2s_datasets.train import build_pairs, load_pairs
from u2s_datasets.train.pairs import CLIP_SIMILARITY, SOURCE_IMAGE, TARGET_IMAGE

from train_data import anonymized, one_thread, paths  # noqa: F401  (fixtures)


def _pixels(value) -> np.ndarray:
    image = value if isinstance(value, Image.Image) else Image.open(io.BytesIO(value["bytes"]))
    return np.asarray(image.convert("RGB"))


def test_pairs_are_the_edited_rows_with_their_triplet_and_target(anonymized):
    statuses = [C.base_status(s) if hasattr(C, "base_status") else s.split(";")[0] for s in anonymized[C.STATUS]]
    edited = statuses.count(C.STATUS_EDITED)
    assert edited >= 12 and C.STATUS_PASSTHROUGH in statuses, "the fixture must have edited and passthrough rows"
    pairs, stats = build_pairs(anonymized, clip_model=None, with_stats=True)
    assert (stats.rows, stats.edited, stats.kept) == (len(anonymized), edited, edited)
    assert stats.passthrough + stats.failed == len(anonymized) - edited
    rows = {row["name"]: row for row in anonymized}
    everything = datasets.concatenate_datasets(list(pairs.values()))
    assert set(everything.column_names) == {SOURCE_IMAGE, C.EDIT_INSTRUCTION, C.PUBLIC_CAPTION, TARGET_IMAGE, CLIP_SIMILARITY}
    sources = {_pixels(row["image"]).tobytes(): row for row in rows.values() if row[C.STATUS].startswith(C.STATUS_EDITED)}
    for pair in everything:
        row = sources[_pixels(pair[SOURCE_IMAGE]).tobytes()]
        assert pair[C.EDIT_INSTRUCTION] == row[C.EDIT_INSTRUCTION] and pair[C.PUBLIC_CAPTION] == row[C.PUBLIC_CAPTION]
        assert np.array_equal(_pixels(pair[TARGET_IMAGE]), _pixels(row[C.SAFE_IMAGE]))
        assert not np.array_equal(_pixels(pair[TARGET_IMAGE]), _pixels(pair[SOURCE_IMAGE]))


def test_split_is_deterministic_and_follows_the_fractions(anonymized):
    a = build_pairs(anonymized, clip_model=None, split=(0.5, 0.25, 0.25))
    b = build_pairs(anonymized, clip_model=None, split=(0.5, 0.25, 0.25))
    n = sum(len(part) for part in a.values())
    assert [len(a[s]) for s in ("train", "validation", "test")] == [n - 2 * (n // 4), n // 4, n // 4]
    for split in a:
        assert a[split][C.EDIT_INSTRUCTION] == b[split][C.EDIT_INSTRUCTION]
        assert [_pixels(x).tobytes() for x in a[split][SOURCE_IMAGE]] == [_pixels(x).tobytes() for x in b[split][SOURCE_IMAGE]]
    other = build_pairs(anonymized, clip_model=None, split=(0.5, 0.25, 0.25), seed=7)
    assert [_pixels(x).tobytes() for x in other["train"][SOURCE_IMAGE]] != [_pixels(x).tobytes() for x in a["train"][SOURCE_IMAGE]]
    with pytest.raises(ValueError, match="summing to 1"):
        build_pairs(anonymized, clip_model=None, split=(0.9, 0.2, 0.1))


def test_statuses_with_notes_count_and_failed_rows_are_left_out(anonymized):
    def mark(row, index):
        if index == 0:
            row[C.STATUS] = row[C.STATUS] + "; first of 3 frames kept"
        if index == 1:
            row[C.STATUS] = "error: editor failed"
        return row

    first_two = [C.base_status(s) if hasattr(C, "base_status") else s.split(";")[0] for s in anonymized[C.STATUS][:2]]
    assert first_two == [C.STATUS_EDITED] * 2
    marked = anonymized.map(mark, with_indices=True, load_from_cache_file=False)
    _, before = build_pairs(anonymized, clip_model=None, with_stats=True)
    _, after = build_pairs(marked, clip_model=None, with_stats=True)
    assert after.edited == before.edited - 1 and after.failed == before.failed + 1


def test_clip_filter_drops_a_pair_whose_target_is_its_source(anonymized, paths, caplog):
    edited = [i for i, s in enumerate(anonymized[C.STATUS]) if s.startswith(C.STATUS_EDITED)]
    unchanged = edited[0]

    def copy_source(row, index):
        if index == unchanged:
            row[C.SAFE_IMAGE] = row["image"]
        return row

    ds = anonymized.cast_column(C.SAFE_IMAGE, datasets.Image(decode=False)).map(copy_source, with_indices=True, load_from_cache_file=False)
    pairs, stats = build_pairs(ds, clip_model=paths["clip"], with_stats=True)
    assert stats.filtered_out == 1 and stats.kept == len(edited) - 1
    kept = datasets.concatenate_datasets(list(pairs.values()))
    assert all(0.7 <= s < 1 for s in kept[CLIP_SIMILARITY])
    dropped = _pixels(anonymized[unchanged]["image"]).tobytes()
    assert dropped not in {_pixels(x).tobytes() for x in kept[SOURCE_IMAGE]}
    with caplog.at_level(logging.WARNING):
        _, unfiltered = build_pairs(ds, clip_model=None, with_stats=True)
    assert unfiltered.kept == len(edited) and "No CLIP filter" in caplog.text
    with pytest.raises(ValueError, match="removed all"):
        build_pairs(ds, clip_model=paths["clip"], clip_threshold=1.0)


def test_no_edited_rows_is_a_clear_error(anonymized):
    passthrough = anonymized.filter(lambda s: not s.startswith(C.STATUS_EDITED), input_columns=C.STATUS)
    with pytest.raises(ValueError, match="no edited rows among"):
        build_pairs(passthrough, clip_model=None)
    with pytest.raises(KeyError, match="Unsafe2Safe"):
        build_pairs(anonymized.remove_columns(C.SAFE_IMAGE), clip_model=None)


def test_cli_writes_pairs_that_load_back(paths, tmp_path, capsys):
    out = str(tmp_path / "pairs")
    assert main(["pairs", paths["anonymized"], out, "--clip-model", paths["clip"], "--fractions", "0.8", "0.1", "0.1"]) == 0
    pairs, stats = load_pairs(out)
    with open(f"{out}/u2s_pairs.json") as f:
        assert json.load(f) == stats
    assert stats["clip_model"] == paths["clip"] and stats["split"] == [0.8, 0.1, 0.1]
    assert sum(len(p) for p in pairs.values()) == stats["kept"] > 0 and len(pairs["train"]) == stats["split_sizes"]["train"]
    assert "pairs from" in capsys.readouterr().out
    # An anonymized folder gives pairs directly.
    direct, direct_stats = load_pairs(paths["anonymized"], clip_model=None)
    assert direct_stats["edited"] == stats["edited"] and direct_stats["clip_model"] is None


def test_class_labels_come_along(anonymized):
    names = ["person", "document", "scene"]
    labels = [0 if n.split("-")[0] in ("astronaut", "grace_hopper", "camera") else 2 for n in anonymized["name"]]
    labelled = anonymized.add_column("category", labels).cast_column("category", datasets.ClassLabel(names=names))
    pairs = build_pairs(labelled, clip_model=None)
    assert pairs["train"].features["label"] == datasets.ClassLabel(names=names)
    assert set(pairs["train"]["label"]) == {0}, "every edited row is a face photo here"
    assert "label" not in build_pairs(anonymized, clip_model=None)["train"].column_names
