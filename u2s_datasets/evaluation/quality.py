"""Quality of the safe image: does it still show what the public caption says?

- CLIP score: 100 * max(cos(image, caption), 0) of the safe image against its public caption.
- Directional CLIP similarity: cosine between the change in image embedding (original ->
  safe) and the change in caption embedding (private -> public caption).
- FID / KID (torchmetrics) between originals and safe images, on FID's Inception-v3 features
  (``fid_features="inception"``, the published weights file given by the caller; comparable
  with published FIDs), on CLIP image features (``"clip"``), or on a module the caller provides.
"""

import logging
from typing import Optional

import numpy as np
import torch
from PIL import Image

logger = logging.getLogger(__name__)

DEFAULT_CLIP = "openai/clip-vit-large-patch14"  # ViT-L/14, the paper's CLIP
DEFAULT_CLIP_REVISION = "32bd64288804d66eefd0ccbe215aa642df71cc41"
FID_FEATURES = ("inception", "clip")


def _pooled(output) -> torch.Tensor:
    # transformers 5 returns a ModelOutput with the projected embedding as pooler_output.
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class ClipEncoder:
    """Unit-norm CLIP embeddings of images and texts, from any CLIP checkpoint or local folder."""

    def __init__(self, model: str = DEFAULT_CLIP, revision: Optional[str] = DEFAULT_CLIP_REVISION,
                 device: Optional[str] = None, batch_size: int = 16, local_files_only: bool = False):
        from transformers import CLIPModel, CLIPProcessor

        from ..models.devices import resolve_device

        if model != DEFAULT_CLIP and revision == DEFAULT_CLIP_REVISION:
            revision = None  # the default pin belongs to the default checkpoint only
        self.model_id, self.revision, self.batch_size = model, revision, batch_size
        self.device = resolve_device(device, None)
        try:
            self.processor = CLIPProcessor.from_pretrained(model, revision=revision, local_files_only=local_files_only)
            self.model = CLIPModel.from_pretrained(
                model, revision=revision, local_files_only=local_files_only, use_safetensors=True
            ).to(self.device).eval()
        except OSError as e:
            raise OSError(f"cannot load CLIP model {model!r} (revision {revision}): {e}") from None

    @torch.inference_mode()
    def image_embeddings(self, images: list) -> torch.Tensor:
        chunks = []
        for start in range(0, len(images), self.batch_size):
            batch = [_pil(image) for image in images[start:start + self.batch_size]]
            pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"].to(self.device)
            chunks.append(_pooled(self.model.get_image_features(pixel_values=pixels)).float())
        return torch.nn.functional.normalize(torch.cat(chunks), dim=-1).cpu()

    @torch.inference_mode()
    def text_embeddings(self, texts: list) -> torch.Tensor:
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            tokens = self.processor.tokenizer(
                list(texts[start:start + self.batch_size]), padding=True, truncation=True,
                max_length=self.processor.tokenizer.model_max_length if self.processor.tokenizer.model_max_length < 10_000 else 77,
                return_tensors="pt",
            ).to(self.device)
            chunks.append(_pooled(self.model.get_text_features(**tokens)).float())
        return torch.nn.functional.normalize(torch.cat(chunks), dim=-1).cpu()

    def describe(self) -> dict:
        return {"id": self.model_id, "revision": self.revision}


def _pil(image) -> Image.Image:
    return image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))


def clip_scores(encoder: ClipEncoder, images: list, captions: list) -> np.ndarray:
    """CLIP score per image: 100 * max(cosine(image, caption), 0)."""
    cos = (encoder.image_embeddings(images) * encoder.text_embeddings(captions)).sum(-1)
    return (100.0 * cos.clamp(min=0)).numpy()


def directional_similarity(encoder: ClipEncoder, originals: list, safes: list, source_captions: list,
                           target_captions: list) -> np.ndarray:
    """cos(E(safe) - E(original), T(target caption) - T(source caption)) per pair."""
    image_delta = encoder.image_embeddings(safes) - encoder.image_embeddings(originals)
    text_delta = encoder.text_embeddings(target_captions) - encoder.text_embeddings(source_captions)
    return torch.nn.functional.cosine_similarity(image_delta, text_delta, dim=-1, eps=1e-8).numpy()


def image_similarity(encoder: ClipEncoder, a: list, b: list) -> np.ndarray:
    """CLIP image-image cosine similarity per pair."""
    return (encoder.image_embeddings(a) * encoder.image_embeddings(b)).sum(-1).numpy()


class ClipImageFeatures(torch.nn.Module):
    """CLIP image embeddings as a torchmetrics feature extractor: uint8 NCHW in, (N, D) out."""

    def __init__(self, encoder: ClipEncoder):
        super().__init__()
        self.encoder = encoder
        image_processor = encoder.processor.image_processor
        size = image_processor.crop_size  # a dict or, in recent transformers, a SizeDict
        height = getattr(size, "height", None) or (size.get("height") if hasattr(size, "get") else size)
        width = getattr(size, "width", None) or (size.get("width") if hasattr(size, "get") else size)
        self.size = (int(height), int(width))
        self.register_buffer("mean", torch.tensor(image_processor.image_mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(image_processor.image_std).view(1, 3, 1, 1))

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        x = torch.nn.functional.interpolate(x, size=self.size, mode="bicubic", align_corners=False, antialias=True)
        x = ((x - self.mean) / self.std).to(self.encoder.device)
        return _pooled(self.encoder.model.get_image_features(pixel_values=x)).float().cpu().double()


def _uint8_batch(arrays: list, size: int = 299) -> torch.Tensor:
    resized = [np.asarray(_pil(a).convert("RGB").resize((size, size), Image.BICUBIC)) for a in arrays]
    return torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2).contiguous()


