"""Privacy leakage of privacy-safe images against their originals (Unsafe2Safe evaluation suite)."""

from u2s_datasets.evaluation import metric_support
from u2s_datasets.evaluation.privacy import compute_privacy

_DESCRIPTION = """\
How much of the private content of an original image can still be recovered from its
safe version (lower leakage is better): face similarity (the paper's mean over faces that
survive, and the mean that counts a vanished face as no match), face survival and
re-identification rates, OCR text similarity, and optionally demographic predictability
and a pairwise VLM unlinkability score.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: safe images (PIL images, arrays, paths, bytes or {"bytes", "path"} dicts).
    references: the original images, row for row.
    protocol ("u2s" | "paper"): "paper" measures as the authors' code does: antelopev2 (SCRFD at 512 +
        ArcFace, `face_pack` = folder or hub id) on 512x512 images; with the VLM (InternVL3.5-8B unless
        `vlm_model` is set) their text-extraction, demographic and two-image VLMScore prompts
        (`paper_prompts`: a folder of the same files), TextSim with case kept, race entropy over
        White/Black/Asian/Hispanic/Other. "u2s" (default): this project's figures.
    faces (bool, default True): face similarity, survival and re-identification.
    text (bool, default True): OCR text similarity.
    face_embedder ("dlib" | "arcface" | "antelopev2"): dlib ResNet on a calibrated scale (default,
        offline; not ArcFace's cosine), InsightFace ArcFace (`arcface_model_file`), or the antelopev2
        pack (`face_pack`); InsightFace's models are for non-commercial research only.
    text_reader ("ocr" | "vlm"): PP-OCR (default) or the VLM with the paper's OCR prompt.
    race (bool): per-image race entropy normalised by ln 5 (VLM).
    demographics (None | "vlm" | "clip"): apparent demographic labels of both images.
    judge (bool): pairwise VLM unlinkability score 0-100.
    vlm_backend ("transformers" | "openai"), vlm_model, vlm_revision, openai_base_url, openai_model.
    clip_model, clip_revision: CLIP checkpoint for demographics="clip".
    device, local_files_only, progress.
Returns:
    Corpus figures (face_similarity_paper, face_similarity, face_survival_rate,
    reidentification_rate, text_similarity, text_token_recall, demographics, vlm_score),
    `per_image` lists for plots, and `models` naming every model used (id + revision).
Examples:
    >>> privacy = u2s_datasets.load_metric("privacy")  # not evaluate.load("u2s/privacy"): that asks the Hub first
    >>> results = privacy.compute(predictions=safe_images, references=original_images)
    >>> results["face_similarity"], results["text_similarity"]
"""


class Privacy(metric_support.ImagePairMetric):
    compute_function = staticmethod(compute_privacy)
    card_description, card_inputs = _DESCRIPTION, _KWARGS_DESCRIPTION
