"""Recipes of the utility classifier's fine-tuning: this project's short one, and the paper's (MAE's).

``PAPER``: the authors' ImageMAE settings (``image_mae_example.yaml``: ViT-B/16, batch 64 x
gradient accumulation 4, 100 epochs, learning rate 5e-4, RandAugment 2 / 9 / 0.5) run with
MAE's fine-tuning recipe for ViT-B (``main_finetune.py``, ``FINETUNE.md``): drop path 0.1,
layer-wise learning-rate decay 0.65, AdamW with weight decay 0.05 (none on biases, norms,
the class token and the position embeddings), 5 warm-up epochs then a half-cycle cosine to
1e-6, set before each optimizer step; random resized crops, flips and RandAugment in
training, resize and centre crop at test time; the encoder's last LayerNorm dropped for the
pooled head's own (global pooling), the head initialised with std 2e-5. 5e-4 is MAE's
absolute rate: its base rate scaled by batch / 256 gives the same at batch 64 x 4. The
authors' config names no mixup, cutmix, label smoothing or random erasing, so none is used.
"""

import math
import re
from dataclasses import dataclass, replace
from typing import Optional

import torch
from torch import nn


@dataclass(frozen=True)
class MAERecipe:
    """Settings of one fine-tuning recipe. ``style="project"`` uses the first five (flips of the
    processor's images, AdamW over every weight, cosine over all steps); ``style="mae"`` all of them."""

    name: str = "default"
    style: str = "project"  # "project" | "mae"
    epochs: int = 10
    learning_rate: float = 1e-4
    batch_size: int = 32
    weight_decay: float = 0.05
    gradient_accumulation: int = 1
    randaugment: tuple = (2, 9, 0.5)  # operations per image, magnitude, magnitude std
    drop_path: float = 0.0  # the last block's rate; earlier blocks get rates rising linearly from 0
    layer_decay: Optional[float] = None  # block i's learning rate is scaled by decay ** (depth + 1 - (i + 1))
    warmup_epochs: float = 0.0
    min_learning_rate: float = 0.0
    label_smoothing: float = 0.0

    def __post_init__(self):
        if self.style not in ("project", "mae"):
            raise ValueError(f"style={self.style!r} is not one of 'project', 'mae'")
        for name in ("epochs", "batch_size", "gradient_accumulation"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")

    def with_settings(self, **settings) -> "MAERecipe":
        return replace(self, **{k: v for k, v in settings.items() if v is not None})


DEFAULT = MAERecipe()
PAPER = MAERecipe(name="paper", style="mae", epochs=100, learning_rate=5e-4, batch_size=64, gradient_accumulation=4,
                  drop_path=0.1, layer_decay=0.65, warmup_epochs=5, min_learning_rate=1e-6)
RECIPES = {"default": DEFAULT, "paper": PAPER}


def get_recipe(name) -> MAERecipe:
    if isinstance(name, MAERecipe):
        return name
    if name not in RECIPES:
        raise ValueError(f"recipe must be one of {', '.join(map(repr, RECIPES))} or an MAERecipe, got {name!r}")
    return RECIPES[name]


class DropPath(nn.Module):
    """Stochastic depth on a residual branch: per sample, the branch is dropped with ``rate`` (kept ones scaled by 1 / (1 - rate))."""

    def __init__(self, rate: float, dropout: Optional[nn.Module] = None):
        super().__init__()
        self.rate = rate
        self.dropout = dropout if dropout is not None else nn.Identity()

    def forward(self, branch: torch.Tensor) -> torch.Tensor:
        branch = self.dropout(branch)
        if not self.training or self.rate == 0.0:
            return branch
        keep = 1.0 - self.rate
        mask = branch.new_empty((branch.shape[0],) + (1,) * (branch.dim() - 1)).bernoulli_(keep)
        return branch * mask / keep

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


def install_drop_path(encoder, rate: float) -> list:
    """Drop path on both residual branches of every block of a transformers ``ViTMAEModel``; the rates set, block by block.

    Each ``ViTMAELayer`` passes its attention and its MLP output through ``layer.dropout``
    before adding the residual: that module becomes a ``DropPath`` around the original dropout."""
    layers = blocks(encoder)
    rates = [float(r) for r in torch.linspace(0, rate, len(layers))]
    for layer, layer_rate in zip(layers, rates):
        if not isinstance(getattr(layer, "dropout", None), nn.Dropout):
            raise TypeError(f"{type(layer).__name__} has no residual-branch dropout to put drop path on (transformers changed?)")
        layer.dropout = DropPath(layer_rate, layer.dropout)
    return rates


def blocks(encoder) -> nn.ModuleList:
    """The transformer blocks of a ``ViTMAEModel`` (``layers`` in transformers 5, ``encoder.layer`` before)."""
    return encoder.layers if hasattr(encoder, "layers") else encoder.encoder.layer


BLOCK = re.compile(r"^encoder\.(?:layers|encoder\.layer)\.(\d+)\.")


def layer_id(name: str, depth: int) -> int:
    """MAE's (BEiT's) layer of a parameter: 0 for the embeddings, i + 1 for block i, depth + 1 for the norm and head."""
    if name.startswith("encoder.embeddings."):
        return 0
    block = BLOCK.match(name)
    return int(block.group(1)) + 1 if block else depth + 1


NO_WEIGHT_DECAY = ("encoder.embeddings.cls_token", "encoder.embeddings.position_embeddings")


def parameter_groups(model, recipe: MAERecipe) -> list:
    """AdamW groups with ``lr_scale`` (layer decay) and weight decay (none on 1-D parameters, the class token, positions)."""
    depth = len(blocks(model.encoder))
    groups = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        decay = 0.0 if parameter.ndim == 1 or name in NO_WEIGHT_DECAY else recipe.weight_decay
        layer = layer_id(name, depth) if recipe.layer_decay is not None else depth + 1
        scale = recipe.layer_decay ** (depth + 1 - layer) if recipe.layer_decay is not None else 1.0
        group = groups.setdefault((layer, decay), {"params": [], "names": [], "weight_decay": decay, "lr_scale": scale})
        group["params"].append(parameter)
        group["names"].append(name)
    return list(groups.values())


def mae_learning_rate(epoch: float, recipe: MAERecipe) -> float:
    """MAE's rate at a (fractional) epoch: linear warm-up from 0, then a half-cycle cosine down to the minimum."""
    if epoch < recipe.warmup_epochs:
        return recipe.learning_rate * epoch / recipe.warmup_epochs
    progress = (epoch - recipe.warmup_epochs) / max(1e-12, recipe.epochs - recipe.warmup_epochs)
    return recipe.min_learning_rate + (recipe.learning_rate - recipe.min_learning_rate) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_learning_rate(optimiser, epoch: float, recipe: MAERecipe) -> None:
    rate = mae_learning_rate(epoch, recipe)
    for group in optimiser.param_groups:
        group["lr"] = rate * group.get("lr_scale", 1.0)


def prepare_paper_classifier(model, recipe: MAERecipe) -> None:
    """MAE's fine-tuning model: drop path, trainable positions, the pooled head's norm only, a near-zero head."""
    if recipe.drop_path:
        install_drop_path(model.encoder, recipe.drop_path)
    model.encoder.embeddings.position_embeddings.requires_grad_(True)  # fixed sin-cos in pretraining, trained in fine-tuning
    model.encoder.layernorm = nn.Identity()  # global pooling: fc_norm replaces the encoder's last norm
    nn.init.trunc_normal_(model.head.weight, std=2e-5)
    nn.init.zeros_(model.head.bias)
