"""Sharded, resumable runs of the transform: one machine's processes or a Ray cluster (docs/scale.md)."""

from .load import load_shards
from .sharded import RunSummary, run_sharded

__all__ = ["run_sharded", "load_shards", "RunSummary"]
