"""Utility as the paper measures it: fine-tune an MAE ViT-B/16 classifier on raw or safe images, test on real ones.

The backbone is MAE's pretrained encoder (``facebook/vit-mae-base``, ViT-B/16), loaded with
transformers as ``ViTMAEModel`` with ``mask_ratio=0`` and patch order kept (MAE's pretraining
model hides 75% of the patches; a classifier must see all of them). On top, as in MAE's
fine-tuning recipe: the mean of the patch tokens, a LayerNorm and a linear head. Every
training run starts again from the pretrained weights. How it trains is a recipe
(``mae_recipe.py``): this project's short default, or the paper's (MAE's full recipe).
"""

import contextlib
import logging
import random
from typing import Optional

import numpy as np
import torch
from PIL import Image
from torch import nn

from .augment import MAETrainTransform, RandAugment, normalised, resize_center_crop
from .mae_recipe import get_recipe, parameter_groups, prepare_paper_classifier, set_learning_rate

logger = logging.getLogger(__name__)

DEFAULT_MAE = "facebook/vit-mae-base"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

# The paper's utility datasets on the Hub: id, label column, split names.
RECIPES = {
    "caltech101": {"dataset": "HuggingFaceM4/Caltech-101", "config": "with_background_category", "image": "image",
                   "label": "label", "train": "train", "test": "test"},
    "indoor67": {"dataset": "Voxel51/IndoorSceneRecognition", "config": None, "image": "image", "label": "label",
                 "train": "train", "test": "test"},
}


class MAEClassifier(nn.Module):
    """MAE encoder with every patch visible, mean-pooled patch tokens, LayerNorm, linear head."""

    def __init__(self, encoder, num_classes: int):
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.fc_norm = nn.LayerNorm(hidden, eps=1e-6)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        patches = self.encoder.embeddings.patch_embeddings.num_patches
        # Increasing noise keeps the patches in order; with mask_ratio=0 none is dropped.
        noise = torch.arange(patches, device=pixel_values.device, dtype=torch.float32).expand(len(pixel_values), -1)
        hidden = self.encoder(pixel_values=pixel_values, noise=noise).last_hidden_state
        return self.head(self.fc_norm(hidden[:, 1:].mean(dim=1)))


