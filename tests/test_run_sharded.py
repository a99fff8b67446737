"""Sharded runs: shards equal one datasets.map, resume after a kill, refuse a changed run, stream."""

import json
import os
import signal
import subprocess
import sys
import time

import datasets
import pyarrow.parquet as pq
import pytest

from sharded_rows import photo_rows
from u2s_datasets import Unsafe2Safe
from u2s_datasets import columns as C
from u2s_datasets.run import load_shards, run_sharded
from u2s_datasets.run.layout import RunLayout

ROWS, SHARD = 10, 4


@pytest.fixture(scope="module")
def transform():
    return Unsafe2Safe(detect_text=False)


@pytest.fixture(scope="module")
def rows():
    return photo_rows(ROWS)


@pytest.fixture(scope="module")
def mapped(rows, transform):
    """What one datasets.map over the whole input gives: the reference for every executor."""
    undecoded = rows.cast_column("image", datasets.Image(decode=False))
    return undecoded.map(transform, batched=True, batch_size=8, features=transform.features(undecoded.features))


@pytest.fixture(scope="module")
def local_run(rows, transform, tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("local"))
    summary = run_sharded(rows, transform, folder, shard_size=SHARD)
    return folder, summary


def shard_bytes(folder) -> dict:
    return {name: open(os.path.join(folder, name), "rb").read() for name in RunLayout(folder).shard_files()}


def test_shards_equal_one_map_and_load_back(local_run, mapped, transform):
    folder, summary = local_run
    assert RunLayout(folder).shard_files() == ["shard-00000.parquet", "shard-00001.parquet", "shard-00002.parquet"]
    assert [pq.read_metadata(os.path.join(folder, f)).num_rows for f in RunLayout(folder).shard_files()] == [4, 4, 2]
    loaded = datasets.load_dataset("parquet", data_dir=folder, split="train")
    assert loaded.features == mapped.features
    assert loaded.data.table.equals(mapped.data.table)  # image bytes included
    assert load_shards(folder).data.table.equals(mapped.data.table)
    statuses = mapped[C.STATUS]
    assert summary.rows == ROWS and summary.shards == 3 and summary.shards_written == 3
    assert summary.errors == sum(C.is_error(s) for s in statuses) == 1  # the corrupt row, redacted in its shard
    assert summary.edited == statuses.count(C.STATUS_EDITED) > 0
    assert summary.categories == {"people_faces": sum("people_faces" in c for c in mapped[C.PRIVACY_CATEGORIES])} != {"people_faces": 0}
    manifest = json.load(open(RunLayout(folder).manifest_path))
    assert manifest["config_hash"] == transform.config.hash() and manifest["input_fingerprint"] == photo_rows(ROWS)._fingerprint


def test_two_worker_processes_write_the_same_bytes(local_run, rows, transform, tmp_path):
    summary = run_sharded(rows, transform, str(tmp_path), shard_size=SHARD, num_workers=2)
    assert summary.shards_written == 3
    assert shard_bytes(str(tmp_path)) == shard_bytes(local_run[0])


def test_ray_actors_write_the_same_bytes(local_run, rows, transform, tmp_path):
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        summary = run_sharded(rows, transform, str(tmp_path / "dataset"), shard_size=SHARD, engine="ray", num_workers=2)
        pids = {json.load(open(RunLayout(str(tmp_path / "dataset")).marker_path(i)))["pid"] for i in range(3)}
        # A streaming input is read by one Ray task, shard by shard, and resumes likewise.
        stream = run_sharded(rows.to_iterable_dataset(), transform, str(tmp_path / "stream"), shard_size=SHARD, engine="ray", num_workers=2)
        again = run_sharded(rows.to_iterable_dataset(), transform, str(tmp_path / "stream"), shard_size=SHARD, engine="ray", num_workers=2)
    finally:
        ray.shutdown()
    assert summary.shards_written == 3 and summary.rows == ROWS and stream.shards_written == 3
    assert (again.shards_skipped, again.shards_written, again.rows) == (3, 0, ROWS)
    assert os.getpid() not in pids  # the shards were made in Ray's actors
    assert shard_bytes(str(tmp_path / "dataset")) == shard_bytes(local_run[0])
    assert shard_bytes(str(tmp_path / "stream")) == shard_bytes(local_run[0])


