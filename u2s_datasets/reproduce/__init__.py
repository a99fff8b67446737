"""``u2s reproduce``: the paper's whole protocol on one of its datasets, ending in its table (docs/evaluation.md)."""

from .run import reproduce
from .table import markdown

__all__ = ["reproduce", "markdown"]
