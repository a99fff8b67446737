"""u2s-datasets: privacy-safe variants of image datasets, as a Hugging Face ``datasets`` plugin.

    from u2s_datasets import Unsafe2Safe, anonymize
    safe = ds.map(Unsafe2Safe(), batched=True)
    safe, summary = anonymize(ds, editor="pixelate")
"""

__version__ = "0.1.0"

from .config import PRESETS, U2SConfig, resolve_config
from .columns import OUTPUT_FEATURES
from .taxonomy import CATEGORIES, CATEGORY_IDS
from .transform import Unsafe2Safe
from .run import Summary, anonymize
from .hub import push_safe_dataset
from .evaluation.loading import load_metric

__all__ = ["Unsafe2Safe", "anonymize", "Summary", "push_safe_dataset", "load_metric", "U2SConfig", "PRESETS", "resolve_config", "OUTPUT_FEATURES", "CATEGORIES", "CATEGORY_IDS", "__version__"]
