"""One shard in, one safe shard out: the step every executor runs, wherever it runs."""

import dataclasses
import inspect
import os
import socket
import time

import datasets
import pyarrow as pa

from .. import columns as C
from .anonymize import summarize
from .layout import RunLayout


class AnonymizeShard:
    """Run the transform over a shard's rows in batches and write the shard with its marker.

    Holds configuration only (the transform pickles without models), so an executor can
    ship it to any process or Ray actor; models load on the first batch there.
    """

    def __init__(self, transform, features: datasets.Features, output_dir: str, shard_size: int, batch_size: int = 8):
        self.transform = transform
        self.features = features
        self.output_dir = output_dir
        self.shard_size = shard_size
        self.batch_size = batch_size
        self._takes_indices = None

    def __call__(self, index: int, table: pa.Table, rank=None) -> dict:
        start = time.perf_counter()
        safe = self.process(table, rank, first_row=index * self.shard_size)
        marker = {
            "shard": index,
            "rows_in": table.num_rows,
            "rows_out": safe.num_rows,
            "summary": _counts(safe),
            "seconds": round(time.perf_counter() - start, 3),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "finished_at": time.time(),
        }
        RunLayout(self.output_dir).write_shard(index, safe, marker)
        return marker

    def process(self, table: pa.Table, rank=None, first_row: int = 0) -> pa.Table:
        """The safe rows of ``table``, typed exactly by ``self.features``."""
        schema = self.features.arrow_schema
        parts = []
        for offset in range(0, table.num_rows, self.batch_size):
            batch = table.slice(offset, self.batch_size)
            indices = list(range(first_row + offset, first_row + offset + batch.num_rows))
            result = self._call(batch, indices, rank)
            if isinstance(result, pa.Table):
                parts.append(result.select(list(self.features)).cast(schema))
                continue
            if len(result[C.STATUS]) == batch.num_rows:
                result = {**batch.to_pydict(), **result}  # as datasets.map: returned columns replace, the rest stay
            missing = [name for name in self.features if name not in result]
            if missing:
                raise KeyError(f"the transform's output lacks columns {missing}")
            encoded = self.features.encode_batch({name: result[name] for name in self.features})
            parts.append(pa.Table.from_pydict(encoded, schema=schema))
        return pa.concat_tables(parts) if parts else schema.empty_table()

    def _call(self, batch: pa.Table, indices: list, rank):
        # A transform that takes datasets' (batch, indices, rank) gets the Arrow batch and the
        # rows' indices in the whole input (its errors then name the row); else a dict and rank.
        if self._takes_indices is None:
            parameters = inspect.signature(self.transform.__call__).parameters.values()
            self._takes_indices = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)
        if self._takes_indices:
            return self.transform(batch, indices, rank)
        return self.transform(batch.to_pydict(), rank)


def _counts(table: pa.Table) -> dict:
    summary = summarize([datasets.Dataset(datasets.table.InMemoryTable(table))])
    counts = dataclasses.asdict(summary)
    counts.pop("seconds")
    return counts
