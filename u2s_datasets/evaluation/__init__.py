"""The evaluation suite: privacy, quality, cheating and utility of a safe dataset.

Plain Python/torch code. The ``evaluate`` modules in ``metrics/`` are thin wrappers
around these functions; only ``metric_support`` (their shared base) imports ``evaluate``,
and every model loads lazily.
"""

from .inputs import as_rgb, check_pairs, check_same_length

__all__ = ["as_rgb", "check_pairs", "check_same_length"]
