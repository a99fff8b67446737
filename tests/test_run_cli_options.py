"""The sharded-run command-line options drive run_sharded."""

import argparse

import datasets
import pytest

from sharded_rows import photo_rows
from u2s_datasets import Unsafe2Safe
from u2s_datasets.run.cli_options import add_run_arguments, run_from_args
from u2s_datasets.run.layout import RunLayout


def parse(*argv):
    return add_run_arguments(argparse.ArgumentParser()).parse_args(list(argv))


def test_options_run_resume_and_refuse(tmp_path):
    rows, transform, folder = photo_rows(6, 48), Unsafe2Safe(detect_text=False), str(tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="no sharded run"):
        run_from_args(parse("--resume"), rows, transform, folder)
    trial = run_from_args(parse("--shard-size", "2", "--limit", "3"), rows, transform, folder)
    assert (trial.rows, trial.shards) == (3, 2)
    done = run_from_args(parse("--shard-size", "2", "--resume"), rows, transform, folder)
    assert (done.shards_skipped, done.shards_written, done.rows) == (1, 2, 6)
    assert RunLayout(folder).shard_files() == [f"shard-0000{i}.parquet" for i in range(3)]
    with pytest.raises(ValueError, match="shard_size 2 -> 3"):
        run_from_args(parse("--shard-size", "3"), rows, transform, folder)
    fresh = run_from_args(parse("--shard-size", "3", "--overwrite"), rows, transform, folder)
    assert (fresh.shards_written, fresh.rows) == (2, 6)
    assert RunLayout(folder).shard_files() == ["shard-00000.parquet", "shard-00001.parquet"]
    with pytest.raises(SystemExit):
        parse("--resume", "--overwrite")
    with pytest.raises(ValueError, match="--engine ray"):
        run_from_args(parse("--ray-address", "auto"), rows, transform, folder)


def test_a_dataset_dict_runs_each_split_into_its_folder(tmp_path):
    rows, transform = photo_rows(6, 48), Unsafe2Safe(detect_text=False)
    splits = datasets.DatasetDict({"train": rows.select(range(4)), "test": rows.select(range(4, 6))})
    summary = run_from_args(parse("--shard-size", "3"), splits, transform, str(tmp_path))
    assert (summary.rows, summary.shards, summary.errors) == (6, 3, 1)  # row 3, the corrupt one, is in train
    loaded = datasets.load_dataset("parquet", data_dir=str(tmp_path))
    assert {name: loaded[name]["name"] for name in loaded} == {name: splits[name]["name"] for name in splits}
