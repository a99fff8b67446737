"""Utility as the paper measures it: fine-tune an MAE ViT-B/16 classifier on raw or safe images, test on real ones.

The backbone is MAE's pretrained encoder (``facebook/vit-mae-base``, ViT-B/16), loaded with
transformers as ``ViTMAEModel`` with ``mask_ratio=0`` and patch order kept (MAE's pretraining
model hides 75% of the patches; a classifier must see all of them). On top, as in MAE's
fine-tuning recipe: the mean of the patch tokens, a LayerNorm and a linear head. Every
training run starts again from the pretrained weights.
"""

import logging
from typing import Optional

import numpy as np
import torch
from PIL import Image
from torch import nn

logger = logging.getLogger(__name__)

DEFAULT_MAE = "facebook/vit-mae-base"

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
    """Fine-tunes and tests one classifier per call; settings as MAE's recipe, scaled to small datasets."""

    def __init__(self, model: str = DEFAULT_MAE, revision: Optional[str] = None, epochs: int = 10,
                 learning_rate: float = 1e-4, weight_decay: float = 0.05, batch_size: int = 32,
                 device: Optional[str] = None, local_files_only: bool = False, progress: bool = True):
        self.model_id, self.revision = model, revision
        self.epochs, self.learning_rate, self.weight_decay, self.batch_size = epochs, learning_rate, weight_decay, batch_size
        self.device_name, self.local_files_only, self.progress = device, local_files_only, progress

    def _load(self, num_classes: int):
        from transformers import AutoImageProcessor, ViTMAEModel

        options = dict(revision=self.revision, local_files_only=self.local_files_only)
        try:
            processor = AutoImageProcessor.from_pretrained(self.model_id, **options)
            encoder = ViTMAEModel.from_pretrained(self.model_id, mask_ratio=0.0, use_safetensors=True, **options)
        except OSError as e:
            raise OSError(f"cannot load the MAE backbone {self.model_id!r} (revision {self.revision}): {e}") from None
        return processor, MAEClassifier(encoder, num_classes)

    def _pixels(self, processor, images: list) -> torch.Tensor:
        return processor(images=[_pil(image) for image in images], return_tensors="pt")["pixel_values"]

    def fit_predict(self, train_images: list, train_labels: list, test_images: list, seed: int = 0) -> list:
        """Fine-tune on the training images and labels; the predicted label of each test image."""
        from tqdm.auto import tqdm

        from ..devices import resolve_device

        classes = sorted(set(train_labels), key=str)
        index = {label: i for i, label in enumerate(classes)}
        targets = torch.tensor([index[label] for label in train_labels])
        torch.manual_seed(seed)
        processor, model = self._load(len(classes))
        device = resolve_device(self.device_name, None)
        model.to(device).train()
        optimiser = torch.optim.AdamW(model.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        steps = self.epochs * -(-len(train_images) // self.batch_size)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, steps))
        generator = torch.Generator().manual_seed(seed)
        bar = tqdm(total=steps, desc="fine-tuning", disable=not self.progress)
        for _ in range(self.epochs):
            order = torch.randperm(len(train_images), generator=generator).tolist()
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
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
        model.eval()
        predictions = []
        with torch.inference_mode():
            for start in range(0, len(test_images), self.batch_size):
                pixels = self._pixels(processor, test_images[start:start + self.batch_size]).to(device)
                predictions += model(pixels).argmax(dim=-1).tolist()
        return [classes[i] for i in predictions]

    def describe(self) -> dict:
        return {"id": self.model_id, "revision": self.revision, "recipe": "fine-tuned MAE ViT (mean-pooled patches, "
                f"LayerNorm, linear head), AdamW lr {self.learning_rate}, weight decay {self.weight_decay}, "
                f"{self.epochs} epochs, batch {self.batch_size}, cosine schedule, horizontal flips"}


def _pil(image) -> Image.Image:
    return (image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))).convert("RGB")
