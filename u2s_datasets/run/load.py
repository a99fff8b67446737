"""Read a sharded run's output back as one Dataset."""

import os

import datasets

from .layout import RunLayout


def load_shards(output_dir: str, check_complete: bool = True) -> datasets.Dataset:
    """The shards of ``output_dir`` as a memory-mapped ``datasets.Dataset`` (``save_to_disk`` works on it).

    With ``check_complete`` every shard must have its completion marker (a run still going
    or killed leaves some without), so a half-written run is never taken for a whole one.
    """
    layout = RunLayout(output_dir)
    files = layout.shard_files()
    if not files:
        raise FileNotFoundError(f"no shard-*.parquet files in {output_dir!r}")
    if check_complete:
        finished = layout.finished()
        unmarked = [name for name in files if int(name[len("shard-") : -len(".parquet")]) not in finished]
        if unmarked:
            raise ValueError(f"{output_dir!r}: shards without a completion marker ({', '.join(unmarked[:5])}); finish the run first")
    return datasets.Dataset.from_parquet([os.path.join(output_dir, name) for name in files])
