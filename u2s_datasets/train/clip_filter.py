"""The CLIP filters of training pairs: the image-image cosine, and the reference code's CLIP-score ratio.

``image-cosine``: cosine of the CLIP image embeddings of target and source, kept when at least
the threshold and below 1 (a target CLIP cannot tell from its source teaches nothing).

``clip-ratio``: the authors' ``filter_dataset.py``. Two CLIP scores per pair, as their
``ClipSimilarity`` (the InstructPix2Pix one) computes them: each image resized to the vision
tower's square input by bicubic interpolation (stretched, not cropped), normalised with CLIP's
mean and std; text tokenised to CLIP's 77 tokens (cut); the score is the cosine of the two
unit-norm embeddings. ``clip_orig`` scores the source image against the caption of the source
(the private caption), ``clip_edit`` the target image against the caption of the target (the
public caption with the edit, the prompt FlowEdit edits towards). A pair is kept when
``clip_edit / clip_orig > threshold`` (0.7); a ``clip_orig`` of 0 drops the pair.
"""

from typing import Optional

import numpy as np
import torch
from tqdm.auto import tqdm

CLIP_FILTERS = ("image-cosine", "clip-ratio")


def passes_image_cosine(similarity: float, threshold: float) -> bool:
    """The edit kept the scene (similarity at least ``threshold``) and changed something CLIP sees (below 1)."""
    return threshold <= similarity < 1.0 - 1e-6


def clip_ratio(clip_edit: float, clip_orig: float) -> Optional[float]:
    """``clip_edit / clip_orig``, None where ``clip_orig`` is 0 (the reference code drops those rows)."""
    return None if clip_orig == 0 else clip_edit / clip_orig


def passes_clip_ratio(clip_edit: float, clip_orig: float, threshold: float) -> bool:
    ratio = clip_ratio(clip_edit, clip_orig)
    return ratio is not None and ratio > threshold


class PairClip:
    """One CLIP model for scoring pairs: image-image cosines and the reference code's image-text scores."""

    def __init__(self, clip_model: str, device: Optional[str] = None, batch_size: int = 16):
        from transformers import CLIPModel, CLIPProcessor

        from ..models.devices import resolve_device

        self.device = resolve_device(device, None)
        self.batch_size = batch_size
        try:
            self.model = CLIPModel.from_pretrained(clip_model).to(self.device).eval()
            self.processor = CLIPProcessor.from_pretrained(clip_model)
        except OSError as e:
            raise ValueError(f"could not load the CLIP model {clip_model!r} for the pair filter ({e}); "
                             "give a local folder with --clip-model, or --clip-model none to skip the filter") from None
        image_processor = self.processor.image_processor
        self.side = int(self.model.config.vision_config.image_size)
        self.mean = torch.tensor(image_processor.image_mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(image_processor.image_std, dtype=torch.float32).view(1, 3, 1, 1)

    def _batches(self, n: int, desc: str):
        return tqdm(range(0, n, self.batch_size), desc=desc, unit="batch")

    @torch.inference_mode()
    def _features(self, pixels: torch.Tensor) -> torch.Tensor:
        features = self.model.get_image_features(pixel_values=pixels.to(self.device, self.model.dtype))
        return torch.nn.functional.normalize(getattr(features, "pooler_output", features).float(), dim=-1)

    def image_cosines(self, pairs, source_column: str, target_column: str) -> list:
        """Cosine of the CLIP image embeddings of each target and its source (the processor's resize and crop)."""
        out, columns = [], pairs.select_columns([source_column, target_column])
        for start in self._batches(len(pairs), "CLIP filter"):
            batch = columns[start:start + self.batch_size]
            images = [im.convert("RGB") for im in batch[source_column] + batch[target_column]]
            features = self._features(self.processor(images=images, return_tensors="pt")["pixel_values"])
            half = len(images) // 2
            out.extend((features[:half] * features[half:]).sum(-1).cpu().tolist())
        return [float(np.clip(s, -1.0, 1.0)) for s in out]

    def _reference_pixels(self, images: list) -> torch.Tensor:
        # [0, 1] pixels, bicubic to the square input, then CLIP's normalisation: the authors' ClipSimilarity.encode_image.
        pixels = [torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)[None] for im in images]
        square = [torch.nn.functional.interpolate(p, size=(self.side, self.side), mode="bicubic", align_corners=False) for p in pixels]
        return (torch.cat(square) - self.mean) / self.std

    @torch.inference_mode()
    def _text_features(self, texts: list) -> torch.Tensor:
        tokens = self.processor.tokenizer(list(texts), padding="max_length", truncation=True, max_length=77, return_tensors="pt").to(self.device)
        features = self.model.get_text_features(**tokens)
        return torch.nn.functional.normalize(getattr(features, "pooler_output", features).float(), dim=-1)

    def clip_scores(self, pairs, image_column: str, texts: list, desc: str = "CLIP scores") -> list:
        """The reference code's CLIP score of each image of ``image_column`` against its text: cosine of unit-norm embeddings."""
        out, images = [], pairs.select_columns([image_column])
        for start in self._batches(len(pairs), desc):
            image_features = self._features(self._reference_pixels(images[start:start + self.batch_size][image_column]))
            text_features = self._text_features(texts[start:start + self.batch_size])
            out.extend((image_features * text_features).sum(-1).cpu().tolist())
        return [float(s) for s in out]
