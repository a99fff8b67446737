"""Cheating: did the "safe" image simply copy its source? (lower similarity = less copying)

SSIM and PSNR (scikit-image), perceptual-hash Hamming distance (DCT pHash), CLIP
image-image similarity, and the share of pixels changed outside the private regions
(an edit should stay inside them). LPIPS (VGG, as the paper) when VGG16 weights are given.
"""

from typing import Optional

import numpy as np
from PIL import Image
from scipy.fft import dctn

PSNR_CAP = 100.0  # dB reported for identical images (MSE 0), so results stay finite JSON


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=2, data_range=255))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    if np.array_equal(a, b):
        return PSNR_CAP
    return float(min(peak_signal_noise_ratio(a, b, data_range=255), PSNR_CAP))


def phash(rgb: np.ndarray, hash_size: int = 8, highfreq_factor: int = 4) -> np.ndarray:
    """Perceptual hash: sign of the low-frequency DCT of a small grey image against its median."""
    side = hash_size * highfreq_factor
    grey = np.asarray(Image.fromarray(rgb).convert("L").resize((side, side), Image.LANCZOS), dtype=np.float64)
    low = dctn(grey, type=2, norm="ortho")[:hash_size, :hash_size]
    return (low > np.median(low)).reshape(-1)


def phash_distance(a: np.ndarray, b: np.ndarray) -> int:
    """Hamming distance of the 64-bit pHashes: 0 = same picture, about 32 = unrelated."""
    return int(np.count_nonzero(phash(a) != phash(b)))


def region_boxes(regions) -> list:
    """Boxes from a row's regions: ``[x0, y0, x1, y1]`` lists or ``{"box": [...]}`` dicts (the privacy_regions column)."""
    boxes = []
    for i, region in enumerate(regions or []):
        box = region.get("box") if isinstance(region, dict) else region
        if box is None or len(box) != 4:
            raise ValueError(f"region {i}: expected a box [x0, y0, x1, y1] or a dict with 'box', got {region!r}")
        boxes.append([int(round(float(v))) for v in box])
    return boxes


def changed_outside_regions(original: np.ndarray, safe: np.ndarray, boxes: list, tolerance: int = 8) -> Optional[float]:
    """Share of pixels outside every box whose value moved by more than ``tolerance`` in any channel."""
    outside = np.ones(original.shape[:2], dtype=bool)
    height, width = outside.shape
    for x0, y0, x1, y1 in boxes:
        outside[max(0, y0):min(height, y1), max(0, x0):min(width, x1)] = False
    if not outside.any():
        return None
    changed = (np.abs(original.astype(np.int16) - safe.astype(np.int16)) > tolerance).any(axis=2)
    return float(changed[outside].mean())


def lpips_scores(originals: list, safes: list, backbone: str, revision: Optional[str] = None,
                 local_files_only: bool = False, device: Optional[str] = None) -> np.ndarray:
    """LPIPS (VGG, v0.1) per pair; the backbone's weights from ``backbone`` (folder, file or hub id)."""
    import torch

    from ..models.devices import resolve_device
    from .cache import cached
    from .lpips_vgg import LPIPSVGG

    model = cached(LPIPSVGG.from_pretrained, backbone=backbone, revision=revision, local_files_only=local_files_only)
    model.to(resolve_device(device, None))
    target = model.shift.device
    scores = []
    for original, safe in zip(originals, safes):
        a = torch.from_numpy(np.ascontiguousarray(original).copy()).permute(2, 0, 1)[None].float().div(255.0).to(target)
        b = torch.from_numpy(np.ascontiguousarray(safe).copy()).permute(2, 0, 1)[None].float().div(255.0).to(target)
        scores.append(float(model(a, b)[0]))
    return np.asarray(scores)


def compute_cheating(predictions: list, references: list, *, regions: Optional[list] = None, clip: bool = True,
                     clip_model: Optional[str] = None, clip_revision: Optional[str] = None, device: Optional[str] = None,
                     local_files_only: bool = False, pixel_tolerance: int = 8, lpips_backbone: Optional[str] = None,
                     lpips_revision: Optional[str] = None) -> dict:
    """How much of each original survives in its safe image. ``regions``: per row, the private
    boxes (``[x0, y0, x1, y1]`` or the ``privacy_regions`` dicts); ``clip=False`` skips CLIP.
    ``lpips_backbone``: VGG16 weights (folder, file or hub id such as ``timm/vgg16.tv_in1k``) turn LPIPS on."""
    from .cache import cached
    from .inputs import check_pairs, load_pairs, mean_or_none

    n = check_pairs(predictions, references, regions=regions)
    boxes = [region_boxes(row) for row in regions] if regions is not None else None
    safes, originals = load_pairs(predictions, references)
    per_image = {
        "ssim": [ssim(o, s) for o, s in zip(originals, safes)],
        "psnr": [psnr(o, s) for o, s in zip(originals, safes)],
        "phash_distance": [phash_distance(o, s) for o, s in zip(originals, safes)],
    }
    models = {}
    if clip:
        from .quality import DEFAULT_CLIP, DEFAULT_CLIP_REVISION, ClipEncoder, image_similarity

        encoder = cached(ClipEncoder, model=clip_model or DEFAULT_CLIP,
                         revision=clip_revision if clip_model else clip_revision or DEFAULT_CLIP_REVISION,
                         device=device, local_files_only=local_files_only)
        per_image["clip_image_similarity"] = image_similarity(encoder, originals, safes).tolist() if n else []
        models["clip"] = encoder.describe()
    if boxes is not None:
        per_image["changed_outside_regions"] = [
            changed_outside_regions(o, s, b, pixel_tolerance) for o, s, b in zip(originals, safes, boxes)
        ]
    if lpips_backbone:
        per_image["lpips"] = lpips_scores(originals, safes, lpips_backbone, lpips_revision, local_files_only, device).tolist()
        models["lpips"] = {"id": f"LPIPS v0.1 VGG16 ({lpips_backbone})", "revision": lpips_revision,
                           "heads": "lpips 0.1.4 wheel, weights/v0.1/vgg.pth"}
    result = {"num_images": n}
    for key, values in per_image.items():
        result[key] = mean_or_none(values)
    result["lpips_status"] = "computed" if lpips_backbone else "not computed: pass lpips_backbone (VGG16 weights: folder or hub id)"
    if not lpips_backbone:
        result["lpips"] = None
    result["per_image"] = per_image
    result["models"] = models
    return result
