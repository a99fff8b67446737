"""Running the transform over a dataset: ``anonymize()`` in this process (with its ``Summary``),
``run_sharded()`` over one machine's processes or a Ray cluster (sharded, resumable; docs/scale.md),
and the inputs and image folders the command line reads and writes (``folders``).
The CLI commands run the transform only through this package."""

from .anonymize import CONFIG_FILE, Summary, anonymize, summarize, write_config
from .load import load_shards
from .sharded import RunSummary, run_sharded

__all__ = ["anonymize", "Summary", "summarize", "write_config", "CONFIG_FILE", "run_sharded", "load_shards", "RunSummary"]