class MAEFineTuner:
    """Fine-tunes and tests one classifier per call, with a recipe (``mae_recipe.py``): ``"default"``,
    MAE's settings scaled to small datasets, or ``"paper"``, the authors' full MAE recipe."""

    def __init__(self, model: str = DEFAULT_MAE, revision: Optional[str] = None, epochs: Optional[int] = None,
                 learning_rate: Optional[float] = None, weight_decay: Optional[float] = None, batch_size: Optional[int] = None,
                 device: Optional[str] = None, local_files_only: bool = False, progress: bool = True, recipe="default",
                 gradient_accumulation: Optional[int] = None):
        self.model_id, self.revision = model, revision
        self.recipe = get_recipe(recipe).with_settings(epochs=epochs, learning_rate=learning_rate, weight_decay=weight_decay,
                                                       batch_size=batch_size, gradient_accumulation=gradient_accumulation)
        self.device_name, self.local_files_only, self.progress = device, local_files_only, progress

    def _load(self, num_classes: int):
        from transformers import AutoImageProcessor, ViTMAEModel

        options = dict(revision=self.revision, local_files_only=self.local_files_only)
        try:
            processor = AutoImageProcessor.from_pretrained(self.model_id, **options)
            encoder = ViTMAEModel.from_pretrained(self.model_id, mask_ratio=0.0, use_safetensors=True, **options)
        except OSError as e:
            raise OSError(f"cannot load the MAE backbone {self.model_id!r} (revision {self.revision}): {e}") from None
        model = MAEClassifier(encoder, num_classes)
        if self.recipe.style == "mae":
            prepare_paper_classifier(model, self.recipe)
        return processor, model

    def _pixels(self, processor, images: list) -> torch.Tensor:
        return processor(images=[_pil(image) for image in images], return_tensors="pt")["pixel_values"]

    def fit_predict(self, train_images: list, train_labels: list, test_images: list, seed: int = 0) -> list:
        """Fine-tune on the training images and labels; the predicted label of each test image."""
        from ..models.devices import resolve_device

        classes = sorted(set(train_labels), key=str)
        index = {label: i for i, label in enumerate(classes)}
        targets = torch.tensor([index[label] for label in train_labels])
        torch.manual_seed(seed)
        processor, model = self._load(len(classes))
        device = resolve_device(self.device_name, None)
        model.to(device).train()
        if self.recipe.style == "mae":
            images = MAEImages(processor, model.encoder.config.image_size, self.recipe)
            self._fit_mae(model, images, train_images, targets, device, seed)
            pixels_of = images.test
        else:
            self._fit_project(model, processor, train_images, targets, device, seed)
            pixels_of = lambda batch: self._pixels(processor, batch)  # noqa: E731
        model.eval()
        predictions = []
        with torch.inference_mode():
            for start in range(0, len(test_images), self.recipe.batch_size):
                predictions += model(pixels_of(test_images[start:start + self.recipe.batch_size]).to(device)).argmax(dim=-1).tolist()
        return [classes[i] for i in predictions]

    def _fit_project(self, model, processor, train_images, targets, device, seed):
        from tqdm.auto import tqdm

        recipe = self.recipe
        optimiser = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
        steps = recipe.epochs * -(-len(train_images) // recipe.batch_size)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, steps))
        generator = torch.Generator().manual_seed(seed)
        bar = tqdm(total=steps, desc="fine-tuning", disable=not self.progress)
        for _ in range(recipe.epochs):
            order = torch.randperm(len(train_images), generator=generator).tolist()
            for start in range(0, len(order), recipe.batch_size):
                rows = order[start:start + recipe.batch_size]
                pixels = self._pixels(processor, [train_images[i] for i in rows]).to(device)
                flip = torch.rand(len(rows), generator=generator) < 0.5  # the one augmentation: horizontal flips
                pixels[flip.to(device)] = pixels[flip.to(device)].flip(-1)
                loss = nn.functional.cross_entropy(model(pixels), targets[rows].to(device))
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
                bar.update(1)
        bar.close()

    def _fit_mae(self, model, images, train_images, targets, device, seed):
        """MAE's loop: the rate set per window from the epoch reached, the loss divided over the window's batches.
        The last, shorter window of an epoch also steps (MAE drops the last batch instead; small sets keep every image)."""
        from tqdm.auto import tqdm

        recipe = self.recipe
        optimiser = torch.optim.AdamW(parameter_groups(model, recipe), lr=recipe.learning_rate)
        batches = -(-len(train_images) // recipe.batch_size)
        windows = -(-batches // recipe.gradient_accumulation)
        generator = torch.Generator().manual_seed(seed)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if str(device).startswith("cuda") else contextlib.nullcontext()
        bar = tqdm(total=recipe.epochs * windows, desc="fine-tuning (MAE recipe)", disable=not self.progress)
        optimiser.zero_grad()
        for epoch in range(recipe.epochs):
            order = torch.randperm(len(train_images), generator=generator).tolist()
            for batch in range(batches):
                if batch % recipe.gradient_accumulation == 0:
                    set_learning_rate(optimiser, epoch + batch / batches, recipe)
                rows = order[batch * recipe.batch_size:(batch + 1) * recipe.batch_size]
                pixels = images.train([train_images[i] for i in rows], [f"{seed}-{epoch}-{i}" for i in rows]).to(device)
                with autocast:
                    logits = model(pixels)
                loss = nn.functional.cross_entropy(logits.float(), targets[rows].to(device), label_smoothing=recipe.label_smoothing)
                (loss / recipe.gradient_accumulation).backward()
                if (batch + 1) % recipe.gradient_accumulation == 0 or batch == batches - 1:
                    optimiser.step()
                    optimiser.zero_grad()
                    bar.update(1)
        bar.close()

    def describe(self) -> dict:
        r = self.recipe
        if r.style == "mae":
            recipe = (f"fine-tuned MAE ViT, MAE's recipe ({r.name}): global pooling, drop path {r.drop_path}, layer decay "
                      f"{r.layer_decay}, AdamW lr {r.learning_rate} (warm-up {r.warmup_epochs} epochs, cosine to {r.min_learning_rate}), "
                      f"weight decay {r.weight_decay}, {r.epochs} epochs, batch {r.batch_size} x {r.gradient_accumulation}, "
                      f"random resized crops, flips, RandAugment {r.randaugment}, label smoothing {r.label_smoothing}")
        else:
            recipe = ("fine-tuned MAE ViT (mean-pooled patches, LayerNorm, linear head), "
                      f"AdamW lr {r.learning_rate}, weight decay {r.weight_decay}, {r.epochs} epochs, batch {r.batch_size}, "
                      "cosine schedule, horizontal flips")
        return {"id": self.model_id, "revision": self.revision, "recipe": recipe, "recipe_name": r.name}


class MAEImages:
    """Pixels for ``style="mae"``: MAE's training transform (each image's draws seeded by its key) and its test transform."""

    def __init__(self, processor, size: int, recipe):
        self.size = size
        self.mean = getattr(processor, "image_mean", None) or IMAGENET_MEAN
        self.std = getattr(processor, "image_std", None) or IMAGENET_STD
        fill = tuple(min(255, round(255 * m)) for m in self.mean)
        self.transform = MAETrainTransform(size, RandAugment(*recipe.randaugment, fill=fill))

    def train(self, images: list, keys: list) -> torch.Tensor:
        return torch.from_numpy(np.stack([normalised(self.transform(_pil(image), random.Random(key)), self.mean, self.std)
                                          for image, key in zip(images, keys)]))

    def test(self, images: list) -> torch.Tensor:
        return torch.from_numpy(np.stack([normalised(resize_center_crop(_pil(image), self.size), self.mean, self.std) for image in images]))


def _pil(image) -> Image.Image:
    return (image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))).convert("RGB")
