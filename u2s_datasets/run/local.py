"""Run shards in this process, or in N worker processes on this machine (one per GPU when there are GPUs)."""

import concurrent.futures as cf
import multiprocessing

_worker_step = _worker_source = _worker_rank = None


class LocalExecutor:
    """``num_workers`` 1 runs every shard here; more start that many spawned processes.

    Workers are started with spawn, never fork: CUDA cannot start in a forked child, and a
    fresh interpreter also avoids inheriting the parent's thread pools. Worker ``r`` gets
    rank ``r`` (so ``cuda:{r % n}``). At most two shards per worker are in flight, so a
    stream's reader holds a bounded number of shards whatever the input's size.
    """

    def __init__(self, num_workers: int = 1):
        if num_workers < 1:
            raise ValueError(f"num_workers must be at least 1, got {num_workers}")
        self.num_workers = num_workers

    def run(self, step, source, progress) -> None:
        if self.num_workers == 1:
            for index, table in source.pending(progress.is_done):
                progress.on_done(step(index, table))
            return
        # A Dataset goes to each worker once (memory-mapped files as their paths) and each
        # worker reads its own shards; a stream is read here and each shard is sent.
        if source.streaming:
            shards = ((_run_shard, index, table) for index, table in source.pending(progress.is_done))
        else:
            shards = ((_read_and_run_shard, index) for index in source.pending_indices(progress.is_done))
        context = multiprocessing.get_context("spawn")
        ranks = context.Queue()
        for rank in range(self.num_workers):
            ranks.put(rank)
        initargs = (step, None if source.streaming else source, ranks)
        with cf.ProcessPoolExecutor(self.num_workers, mp_context=context, initializer=_init_worker, initargs=initargs) as pool:
            in_flight = {}
            exhausted = False
            try:
                while True:
                    while not exhausted and len(in_flight) < 2 * self.num_workers:
                        item = next(shards, None)
                        if item is None:
                            exhausted = True
                            break
                        in_flight[pool.submit(*item)] = item[1]
                    if not in_flight:
                        break
                    done, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
                    for future in done:
                        index = in_flight.pop(future)
                        try:
                            marker = future.result()
                        except Exception as e:
                            raise RuntimeError(f"shard {index} failed: {type(e).__name__}: {e}") from e
                        progress.on_done(marker)
            except BaseException:
                for future in in_flight:
                    future.cancel()
                raise


def _init_worker(step, source, ranks):
    global _worker_step, _worker_source, _worker_rank
    _worker_step, _worker_source, _worker_rank = step, source, ranks.get()


def _run_shard(index, table):
    return _worker_step(index, table, rank=_worker_rank)


def _read_and_run_shard(index):
    return _worker_step(index, _worker_source.read(index), rank=_worker_rank)
