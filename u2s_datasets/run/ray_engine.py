"""Run shards on a Ray cluster with Ray Data: an actor pool over the pending shards.

``map_batches`` hands shards to a pool of actors, one per GPU (``num_gpus=1``) or one per
CPU slot for the CPU-only local preset; each actor runs the same step as the local
executor, so the shards are the same bytes. A ``datasets.Dataset`` travels to each actor
once (memory-mapped files travel as their paths) and each actor reads its own shards; a
streaming input is read by one task on the driver's machine, shard by shard as the actors
take them. On several machines the output folder, and a Dataset's files, must be on a file
system all of them see.
"""

import io
import json
import os

import pyarrow as pa
from ray.data import Datasource, ReadTask
from ray.data.block import BlockMetadata

from .source import ipc_bytes


class RayExecutor:
    """``ray_address=None`` starts a private local cluster (loopback) and stops it after;
    an address (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``) joins a running one,
    and so does a session the caller started with ``ray.init``."""

    def __init__(self, num_workers=None, ray_address=None, gpus_per_worker=None):
        self.num_workers = num_workers
        self.ray_address = ray_address
        self.gpus_per_worker = gpus_per_worker

    def run(self, step, source, progress) -> None:
        import ray

        import ray.data

        started = self._connect(ray)
        context = ray.data.DataContext.get_current().copy()
        context.enable_progress_bars = False  # the run's own bar counts rows
        # Each shard its own block: Ray would merge a reader's small rows (one per shard) into
        # one block, which a single actor would then work through alone.
        context.target_max_block_size = 1
        try:
            with ray.data.DataContext.current(context):
                self._run(ray, step, source, progress)
        finally:
            if started:
                ray.shutdown()

    def _connect(self, ray) -> bool:
        if ray.is_initialized():
            return False
        # Workers' own stderr stays in Ray's log folder; a failing shard still raises here.
        settings = {"include_dashboard": False, "configure_logging": False, "log_to_driver": False}
        if self.ray_address:
            ray.init(address=self.ray_address, **settings)
        else:
            cpus = max(self.num_workers or 1, os.cpu_count() or 1)
            ray.init(address="local", num_cpus=cpus, _node_ip_address="127.0.0.1", **settings)
        return True

    def _run(self, ray, step, source, progress) -> None:
        import ray.data

        if source.streaming:
            # No CPU reserved for the reader: the actors may hold every CPU slot.
            data = ray.data.read_datasource(_StreamShards(source, dict(progress.finished)), num_cpus=0, override_num_blocks=1)
            shards = None
        else:
            shards = [index for index in range(source.num_shards) if not progress.is_done(index, source.expected_rows(index))]
            if not shards:
                return
            data = ray.data.from_items([{"shard": i, "rows": None, "skipped": 0} for i in shards], override_num_blocks=len(shards))
        gpus = self.gpus_per_worker
        if gpus is None:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        workers = self.num_workers or int(ray.cluster_resources().get("GPU" if gpus else "CPU", 1)) or 1
        results = data.map_batches(
            _ShardActor,
            fn_constructor_kwargs={"step": step, "source": None if source.streaming else source},
            batch_size=1,  # one shard per call
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=min(workers, len(shards or range(workers)))),
            **({"num_gpus": gpus} if gpus else {"num_cpus": 1}),
        )
        for row in results.iter_rows():
            marker = json.loads(row["marker"])
            if "skipped" in marker:
                progress.is_done(marker["shard"], marker["skipped"])  # finished before: counted, not redone
            else:
                progress.on_done(marker)


class _StreamShards(Datasource):
    """A streaming input as one row per shard: its index and its rows as Arrow IPC bytes.

    A row (not a block of the shard's rows) so that Ray never splits or merges a shard.
    A shard finished before travels as its row count alone.
    """

    def __init__(self, source, finished: dict):
        super().__init__()
        self.source, self.finished = source, finished

    def estimate_inmemory_data_size(self):
        return None

    @property
    def supports_distributed_reads(self) -> bool:
        return False  # the input is readable where the driver runs

    def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
        source, finished = self.source, self.finished

        def read():
            for index, table in source.tables():
                if finished.get(index) == table.num_rows:
                    yield pa.table({"shard": [index], "rows": pa.array([None], pa.binary()), "skipped": [table.num_rows]})
                else:
                    yield pa.table({"shard": [index], "rows": pa.array([ipc_bytes(table)], pa.binary()), "skipped": [0]})

        return [ReadTask(read, BlockMetadata(num_rows=None, size_bytes=None, input_files=None, exec_stats=None))]


class _ShardActor:
    def __init__(self, step, source):
        self.step, self.source = step, source

    def __call__(self, batch: pa.Table) -> pa.Table:
        markers = []
        for index, rows, skipped in zip(batch["shard"].to_pylist(), batch["rows"].to_pylist(), batch["skipped"].to_pylist()):
            if skipped:
                markers.append(json.dumps({"shard": index, "skipped": skipped}))
                continue
            table = self.source.read(index) if rows is None else pa.ipc.open_stream(io.BytesIO(rows)).read_all()
            markers.append(json.dumps(self.step(index, table)))
        return pa.table({"marker": markers})