class _FeaturesOnce(torch.nn.Module):
    """``feature`` run once per image batch, however many metrics ask for the same batch."""

    def __init__(self, feature: torch.nn.Module):
        super().__init__()
        self.feature = feature
        self.seen = {}
        if hasattr(feature, "num_features"):
            self.num_features = feature.num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        key = (images.data_ptr(), tuple(images.shape), images.dtype)
        if key not in self.seen:
            self.seen[key] = self.feature(images)
        return self.seen[key]


def fid_kid(originals: list, safes: list, feature: torch.nn.Module, kid_subset_size: Optional[int] = None) -> dict:
    """FID and KID (mean, std) between the original and safe image sets, on ``feature``'s embeddings."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    n = min(len(originals), len(safes))
    if n < 2:
        return {"fid": None, "kid_mean": None, "kid_std": None, "note": "FID/KID need at least 2 images per set"}
    real, fake = _uint8_batch(originals), _uint8_batch(safes)
    feature = _FeaturesOnce(feature)  # FID and KID read the same features
    fid = FrechetInceptionDistance(feature=feature, reset_real_features=True)
    fid.update(real, real=True)
    fid.update(fake, real=False)
    kid = KernelInceptionDistance(feature=feature, subset_size=min(kid_subset_size or 1000, n))
    kid.update(real, real=True)
    kid.update(fake, real=False)
    kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "kid_mean": float(kid_mean), "kid_std": float(kid_std)}


def compute_quality(predictions: list, references: list, captions: list, *, source_captions: Optional[list] = None,
                    clip_model: Optional[str] = None, clip_revision: Optional[str] = None, device: Optional[str] = None,
                    local_files_only: bool = False, fid_features=None, fid_inception_weights: Optional[str] = None,
                    kid_subset_size: Optional[int] = None, batch_size: int = 16) -> dict:
    """CLIP score of each safe image against its public caption (``captions``); directional
    similarity when the private ``source_captions`` are given; FID/KID when ``fid_features``
    is "inception" (FID's Inception-v3, weights from ``fid_inception_weights``: the path of
    ``pt_inception-2015-12-05-6726825d.pth`` or a Hub repository holding it), "clip", or a
    torch module mapping uint8 NCHW images to (N, D) features."""
    from .cache import cached
    from .inputs import check_pairs, check_same_length, check_texts, load_pairs

    n = check_pairs(predictions, references, captions=captions)
    check_same_length(predictions=predictions, source_captions=source_captions)
    check_texts(captions, "captions")
    if source_captions is not None:
        check_texts(source_captions, "source_captions")
    if isinstance(fid_features, str) and fid_features not in FID_FEATURES:
        raise ValueError(f"fid_features={fid_features!r} is not one of {', '.join(map(repr, FID_FEATURES))} or a torch module")
    feature = None
    if fid_features == "inception":  # loaded first: a missing weights file stops the run before any scoring
        from .fid_inception import load_fid_inception

        feature = cached(load_fid_inception, weights=fid_inception_weights, device=device, local_files_only=local_files_only)
    encoder = cached(ClipEncoder, model=clip_model or DEFAULT_CLIP,
                     revision=clip_revision if clip_model else clip_revision or DEFAULT_CLIP_REVISION,
                     device=device, local_files_only=local_files_only, batch_size=batch_size)
    safes, originals = load_pairs(predictions, references)
    scores = clip_scores(encoder, safes, list(captions))
    result = {"num_images": n, "clip_score": float(scores.mean()) if n else None,
              "original_clip_score": None, "directional_similarity": None}
    per_image = {"clip_score": scores.tolist()}
    original_scores = clip_scores(encoder, originals, list(captions))
    result["original_clip_score"] = float(original_scores.mean()) if n else None
    per_image["original_clip_score"] = original_scores.tolist()
    if source_captions is not None:
        directional = directional_similarity(encoder, originals, safes, list(source_captions), list(captions))
        result["directional_similarity"] = float(np.nanmean(directional)) if n else None
        per_image["directional_similarity"] = directional.tolist()
    if fid_features is not None:
        if feature is None:
            feature = ClipImageFeatures(encoder) if fid_features == "clip" else fid_features
        result.update(fid_kid(originals, safes, feature, kid_subset_size))
    result["per_image"] = per_image
    result["models"] = {"clip": encoder.describe()}
    if fid_features is not None:
        result["models"]["fid_features"] = fid_features if isinstance(fid_features, str) else type(fid_features).__name__
        if fid_features == "inception":
            result["models"]["fid_inception_weights"] = fid_inception_weights
    return result
