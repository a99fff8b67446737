"""Cheating: how much of the original a privacy-safe image simply copies (Unsafe2Safe evaluation suite)."""

from u2s_datasets.evaluation import metric_support
from u2s_datasets.evaluation.cheating import compute_cheating

_CITATION = metric_support.PAPER_CITATION + """\
@article{wang2004ssim,
  title   = {Image Quality Assessment: From Error Visibility to Structural Similarity},
  author  = {Wang, Zhou and Bovik, Alan C. and Sheikh, Hamid R. and Simoncelli, Eero P.},
  journal = {IEEE Transactions on Image Processing},
  year    = {2004}
}
"""

_DESCRIPTION = """\
Similarity of each safe image to its original: SSIM, PSNR (capped at 100 dB for identical
images), perceptual-hash Hamming distance (0 = same picture, ~32 = unrelated), CLIP
image-image cosine similarity, and the share of pixels changed outside the private regions.
High similarity where the private content should have changed means the edit copied its
source. LPIPS needs a torchvision backbone; where torchvision is not installed the result
says so in `lpips_status` and `lpips` is None.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: safe images. references: the original images, row for row.
    regions (optional): per row, the private boxes [x0, y0, x1, y1] or the `privacy_regions`
        column's dicts; enables `changed_outside_regions`.
    clip (bool, default True), clip_model, clip_revision: CLIP image-image similarity.
    pixel_tolerance (int, default 8): a pixel counts as changed above this difference.
    device, local_files_only.
Returns:
    ssim, psnr, phash_distance, clip_image_similarity, changed_outside_regions, lpips,
    lpips_status, `per_image` lists, and `models` (id + revision).
Examples:
    >>> cheating = u2s_datasets.load_metric("cheating")  # not evaluate.load("u2s/cheating"): that asks the Hub first
    >>> cheating.compute(predictions=safe, references=originals, clip=False)["ssim"]
"""


class Cheating(metric_support.ImagePairMetric):
    compute_function = staticmethod(compute_cheating)
    card_description, card_inputs, card_citation = _DESCRIPTION, _KWARGS_DESCRIPTION, _CITATION
