"""run_sharded: the transform over any size of input, shard by shard, resumable, on one machine or a Ray cluster."""

import dataclasses
import glob
import logging
import os
import sys
import time
from dataclasses import dataclass

import datasets
from tqdm.auto import tqdm

from .anonymize import Summary
from .layout import RunLayout
from .local import LocalExecutor
from .manifest import build_manifest, check_resumable, input_fingerprint
from .source import ShardSource
from .step import AnonymizeShard

logger = logging.getLogger(__name__)

ENGINES = ("local", "ray")


@dataclass
class RunSummary(Summary):
    """A Summary of every shard of the run, plus what this call did."""

    shards: int = 0
    shards_written: int = 0
    shards_skipped: int = 0
    rows_written: int = 0

    @property
    def images_per_second(self) -> float:
        """Rows written by this call over its time (skipped shards cost nothing, so they don't count)."""
        return self.rows_written / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        return f"{super().__str__()}; {self.shards} shards ({self.shards_written} written now, {self.shards_skipped} already done)"


def run_sharded(
    ds,
    transform,
    output_dir: str,
    shard_size: int = 1000,
    engine: str = "local",
    num_workers=None,
    ray_address=None,
    limit=None,
    overwrite: bool = False,
    batch_size: int = 8,
    gpus_per_worker=None,
) -> RunSummary:
    """Anonymize ``ds`` into ``output_dir`` as parquet shards of ``shard_size`` rows, each with a completion marker.

    Rerunning the same call skips finished shards; a folder made with other settings or
    another input is refused (``overwrite=True`` clears it first). The folder loads with
    ``load_dataset("parquet", data_dir=output_dir)`` or :func:`load_shards`.

    Args:
        ds: a ``datasets.Dataset`` or a streaming ``IterableDataset``; a ``DatasetDict`` runs each
            split into ``output_dir/<split>``.
        transform: an ``Unsafe2Safe``.
        engine: ``"local"`` (this machine's processes) or ``"ray"`` (Ray Data actors).
        num_workers: processes or Ray actors; default one per GPU, else 1 (local) or every CPU (ray).
        ray_address: join this Ray cluster instead of starting a local one.
        limit: only the first ``limit`` rows (a trial run; a later full run keeps its full shards).
        batch_size: rows per transform call inside a shard.
        gpus_per_worker: Ray only; default 1 when the cluster has GPUs, else 0.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if isinstance(ds, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        # One run per split, in a folder named after it: load_dataset("parquet", data_dir=...)
        # then gives the splits back (for datasets' split names: train, validation, test, ...).
        options = dict(shard_size=shard_size, engine=engine, num_workers=num_workers, ray_address=ray_address, limit=limit,
                       overwrite=overwrite, batch_size=batch_size, gpus_per_worker=gpus_per_worker)
        return _combined([run_sharded(split, transform, os.path.join(output_dir, name), **options) for name, split in ds.items()])
    start = time.perf_counter()
    source = ShardSource(ds, transform.image_column, shard_size, limit)
    features = transform.features(source.features)
    layout = RunLayout(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    if overwrite:
        layout.clear()
    layout.prepare()

    fingerprint = input_fingerprint(ds, source.first_shard() if source.streaming else None)
    manifest = build_manifest(transform, fingerprint, shard_size, source.total_rows, features)
    if os.path.exists(layout.manifest_path):
        check_resumable(layout.manifest_path, manifest)
    layout.write_json(layout.manifest_path, manifest)

    progress = _Progress(layout.finished(), source.total_rows, engine)
    executor = _executor(engine, num_workers, ray_address, gpus_per_worker)
    step = AnonymizeShard(transform, features, output_dir, shard_size, batch_size)
    try:
        executor.run(step, source, progress)
    finally:
        progress.bar.close()
    summary = _summary(progress.markers, progress.skipped)
    summary.seconds = time.perf_counter() - start
    logger.info("%s", summary)
    return summary


class _Progress:
    """What is done: the markers found at the start, the shards finished since, the bar."""

    def __init__(self, finished: dict, total_rows, engine: str):
        self.finished = {index: marker["rows_in"] for index, marker in finished.items()}
        self._found = finished
        self.markers, self.skipped = {}, set()
        self.bar = tqdm(total=total_rows, unit="row", desc=f"Unsafe2Safe [{engine}]", dynamic_ncols=True)

    def is_done(self, index: int, rows: int) -> bool:
        """True (and counted) for a shard finished before with this many rows; a short shard of a trial run is redone."""
        if self.finished.get(index) != rows:
            return False
        self.markers[index] = self._found[index]
        self.skipped.add(index)
        self.bar.update(rows)
        return True

    def on_done(self, marker: dict) -> None:
        self.markers[marker["shard"]] = marker
        self.bar.update(marker["rows_in"])


def _executor(engine, num_workers, ray_address, gpus_per_worker):
    if engine == "ray":
        from .ray_engine import RayExecutor

        return RayExecutor(num_workers, ray_address, gpus_per_worker)
    if ray_address:
        raise ValueError("ray_address is for engine='ray'")
    return LocalExecutor(num_workers or _gpu_count() or 1)


def _gpu_count() -> int:
    """GPUs this process may use, without importing torch (seconds of start-up the local preset never needs)."""
    if "torch" in sys.modules:
        return sys.modules["torch"].cuda.device_count()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    return len(glob.glob("/dev/nvidia[0-9]*"))


def _combined(summaries) -> RunSummary:
    total = RunSummary()
    for summary in summaries:
        for field in dataclasses.fields(RunSummary):
            if field.name == "categories":
                for category, n in summary.categories.items():
                    total.categories[category] = total.categories.get(category, 0) + n
            else:
                setattr(total, field.name, getattr(total, field.name) + getattr(summary, field.name))
    total.categories = dict(sorted(total.categories.items()))
    return total


def _summary(markers: dict, skipped: set) -> RunSummary:
    summary = RunSummary(shards=len(markers), shards_skipped=len(skipped), shards_written=len(markers) - len(skipped))
    counted = [f.name for f in dataclasses.fields(Summary) if f.type in (int, "int")]
    categories = {}
    for index in sorted(markers):
        if index not in skipped:
            summary.rows_written += markers[index]["rows_in"]
        counts = markers[index]["summary"]
        for name in counted:
            setattr(summary, name, getattr(summary, name) + counts.get(name, 0))
        for category, n in counts["categories"].items():
            categories[category] = categories.get(category, 0) + n
    summary.categories = dict(sorted(categories.items()))
    return summary