def test_rerun_skips_finished_shards_and_refuses_a_changed_run(local_run, rows, transform, tmp_path):
    folder = str(tmp_path)
    trial = run_sharded(rows, transform, folder, shard_size=SHARD, limit=5)  # shards of 4 and 1 rows
    assert (trial.rows, trial.shards) == (5, 2)
    first = os.stat(RunLayout(folder).shard_path(0)).st_mtime_ns
    full = run_sharded(rows, transform, folder, shard_size=SHARD)
    # Shard 0 is whole and kept; the trial's one-row shard 1 is redone at full size.
    assert (full.shards_skipped, full.shards_written, full.rows, full.rows_written) == (1, 2, ROWS, ROWS - SHARD)
    assert os.stat(RunLayout(folder).shard_path(0)).st_mtime_ns == first
    assert shard_bytes(folder) == shard_bytes(local_run[0])

    # A shard without its marker (killed between the two renames) is never taken as done.
    os.remove(RunLayout(folder).marker_path(2))
    with pytest.raises(ValueError, match="without a completion marker.*shard-00002"):
        load_shards(folder)
    redo = run_sharded(rows, transform, folder, shard_size=SHARD)
    assert (redo.shards_skipped, redo.shards_written) == (2, 1)
    assert shard_bytes(folder) == shard_bytes(local_run[0])

    with pytest.raises(ValueError, match=r"editor: 'blur' -> 'pixelate'.*overwrite"):
        run_sharded(rows, Unsafe2Safe(detect_text=False, editor="pixelate"), folder, shard_size=SHARD)
    with pytest.raises(ValueError, match=r"shard_size 4 -> 5"):
        run_sharded(rows, transform, folder, shard_size=5)
    with pytest.raises(ValueError, match=r"input_fingerprint"):
        run_sharded(rows.select(range(1, ROWS)), transform, folder, shard_size=SHARD)
    assert shard_bytes(folder) == shard_bytes(local_run[0])  # refused runs touched nothing

    pixelate = Unsafe2Safe(detect_text=False, editor="pixelate")
    again = run_sharded(rows, pixelate, folder, shard_size=SHARD, overwrite=True, limit=4)
    assert again.shards_written == 1 and RunLayout(folder).shard_files() == ["shard-00000.parquet"]
    assert json.load(open(RunLayout(folder).manifest_path))["config_hash"] == pixelate.config.hash()


def test_a_killed_run_resumes_without_redoing_finished_shards(transform, tmp_path):
    count, size, shard_size = 24, 256, 2
    folder = str(tmp_path / "out")
    script = os.path.join(os.path.dirname(__file__), "sharded_rows.py")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(__file__)), os.environ.get("PYTHONPATH", "")]))
    child = subprocess.Popen([sys.executable, script, folder, str(count), str(size), str(shard_size)], env=env, stderr=subprocess.DEVNULL)
    marker_dir = RunLayout(folder).marker_dir
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and child.poll() is None:
        if os.path.isdir(marker_dir) and sum(n.startswith("shard-") for n in os.listdir(marker_dir)) >= 3:
            break
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    before = RunLayout(folder).finished()
    total = count // shard_size
    assert 3 <= len(before) < total, f"the run was not stopped midway ({len(before)} of {total} shards)"
    kept = {i: os.stat(RunLayout(folder).shard_path(i)).st_mtime_ns for i in before}

    rows = photo_rows(count, size)
    summary = run_sharded(rows, transform, folder, shard_size=shard_size)
    assert (summary.shards_skipped, summary.shards_written) == (len(before), total - len(before))
    after = RunLayout(folder).finished()
    assert {i: after[i] for i in before} == before  # the same markers: nothing redone
    assert {i: os.stat(RunLayout(folder).shard_path(i)).st_mtime_ns for i in before} == kept
    assert not [n for n in os.listdir(folder) if n.startswith(".tmp-")]

    undecoded = rows.cast_column("image", datasets.Image(decode=False))
    whole = undecoded.map(transform, batched=True, batch_size=8, features=transform.features(undecoded.features))
    assert load_shards(folder).data.table.equals(whole.data.table)


def test_streaming_input_writes_shards_as_they_complete(rows, mapped, transform, tmp_path):
    yielded = []

    def stream():
        for row in rows.cast_column("image", datasets.Image(decode=False)):
            yielded.append(time.time())
            yield row

    iterable = datasets.IterableDataset.from_generator(stream, features=rows.features)
    summary = run_sharded(iterable, transform, str(tmp_path / "full"), shard_size=SHARD)
    assert (summary.rows, summary.shards) == (ROWS, 3)
    first_written = json.load(open(RunLayout(str(tmp_path / "full")).marker_path(0)))["finished_at"]
    assert first_written < yielded[-1]  # shard 0 was on disk before the stream ended
    assert load_shards(str(tmp_path / "full")).data.table.equals(mapped.data.table)

    again = run_sharded(iterable, transform, str(tmp_path / "full"), shard_size=SHARD)
    assert (again.shards_skipped, again.shards_written) == (3, 0)

    # With worker processes the stream is read here and each shard is sent to a worker.
    trial = run_sharded(iterable, transform, str(tmp_path / "trial"), shard_size=SHARD, limit=5, num_workers=2)
    assert (trial.rows, trial.shards) == (5, 2)
    assert load_shards(str(tmp_path / "trial")).data.table.equals(mapped.data.table.slice(0, 5))
