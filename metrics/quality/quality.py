"""Quality of privacy-safe images: do they still show what the public caption says? (Unsafe2Safe evaluation suite)"""

from u2s_datasets.evaluation import metric_support
from u2s_datasets.evaluation.quality import compute_quality

_CITATION = metric_support.PAPER_CITATION + """\
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
    fid_features (None | "inception" | "clip" | torch.nn.Module): features for FID/KID. "inception" is FID's
        Inception-v3 (comparable with published FIDs); its weights are not shipped:
    fid_inception_weights (str): path of pt_inception-2015-12-05-6726825d.pth, or a Hub repository holding it.
    kid_subset_size, device, local_files_only, batch_size.
Returns:
    clip_score, original_clip_score, directional_similarity, fid, kid_mean, kid_std,
    `per_image` lists, and `models` (id + revision).
Examples:
    >>> quality = u2s_datasets.load_metric("quality")  # not evaluate.load("u2s/quality"): that asks the Hub first
    >>> quality.compute(predictions=safe, references=originals, captions=public_captions)["clip_score"]
"""


class Quality(metric_support.ImagePairMetric):
    compute_function = staticmethod(compute_quality)
    extra_columns = {"captions": "string"}
    card_description, card_inputs, card_citation = _DESCRIPTION, _KWARGS_DESCRIPTION, _CITATION
    card_urls = (metric_support.PAPER_URL, "https://arxiv.org/abs/2104.08718")
