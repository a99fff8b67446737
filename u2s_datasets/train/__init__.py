"""Fine-tuning editors on Unsafe2Safe triplets: pairs from an anonymized dataset, then the trainer.

    from u2s_datasets.train import build_pairs, finetune
    pairs = build_pairs(safe_ds, clip_model="/models/clip-vit-large-patch14")
    finetune(pairs, "out/editor", base_model="/models/magicbrush", dual_prompt="paper")
"""

from .finetune import FinetuneConfig, finetune
from .pairs import build_pairs, load_pairs, save_pairs

__all__ = ["build_pairs", "save_pairs", "load_pairs", "finetune", "FinetuneConfig"]
