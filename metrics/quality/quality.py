"""Quality of privacy-safe images: do they still show what the public caption says? (Unsafe2Safe evaluation suite)"""

import datasets
import evaluate

from u2s_datasets.evaluation.inputs import check_pairs, check_texts
from u2s_datasets.evaluation.options import own_options
from u2s_datasets.evaluation.quality import compute_quality

_CITATION = """\
@inproceedings{unsafe2safe2026,
  title     = {Unsafe2Safe},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2026},
  eprint    = {2603.28605},
  archivePrefix = {arXiv}
}
@inproceedings{hessel2021clipscore,
  title     = {CLIPScore: A Reference-free Evaluation Metric for Image Captioning},
  author    = {Hessel, Jack and Holtzman, Ari and Forbes, Maxwell and Le Bras, Ronan and Choi, Yejin},
  booktitle = {EMNLP},
  year      = {2021}
}
"""

_DESCRIPTION = """\
CLIP score (x100) of each safe image against its public caption, the same score of the
original for comparison, directional CLIP similarity (image change vs. caption change from
the private to the public caption), and FID/KID between originals and safe images when a
feature extractor is given. Default CLIP: openai/clip-vit-large-patch14 (ViT-L/14) at a
pinned revision; any CLIP checkpoint or local folder works in its place.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: safe images. references: the original images, row for row.
    captions (list of str): the public caption of each row.
    source_captions (list of str, optional): the private caption of each row (directional similarity).
    clip_model, clip_revision: CLIP checkpoint (hub id or local folder).
    fid_features (None | "clip" | torch.nn.Module): features for FID/KID.
    kid_subset_size, device, local_files_only, batch_size.
Returns:
    clip_score, original_clip_score, directional_similarity, fid, kid_mean, kid_std,
    `per_image` lists, and `models` (id + revision).
Examples:
    >>> quality = evaluate.load("u2s/quality")
    >>> quality.compute(predictions=safe, references=originals, captions=public_captions)["clip_score"]
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Quality(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Image(), "references": datasets.Image(), "captions": datasets.Value("string")}
            ),
            reference_urls=["https://arxiv.org/abs/2603.28605", "https://arxiv.org/abs/2104.08718"],
        )

    def add_batch(self, *, predictions=None, references=None, captions=None, **kwargs):
        """Add safe images (predictions), originals (references) and public captions, checked row by row."""
        check_pairs(predictions, references, captions=captions)
        check_texts(captions or [], "captions")
        super().add_batch(predictions=predictions, references=references, captions=captions, **kwargs)

    def add(self, *, prediction=None, reference=None, captions=None, **kwargs):
        """Add one safe image, its original and its public caption."""
        check_pairs([prediction], [reference])
        check_texts([captions], "captions")
        super().add(prediction=prediction, reference=reference, captions=captions, **kwargs)

    def _compute(self, predictions, references, captions, **options):
        return compute_quality(predictions, references, captions, **own_options(options, compute_quality, "u2s/quality"))
