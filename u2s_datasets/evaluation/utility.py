"""Utility: is a classifier trained on the safe images as good on REAL test images?

Train on the safe training split, test on the real test split; the same on the raw
training split; report both accuracies and their ratio (safe / raw). Features come from a
frozen backbone and a logistic-regression probe learns on top:

- ``HistHogFeatures``: colour histograms + HOG (scikit-image); no weights, runs offline.
- ``TransformersFeatures``: the pooled output of any transformers vision model.
"""

import logging
from typing import Optional

import numpy as np
from PIL import Image

from .protocols import check_protocol

logger = logging.getLogger(__name__)


class HistHogFeatures:
    """Joint RGB histogram (8x8x8 bins) + coarse HOG (32-pixel cells) of the grey image at a fixed size."""

    name = "hist-hog"

    def __init__(self, size: int = 128, bins: int = 8, cell: int = 32):
        self.size, self.bins, self.cell = size, bins, cell

    def __call__(self, images: list) -> np.ndarray:
        from skimage.feature import hog

        rows = []
        for image in images:
            rgb = np.asarray(_pil(image).convert("RGB").resize((self.size, self.size), Image.BILINEAR))
            quantised = (rgb // (256 // self.bins)).reshape(-1, 3).astype(np.int64)
            codes = quantised[:, 0] * self.bins * self.bins + quantised[:, 1] * self.bins + quantised[:, 2]
            histogram = np.bincount(codes, minlength=self.bins ** 3) / codes.size
            grey = rgb.mean(axis=2) / 255.0
            gradients = hog(grey, orientations=9, pixels_per_cell=(self.cell, self.cell), cells_per_block=(2, 2), feature_vector=True)
            rows.append(np.concatenate([histogram, gradients]))
        return np.asarray(rows, dtype=np.float32)

    def describe(self) -> dict:
        return {"id": self.name, "revision": None, "size": self.size}


class TransformersFeatures:
    """Frozen features of a transformers vision model (``AutoModel`` + ``AutoImageProcessor``), pooled."""

    def __init__(self, model: str, revision: Optional[str] = None, device: Optional[str] = None, batch_size: int = 16,
                 local_files_only: bool = False, trust_remote_code: bool = False):
        self.model_id, self.revision, self.batch_size = model, revision, batch_size
        self.device_name, self.local_files_only, self.trust_remote_code = device, local_files_only, trust_remote_code
        self._model = None

    def _load(self):
        from transformers import AutoImageProcessor, AutoModel

        from ..models.devices import resolve_device

        self.device = resolve_device(self.device_name, None)
        options = dict(revision=self.revision, local_files_only=self.local_files_only, trust_remote_code=self.trust_remote_code)
        try:
            self.processor = AutoImageProcessor.from_pretrained(self.model_id, **options)
            self._model = AutoModel.from_pretrained(self.model_id, use_safetensors=True, **options).to(self.device).eval()
        except OSError as e:
            raise OSError(f"cannot load the utility backbone {self.model_id!r} (revision {self.revision}): {e}") from None

    def __call__(self, images: list) -> np.ndarray:
        import torch

        if self._model is None:
            self._load()
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                batch = [_pil(image).convert("RGB") for image in images[start:start + self.batch_size]]
                pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"].to(self.device)
                chunks.append(self._pooled(pixels).float().cpu())
        return torch.cat(chunks).numpy()

    def _pooled(self, pixels):
        if hasattr(self._model, "get_image_features"):  # two-tower models (CLIP, SigLIP): the image tower only
            output = self._model.get_image_features(pixel_values=pixels)
        else:
            output = self._model(pixel_values=pixels)
        if hasattr(output, "dim"):
            return output.flatten(1)
        pooled = getattr(output, "pooler_output", None)
        if pooled is not None:
            return pooled.flatten(1)
        hidden = output.last_hidden_state
        return hidden.mean(dim=1) if hidden.dim() == 3 else hidden.mean(dim=(2, 3))

    def describe(self) -> dict:
        return {"id": self.model_id, "revision": self.revision}


def _pil(image) -> Image.Image:
    return image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))


