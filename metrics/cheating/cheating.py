"""Cheating: how much of the original a privacy-safe image simply copies (Unsafe2Safe evaluation suite)."""

import datasets
import evaluate

from u2s_datasets.evaluation.cheating import compute_cheating
from u2s_datasets.evaluation.inputs import check_pairs
from u2s_datasets.evaluation.options import own_options

_CITATION = """\
@inproceedings{unsafe2safe2026,
  title     = {Unsafe2Safe},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2026},
  eprint    = {2603.28605},
  archivePrefix = {arXiv}
}
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
    >>> cheating = evaluate.load("u2s/cheating")
    >>> cheating.compute(predictions=safe, references=originals, clip=False)["ssim"]
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Cheating(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Image(), "references": datasets.Image()}),
            reference_urls=["https://arxiv.org/abs/2603.28605"],
        )

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of safe images (predictions) and originals (references), checked row by row."""
        check_pairs(predictions, references)
        super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one safe image (prediction) and its original (reference)."""
        check_pairs([prediction], [reference])
        super().add(prediction=prediction, reference=reference, **kwargs)

    def _compute(self, predictions, references, **options):
        return compute_cheating(predictions, references, **own_options(options, compute_cheating, "u2s/cheating"))
