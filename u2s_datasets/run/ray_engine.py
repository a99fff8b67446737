"""Run shards on a Ray cluster with Ray Data: an actor pool over the pending shards.

Each pending shard becomes one block in Ray's object store (spilled to disk past its
size), tagged with its index; ``map_batches`` hands whole blocks to a pool of actors,
one per GPU (``num_gpus=1``) or one per CPU slot for the CPU-only local preset. Each
actor runs the same step as the local executor, so the shards are the same bytes.
On several machines the output folder must be one shared file system.
"""

import json
import logging
import os

import pyarrow as pa
import pyarrow.compute as pc

logger = logging.getLogger(__name__)

SHARD_COLUMN = "__u2s_shard"


class RayExecutor:
    """``ray_address=None`` starts a private local cluster (loopback) and stops it after;
    an address (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``) joins a running one."""

    def __init__(self, num_workers=None, ray_address=None, gpus_per_worker=None):
        self.num_workers = num_workers
        self.ray_address = ray_address
        self.gpus_per_worker = gpus_per_worker

    def run(self, step, shards, on_done) -> None:
        import ray

        started = self._connect(ray)
        try:
            self._run(ray, step, shards, on_done)
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

    def _run(self, ray, step, shards, on_done) -> None:
        import ray.data

        gpus = self.gpus_per_worker
        if gpus is None:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        workers = self.num_workers or int(ray.cluster_resources().get("GPU" if gpus else "CPU", 1)) or 1
        refs = [ray.put(table.append_column(SHARD_COLUMN, pa.array([index] * table.num_rows, pa.int64()))) for index, table in shards]
        if not refs:
            return
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the run's own bar counts rows across shards
        resources = {"num_gpus": gpus} if gpus else {"num_cpus": 1}
        results = ray.data.from_arrow_refs(refs).map_batches(
            _ShardActor,
            fn_constructor_kwargs={"step": step},
            batch_size=None,  # one whole block (one shard) per call: a shard is never split
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=min(workers, len(refs))),
            **resources,
        )
        for row in results.iter_rows():
            on_done(json.loads(row["marker"]))


class _ShardActor:
    def __init__(self, step):
        self.step = step

    def __call__(self, block: pa.Table) -> pa.Table:
        markers = []
        # Blocks may arrive bundled: run each shard of the batch on its own.
        for index in pc.unique(block[SHARD_COLUMN]).to_pylist():
            rows = block.filter(pc.equal(block[SHARD_COLUMN], index)).drop_columns([SHARD_COLUMN])
            markers.append(json.dumps(self.step(index, rows)))
        return pa.table({"marker": markers})
