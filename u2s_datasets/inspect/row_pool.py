"""Rows of a batch read for text side by side, one thread per core, each with its own recogniser.

onnxruntime shares one small image out over cores poorly (most layers of PP-OCR's networks
are too small to split): two rows at once, one core each, go 1.5 to 1.7 times faster than
one row after the other on two cores. A lone row (a large image alone in its part) keeps
every core for its kernels. OpenCV's dnn (CenterFace) splits work well and runs apart.
"""

import ctypes
import os
import queue
from concurrent.futures import ThreadPoolExecutor


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


class RowPool:
    """``map(fn, items)`` -> ``[fn(model, item) ...]`` in order, over ``workers`` threads.

    Args:
        factory: ``factory(threads)`` builds one model whose kernels use ``threads`` threads
            (0: the library's default, every core). Models are built on first use and kept;
            no two threads ever hold the same one (PP-OCR's wrappers keep per-call state).
        workers: rows looked at side by side (default: the cores this process may use).
    """

    def __init__(self, factory, workers: int = None):
        self.factory, self.workers = factory, workers or default_workers()
        self._solo = None
        self._models = queue.SimpleQueue()
        self._built, self._threads = 0, None

    def map(self, fn, items) -> list:
        items = list(items)
        if self.workers < 2 or len(items) < 2:
            if self._solo is None:
                self._solo = self.factory(0)
            try:
                return [fn(self._solo, item) for item in items]
            finally:
                release_freed_memory()
        workers = min(self.workers, len(items))
        while self._built < workers:
            self._models.put(self.factory(1))
            self._built += 1

        def run(item):
            model = self._models.get()
            try:
                return fn(model, item)
            finally:
                self._models.put(model)

        if self._threads is None:
            self._threads = ThreadPoolExecutor(self.workers, thread_name_prefix="u2s-rows")
        try:
            return list(self._threads.map(run, items))
        finally:
            release_freed_memory()


def release_freed_memory():
    """Hand freed buffers back to the system.

    Each thread allocates from its own glibc arena, and an arena keeps what was freed in it:
    without this, the threads hold on to hundreds of MB of dead network activations.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


try:
    _LIBC = ctypes.CDLL(None)  # the C library the process runs on; only glibc has malloc_trim
    _LIBC.malloc_trim
except (OSError, AttributeError, TypeError):  # TypeError: no C library handle on Windows
    _LIBC = None
