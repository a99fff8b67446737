"""Run shards on a Ray cluster with Ray Data: an actor pool over the pending shards.

``map_batches`` hands shards to a pool of actors, one per GPU (``num_gpus=1``) or one per
CPU slot for the CPU-only local preset; each actor runs the same step as the local
executor, so the shards are the same bytes. A ``datasets.Dataset`` travels to each actor
once (memory-mapped files travel as their paths) and each actor reads its own shards; a
streaming input is read here and each shard is put into Ray's object store. On several
machines the output folder, and the input's files, must be on a file system all of them see.
"""

import io
import json
import os

import pyarrow as pa

from .source import ipc_bytes


class RayExecutor:
    """``ray_address=None`` starts a private local cluster (loopback) and stops it after;
    an address (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``) joins a running one,
    and so does a session the caller started with ``ray.init``."""

    def __init__(self, num_workers=None, ray_address=None, gpus_per_worker=None):
        self.num_workers = num_workers
        self.ray_address = ray_address
        self.gpus_per_worker = gpus_per_worker

    def run(self, step, source, is_done, on_done) -> None:
        import ray

        started = self._connect(ray)
        try:
            self._run(ray, step, source, is_done, on_done)
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

    def _run(self, ray, step, source, is_done, on_done) -> None:
        import ray.data

        if source.streaming:
            items = [{"shard": index, "rows": ipc_bytes(table)} for index, table in source.pending(is_done)]
        else:
            items = [{"shard": index, "rows": None} for index in range(source.num_shards) if not is_done(index, source.expected_rows(index))]
        if not items:
            return
        gpus = self.gpus_per_worker
        if gpus is None:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        workers = self.num_workers or int(ray.cluster_resources().get("GPU" if gpus else "CPU", 1)) or 1
        ray.data.DataContext.get_current().enable_progress_bars = False  # the run's own bar counts rows
        results = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            _ShardActor,
            fn_constructor_kwargs={"step": step, "source": None if source.streaming else source},
            batch_size=1,  # one shard per call
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=min(workers, len(items))),
            **({"num_gpus": gpus} if gpus else {"num_cpus": 1}),
        )
        for row in results.iter_rows():
            on_done(json.loads(row["marker"]))


class _ShardActor:
    def __init__(self, step, source):
        self.step, self.source = step, source

    def __call__(self, batch: pa.Table) -> pa.Table:
        markers = []
        for index, rows in zip(batch["shard"].to_pylist(), batch["rows"].to_pylist()):
            table = self.source.read(index) if rows is None else pa.ipc.open_stream(io.BytesIO(rows)).read_all()
            markers.append(json.dumps(self.step(index, table)))
        return pa.table({"marker": markers})
