"""The input cut into shards of a fixed row count, as pyarrow tables with images left encoded."""

import math
from typing import Iterator, Optional, Tuple

import datasets
import pyarrow as pa


class ShardSource:
    """Shards ``k = 0, 1, ...`` of ``shard_size`` rows (the last may be shorter).

    A ``datasets.Dataset`` is sliced by index, so finished shards are never read; an
    ``IterableDataset`` is read in order and finished shards are passed over.
    """

    def __init__(self, ds, image_column: str, shard_size: int, limit: Optional[int] = None):
        if not isinstance(ds, (datasets.Dataset, datasets.IterableDataset)):
            raise TypeError(f"expected a datasets.Dataset or IterableDataset, got {type(ds).__name__}")
        if shard_size < 1:
            raise ValueError(f"shard_size must be at least 1, got {shard_size}")
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be 0 or more, got {limit}")
        self.streaming = isinstance(ds, datasets.IterableDataset)
        self.shard_size = shard_size
        self.image_column = image_column
        self._first = None
        if ds.features is not None and isinstance(ds.features.get(image_column), datasets.Image):
            # Undecoded: a corrupt file reaches the transform (and gets a status); passthrough keeps its bytes.
            ds = ds.cast_column(image_column, datasets.Image(decode=False))
        if self.streaming and limit is not None:
            ds = ds.take(limit)
        self.ds = ds
        self.total_rows = None if self.streaming else (len(ds) if limit is None else min(limit, len(ds)))

    @property
    def num_shards(self) -> Optional[int]:
        return None if self.total_rows is None else math.ceil(self.total_rows / self.shard_size)

    def expected_rows(self, index: int) -> Optional[int]:
        if self.total_rows is None:
            return None
        return min(self.shard_size, self.total_rows - index * self.shard_size)

    @property
    def features(self) -> datasets.Features:
        if self.ds.features is not None:
            return self.ds.features
        first = self.first_shard()
        return datasets.Features.from_arrow_schema(first.schema) if first is not None else datasets.Features()

    def first_shard(self) -> Optional[pa.Table]:
        """The first shard's rows (kept for a stream's fingerprint and features); None for an empty input."""
        if self._first is None:
            self._first = next(self._tables(), None)
        return self._first

    def pending_indices(self, is_done) -> Iterator[int]:
        """Indices of the shards of a Dataset for which ``is_done(index, rows)`` is false, without reading them."""
        return (index for index in range(self.num_shards) if not is_done(index, self.expected_rows(index)))

    def pending(self, is_done) -> Iterator[Tuple[int, pa.Table]]:
        """(index, table) of every shard for which ``is_done(index, rows)`` is false, in order."""
        if not self.streaming:
            for index in self.pending_indices(is_done):
                yield index, self.read(index)
            return
        for index, table in self.tables():
            if not is_done(index, table.num_rows):
                yield index, table

    def tables(self) -> Iterator[Tuple[int, pa.Table]]:
        """Every shard of a stream, in order, as (index, table)."""
        yield from enumerate(self._tables())

    def read(self, index: int) -> pa.Table:
        """Shard ``index`` of a Dataset, read where it is needed (a Ray actor reads its own)."""
        start = index * self.shard_size
        return self.ds.with_format("arrow")[start : start + self.expected_rows(index)]

    def __getstate__(self):
        return {**self.__dict__, "_first": None}

    def _tables(self):
        if not self.streaming:
            if self.total_rows:
                yield self.ds.with_format("arrow")[: self.expected_rows(0)]
            return
        for table in self.ds.with_format("arrow").iter(batch_size=self.shard_size):
            if table.num_rows:
                yield table


def ipc_bytes(table: pa.Table) -> bytes:
    """``table`` as one Arrow IPC stream (to hash it, or to hand it to another process)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()
