"""Where a sharded run keeps its files, and how each is written so a kill never leaves half a file.

    OUTPUT_DIR/
      shard-00000.parquet ...      the safe rows, loadable with load_dataset("parquet", data_dir=OUTPUT_DIR)
      .u2s/run.json                settings, config hash and input fingerprint of the run
      .u2s/done/shard-00000.json   completion marker: written after its shard, so it vouches for it

Everything that is not a shard lives under a hidden folder, which ``datasets`` skips.
"""

import json
import os
import re
import uuid

import pyarrow as pa
import pyarrow.parquet as pq

STATE_DIR = ".u2s"
MANIFEST = "run.json"
MARKER_DIR = "done"
SHARD_PATTERN = re.compile(r"^shard-(\d{5,})\.parquet$")
# Fixed writer settings: the same table gives the same bytes, whichever executor wrote it.
PARQUET_OPTIONS = {"compression": "zstd", "write_statistics": True, "row_group_size": 1024}


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


class RunLayout:
    def __init__(self, output_dir: str):
        self.output_dir = output_dir
        self.state_dir = os.path.join(output_dir, STATE_DIR)
        self.marker_dir = os.path.join(self.state_dir, MARKER_DIR)
        self.manifest_path = os.path.join(self.state_dir, MANIFEST)

    def shard_path(self, index: int) -> str:
        return os.path.join(self.output_dir, shard_name(index))

    def marker_path(self, index: int) -> str:
        return os.path.join(self.marker_dir, f"shard-{index:05d}.json")

    def prepare(self) -> None:
        os.makedirs(self.marker_dir, exist_ok=True)
        # Temp files of a killed run: never vouched for by a marker, so never read.
        for folder in (self.output_dir, self.state_dir, self.marker_dir):
            for name in os.listdir(folder):
                if name.startswith(".tmp-"):
                    os.remove(os.path.join(folder, name))

    def finished(self) -> dict:
        """Shard index -> marker contents, for every shard whose marker and file are both there."""
        done = {}
        if not os.path.isdir(self.marker_dir):
            return done
        for name in os.listdir(self.marker_dir):
            match = re.match(r"^shard-(\d+)\.json$", name)
            if match and os.path.exists(self.shard_path(int(match.group(1)))):
                with open(os.path.join(self.marker_dir, name)) as f:
                    done[int(match.group(1))] = json.load(f)
        return done

    def shard_files(self) -> list:
        return sorted(name for name in os.listdir(self.output_dir) if SHARD_PATTERN.match(name))

    def clear(self) -> None:
        """Remove what a run wrote (shards, markers, manifest) and nothing else."""
        if not os.path.isdir(self.output_dir):
            return
        for name in self.shard_files():
            os.remove(os.path.join(self.output_dir, name))
        if os.path.isdir(self.marker_dir):
            for name in os.listdir(self.marker_dir):
                os.remove(os.path.join(self.marker_dir, name))
        if os.path.exists(self.manifest_path):
            os.remove(self.manifest_path)

    def write_shard(self, index: int, table: pa.Table, marker: dict) -> None:
        """The shard, then its marker; each to a temp name, fsynced, then renamed into place."""
        _atomic(self.shard_path(index), lambda path: pq.write_table(table, path, **PARQUET_OPTIONS))
        self.write_json(self.marker_path(index), marker)

    def write_json(self, path: str, payload: dict) -> None:
        def write(tmp):
            with open(tmp, "w") as f:
                json.dump(payload, f, indent=2, sort_keys=True)

        _atomic(path, write)


def _atomic(path: str, write) -> None:
    folder = os.path.dirname(path)
    tmp = os.path.join(folder, f".tmp-{uuid.uuid4().hex}-{os.path.basename(path)}")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(folder)


def _fsync_dir(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