def probe_predictions(train_x: np.ndarray, train_y: list, test_x: np.ndarray, seed: int = 0, max_iter: int = 2000) -> np.ndarray:
    """Fit a standardised logistic-regression probe and predict the test rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(set(train_y)) < 2:
        raise ValueError("the training split needs at least 2 classes")
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, random_state=seed))
    probe.fit(train_x, train_y)
    return probe.predict(test_x)


def accuracies(safe_predictions, raw_predictions, train_labels: list, test_labels: list) -> dict:
    """The utility figures from test predictions of the classifier trained on safe images and, when
    given, of the one trained on raw images: accuracies, their ratio, per-image correctness, counts, chance."""
    test_y = np.asarray(test_labels, dtype=object)
    safe_correct = np.asarray(safe_predictions, dtype=object) == test_y
    result = {
        "safe_accuracy": float(np.mean(safe_correct)),
        "per_image": {"safe_correct": [bool(v) for v in safe_correct]},
        "n_train": len(train_labels),
        "n_test": len(test_labels),
        "n_classes": len(set(train_labels)),
        "chance_accuracy": float(max(np.mean(test_y == c) for c in set(test_labels))),
    }
    if raw_predictions is not None:
        raw_correct = np.asarray(raw_predictions, dtype=object) == test_y
        result["raw_accuracy"] = float(np.mean(raw_correct))
        result["accuracy_ratio"] = result["safe_accuracy"] / result["raw_accuracy"] if result["raw_accuracy"] > 0 else None
        result["per_image"]["raw_correct"] = [bool(v) for v in raw_correct]
    return result


def utility(safe_train: list, raw_train: Optional[list], train_labels: list, test_images: list, test_labels: list,
            backbone, seed: int = 0) -> dict:
    """Accuracy on the real test split of probes trained on safe and on raw training images."""
    test_x = backbone(test_images)
    safe_predictions = probe_predictions(backbone(safe_train), list(train_labels), test_x, seed)
    raw_predictions = probe_predictions(backbone(raw_train), list(train_labels), test_x, seed) if raw_train is not None else None
    return accuracies(safe_predictions, raw_predictions, train_labels, test_labels)


def compute_utility(predictions: list, references: Optional[list], labels: list, test_images: list, test_labels: list,
                    *, backbone: str = "hist-hog", backbone_model: Optional[str] = None,
                    backbone_revision: Optional[str] = None, device: Optional[str] = None,
                    local_files_only: bool = False, seed: int = 0, protocol: str = "u2s",
                    epochs: Optional[int] = None, learning_rate: Optional[float] = None, batch_size: Optional[int] = None,
                    recipe: str = "default", gradient_accumulation: Optional[int] = None) -> dict:
    """Train on safe (``predictions``) and raw (``references``) training images with ``labels``;
    test both on the REAL ``test_images``/``test_labels``.

    ``protocol="paper"``: fine-tune an MAE ViT-B/16 classifier (``backbone_model``, default
    ``facebook/vit-mae-base``) instead of a linear probe on frozen features. The safe
    training set is the ``safe_image`` column: private rows edited, the others the originals.
    ``recipe`` is how it fine-tunes (``evaluation/mae_recipe.py``): ``"default"`` (10 epochs,
    lr 1e-4, batch 32, flips) or ``"paper"`` (MAE's recipe as the authors ran it: 100 epochs,
    lr 5e-4, batch 64 x 4, RandAugment, drop path, layer decay); ``recipe="paper"`` fine-tunes
    whatever ``protocol`` says. ``epochs``, ``learning_rate``, ``batch_size`` and
    ``gradient_accumulation`` override the recipe's values."""
    from .cache import cached
    from .inputs import as_rgb, check_same_length

    check_same_length(predictions=predictions, references=references, labels=labels)
    check_same_length(test_images=test_images, test_labels=test_labels)
    if not len(test_images):
        raise ValueError("the utility metric needs a real test split: test_images and test_labels are empty")
    for name, column in (("labels", labels), ("test_labels", test_labels)):
        for i, label in enumerate(column):
            if label is None or not isinstance(label, (int, str, np.integer)):
                raise TypeError(f"{name}[{i}]: expected a class label (int or str), got {type(label).__name__}")
    unseen = set(test_labels) - set(labels)
    if unseen:
        logger.warning("test classes never seen in training: %s", sorted(map(str, unseen)))
    safe = [as_rgb(v, f"predictions[{i}] (safe training image)") for i, v in enumerate(predictions)]
    raw = [as_rgb(v, f"references[{i}] (raw training image)") for i, v in enumerate(references)] if references is not None else None
    test = [as_rgb(v, f"test_images[{i}]") for i, v in enumerate(test_images)]
    protocol = check_protocol(protocol)
    if protocol == "paper" or recipe != "default":
        from .finetune import DEFAULT_MAE, MAEFineTuner

        tuner = MAEFineTuner(backbone_model or DEFAULT_MAE, backbone_revision, epochs=epochs, learning_rate=learning_rate,
                             batch_size=batch_size, device=device, local_files_only=local_files_only, recipe=recipe,
                             gradient_accumulation=gradient_accumulation)
        result = finetuned_utility(safe, raw, list(labels), test, list(test_labels), tuner, seed)
        result["models"] = {"backbone": tuner.describe()}
        result["protocol"], result["recipe"] = protocol, tuner.recipe.name
        return result
    if backbone == "hist-hog":
        extractor = HistHogFeatures()
    elif backbone == "transformers":
        if not backbone_model:
            raise ValueError("backbone='transformers' needs backbone_model (a hub id or local folder)")
        extractor = cached(TransformersFeatures, model=backbone_model, revision=backbone_revision, device=device,
                           local_files_only=local_files_only)
    else:
        raise ValueError(f"unknown utility backbone {backbone!r}; available: hist-hog, transformers")
    result = utility(safe, raw, list(labels), test, list(test_labels), extractor, seed)
    result["models"] = {"backbone": extractor.describe(), "probe": "scikit-learn LogisticRegression on standardised features"}
    result["protocol"] = protocol
    return result


def finetuned_utility(safe_train: list, raw_train: Optional[list], train_labels: list, test_images: list,
                      test_labels: list, tuner, seed: int = 0) -> dict:
    """Accuracy on the real test split of classifiers fine-tuned on safe and on raw training images."""
    safe_predictions = tuner.fit_predict(safe_train, train_labels, test_images, seed)
    raw_predictions = tuner.fit_predict(raw_train, train_labels, test_images, seed) if raw_train is not None else None
    return accuracies(safe_predictions, raw_predictions, train_labels, test_labels)
