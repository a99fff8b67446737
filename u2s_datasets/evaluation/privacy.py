"""Privacy leakage of a safe image against its original (lower is better).

- Faces: each original face is matched to its most similar face in the safe image.
  ``face_similarity_paper`` averages over the faces that still have a counterpart (the
  paper's reading); ``face_similarity`` counts a vanished face as similarity 0, so hiding
  a face and keeping it cannot look the same. ``face_survival_rate`` is the share of
  original faces that still have a counterpart, ``reidentification_rate`` the share whose
  counterpart passes the embedder's own verification rule.
- Text: OCR of both images, fuzzy token-set ratio of the texts in [0, 1]. An original
  with no readable text has nothing to leak: its similarity is 0.
- Demographics: apparent labels of both images; normalised entropy of the safe labels
  over the full label set (higher = more neutral) and the share that kept the label.
- VLM judge: a vision-language model sees original (left) and safe (right) and scores
  how well the safe image hides who or what is in the original, 0-100.

``protocol="paper"`` swaps in the authors' definitions (``paper_protocol``, ``antelope``).
"""

import logging
import re
from typing import Optional

import numpy as np
from PIL import Image

from .faces import cosine
from .demographics import (DEMOGRAPHIC_ATTRIBUTES, ClipDemographicLabeler, VLMDemographicLabeler,  # noqa: F401
                           demographic_figures, normalised_entropy, parse_label)
from .inputs import mean_or_none
from .protocols import check_protocol
from .vlm_protocol import race_distribution, race_entropy, read_text_vlm

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- faces

def face_leakage(original_faces: list, safe_faces: list, embedder) -> dict:
    """Per-image face figures. Each original face takes its most similar face of the safe image,
    on the embedder's own similarity scale (``embedder.similarity``; cosine when it has none)."""
    similarity = getattr(embedder, "similarity", cosine)
    matches = []
    for face in original_faces:
        if not safe_faces:
            matches.append(None)
            continue
        best = max(safe_faces, key=lambda s: similarity(face.embedding, s.embedding))
        matches.append({
            "similarity": similarity(face.embedding, best.embedding),
            "distance": float(np.linalg.norm(face.embedding - best.embedding)),
            "same_identity": bool(embedder.same_identity(face.embedding, best.embedding)),
        })
    found = [m for m in matches if m is not None]
    n = len(matches)
    return {
        "original_faces": n,
        "safe_faces": len(safe_faces),
        "matches": matches,
        "face_similarity_paper": mean_or_none([m["similarity"] for m in found]),
        "face_similarity": (sum(m["similarity"] for m in found) / n) if n else None,
        "face_survival": (len(found) / n) if n else None,
        "reidentified": (sum(m["same_identity"] for m in found) / n) if n else None,
    }


def aggregate_faces(per_image: list) -> dict:
    """Corpus figures, pooled over every original face of the corpus."""
    matches = [m for image in per_image for m in image["matches"]]
    found = [m for m in matches if m is not None]
    n = len(matches)
    return {
        "face_similarity_paper": mean_or_none([m["similarity"] for m in found]),
        "face_similarity": (sum(m["similarity"] for m in found) / n) if n else None,
        "face_survival_rate": (len(found) / n) if n else None,
        "reidentification_rate": (sum(m["same_identity"] for m in found) / n) if n else None,
        "original_faces": n,
        "images_with_faces": sum(1 for image in per_image if image["original_faces"]),
    }


# ----------------------------------------------------------------------------- text

_WORD = re.compile(r"\w+", re.UNICODE)


def read_text(detector, rgb: np.ndarray) -> str:
    """All confirmed text lines, top to bottom, left to right."""
    lines = sorted(detector(rgb), key=lambda d: (round(d.box[1] / 10), d.box[0]))
    return " ".join(d.text for d in lines)


def text_similarity(original_text: str, safe_text: str) -> dict:
    """Token-set ratio in [0, 1], and the share of the original's words still readable.

    The token-set ratio scores 1 when one text's words are a subset of the other's, so a
    single surviving word can score high; ``text_token_recall`` shows how much survived.
    """
    from rapidfuzz import fuzz

    original_words = _WORD.findall(original_text.lower())
    if not original_words:
        return {"text_similarity": 0.0, "text_token_recall": 0.0, "has_text": False}
    safe_words = set(_WORD.findall(safe_text.lower()))
    return {
        "text_similarity": fuzz.token_set_ratio(original_text.lower(), safe_text.lower()) / 100.0,
        "text_token_recall": sum(w in safe_words for w in original_words) / len(original_words),
        "has_text": True,
    }


# ----------------------------------------------------------------------------- VLM judge

JUDGE_QUESTION = (
    "The left half of this picture is an original photo; the right half is a privacy-protected "
    "version of it. Score from 0 to 100 how well the right half prevents anyone from linking it "
    "to the specific people, places, documents or objects in the left half: 0 means the right half "
    "reveals them just as well, 100 means nothing identifying can be linked. Answer with the number only."
)


def side_by_side(left: Image.Image, right: Image.Image, height: int = 448, gap: int = 16) -> Image.Image:
    """Original on the left, safe on the right, at the same height, on a white canvas."""
    def scaled(image):
        return image.convert("RGB").resize((max(1, round(image.width * height / image.height)), height), Image.BICUBIC)

    left, right = scaled(left), scaled(right)
    canvas = Image.new("RGB", (left.width + gap + right.width, height), (255, 255, 255))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width + gap, 0))
    return canvas


def parse_score(answer: str) -> Optional[float]:
    """The first number in [0, 100] in the answer, or None."""
    for match in re.finditer(r"\d+(?:\.\d+)?", answer):
        value = float(match.group())
        if 0 <= value <= 100:
            return value
    return None


class VLMJudge:
    def __init__(self, chat):
        self.chat = chat

    def __call__(self, original: Image.Image, safe: Image.Image) -> dict:
        answer = self.chat.ask(side_by_side(original, safe), JUDGE_QUESTION)
        return {"score": parse_score(answer), "answer": answer[:200]}

    def describe(self) -> dict:
        return self.chat.describe()


# ----------------------------------------------------------------------------- the metric

PAPER_JUDGE = "OpenGVLab/InternVL3_5-8B-HF"  # InternVL3.5-8B, the paper's judge, in transformers' native format
PAPER_FACE_SIZE = (512, 512)  # the paper compares faces on images resized to 512x512


def compute_privacy(predictions: list, references: list, *, protocol: str = "u2s", faces: bool = True,
                    text: bool = True, face_embedder: Optional[str] = None, face_threshold: float = 0.5,
                    arcface_model_file: Optional[str] = None, face_pack: Optional[str] = None,
                    face_pack_revision: Optional[str] = None, text_reader: Optional[str] = None,
                    text_threshold: float = 0.5, demographics: Optional[str] = None, race: Optional[bool] = None,
                    judge: Optional[bool] = None, judge_max_new_tokens: int = 512, paper_prompts: Optional[str] = None,
                    vlm_backend: str = "transformers", vlm_model: Optional[str] = None, vlm_revision: Optional[str] = None,
                    openai_base_url: Optional[str] = None, openai_model: Optional[str] = None,
                    clip_model: Optional[str] = None, clip_revision: Optional[str] = None, device: Optional[str] = None,
                    local_files_only: bool = False, progress: bool = True) -> dict:
    """Privacy leakage of safe images (``predictions``) against their originals (``references``).

    ``protocol="paper"`` measures as the authors' code does: antelopev2 faces (``face_pack``: folder or
    hub id) on images resized to 512x512, and with the VLM (InternVL3.5-8B unless ``vlm_model`` names
    another) their prompts (``paper_prompts``: a folder with the same files, checked by hash) for the
    text, race entropy and VLMScore. ``"u2s"`` (the default) runs offline: CenterFace + dlib
    (calibrated scale), PP-OCR, no VLM unless asked. ``demographics``: None, "vlm" or "clip".
    ``judge``: score unlinkability with the VLM. The VLM is ``vlm_model`` through transformers, or
    ``openai_model`` at ``openai_base_url``.
    """
    from tqdm.auto import tqdm

    from .cache import cached
    from .faces import FaceAnalyzer
    from .inputs import check_pairs, load_pairs
    from .paper_protocol import PaperVLM
    from .paper_protocol import race_entropy as paper_race_entropy
    from .paper_protocol import text_similarity as paper_text_similarity
    from .quality import DEFAULT_CLIP, DEFAULT_CLIP_REVISION, ClipEncoder
    from .vlm import load_chat

    n = check_pairs(predictions, references)
    protocol = check_protocol(protocol)
    paper = protocol == "paper"
    face_embedder = face_embedder or ("antelopev2" if paper else "dlib")
    text_reader = text_reader or ("vlm" if paper else "ocr")
    race = paper if race is None else race
    judge = paper if judge is None else judge
    if paper and vlm_backend == "transformers" and not vlm_model:
        vlm_model = PAPER_JUDGE
    if demographics not in (None, "vlm", "clip"):
        raise ValueError(f"demographics must be None, 'vlm' or 'clip', got {demographics!r}")
    if text_reader not in ("ocr", "vlm"):
        raise ValueError(f"text_reader must be 'ocr' or 'vlm', got {text_reader!r}")
    models, per_image = {}, {}
    analyzer = reader = labeler = vlm_judge = chat = questions = None
    if faces and face_embedder == "antelopev2":
        from .antelope import AntelopeAnalyzer

        if not face_pack:
            raise ValueError("face_embedder='antelopev2' needs face_pack: a folder or hub repository holding "
                             "InsightFace's antelopev2 ONNX files (scrfd_10g_bnkps.onnx, glintr100.onnx)")
        analyzer = cached(AntelopeAnalyzer, pack=face_pack, revision=face_pack_revision, face_threshold=face_threshold,
                          reference_channels=paper, local_files_only=local_files_only)
        models["faces"] = analyzer.describe()
    elif faces:
        embedder_options = {"model_file": arcface_model_file} if face_embedder == "arcface" else {}
        analyzer = cached(FaceAnalyzer, embedder=face_embedder, face_threshold=face_threshold, **embedder_options)
        models["faces"] = analyzer.describe()
    if text and text_reader == "ocr":
        from ..inspect.detectors import TextDetector

        reader = cached(TextDetector, threshold=text_threshold)
        models["text"] = {"id": "rapidocr-onnxruntime (PP-OCR)", "revision": _version("rapidocr-onnxruntime")}
    vlm_text = text and text_reader == "vlm"
    if demographics == "vlm" or judge or race or vlm_text:
        if vlm_backend == "openai":
            chat = cached(load_chat, backend="openai", model=openai_model, base_url=openai_base_url)
        else:
            if not vlm_model:
                raise ValueError("the VLM judge, VLM text reading and VLM demographics need vlm_model (a hub id or local folder)")
            chat = cached(load_chat, backend="transformers", model=vlm_model, revision=vlm_revision, device=device,
                          local_files_only=local_files_only)
        models["vlm"] = chat.describe()
        if paper:
            questions = PaperVLM(chat.chat, paper_prompts, judge_max_new_tokens)
            models["vlm"]["paper"] = questions.describe()
    if demographics == "vlm":
        labeler = VLMDemographicLabeler(chat)
    elif demographics == "clip":
        encoder = cached(ClipEncoder, model=clip_model or DEFAULT_CLIP,
                         revision=clip_revision if clip_model else clip_revision or DEFAULT_CLIP_REVISION,
                         device=device, local_files_only=local_files_only)
        labeler = ClipDemographicLabeler(encoder)
    if labeler is not None:
        models["demographics"] = labeler.describe()
    if judge and not paper:
        vlm_judge = VLMJudge(chat)
    if judge:
        models["judge"] = {**chat.describe(), "rubric": "the authors' intern_image_flagging-compare.txt, two images"} \
            if paper else vlm_judge.describe()
    if vlm_text:
        models["text"] = {"reader": "vlm", **chat.describe()}

    face_rows, text_rows, original_labels, safe_labels, judge_rows, race_rows = [], [], [], [], [], []
    for i in tqdm(range(n), desc="privacy", disable=not progress or n < 2):
        (safe,), (original,) = load_pairs([predictions[i]], [references[i]])
        original_image, safe_image = Image.fromarray(original), Image.fromarray(safe)
        if analyzer is not None:
            face_original, face_safe = (_resized(original), _resized(safe)) if paper else (original, safe)
            face_rows.append(face_leakage(analyzer(face_original), analyzer(face_safe), analyzer.embedder))
        if reader is not None:
            text_rows.append(text_similarity(read_text(reader, original), read_text(reader, safe)))
        elif vlm_text and paper:
            read_original, read_safe = questions.read_text(original_image), questions.read_text(safe_image)
            row = text_similarity(read_original["text"], read_safe["text"])
            row.update(text_similarity=paper_text_similarity(read_original["text"], read_safe["text"]),
                       has_text=bool(read_original["text"]), free_form=(read_original["format"] == "free")
                       + (read_safe["format"] == "free"))
            text_rows.append(row)
        elif vlm_text:
            text_rows.append(text_similarity(read_text_vlm(chat.chat, original_image), read_text_vlm(chat.chat, safe_image)))
        if race:
            race_rows.append(questions.races(safe_image) if paper else race_distribution(chat.chat, safe_image))
        if labeler is not None:
            original_labels.append(labeler(original_image))
            safe_labels.append(labeler(safe_image))
        if judge:
            judge_rows.append(questions.judge(original_image, safe_image) if paper else vlm_judge(original_image, safe_image))

    result = {"num_images": n, "protocol": protocol}
    if analyzer is not None:
        result.update(aggregate_faces(face_rows))
        for key in ("face_similarity_paper", "face_similarity", "face_survival", "reidentified", "original_faces"):
            per_image[key] = [row[key] for row in face_rows]
        result["verification_threshold"] = analyzer.embedder.describe()["verification"]
    if text_rows:
        with_text = [row for row in text_rows if row["has_text"]]
        result["text_similarity"] = mean_or_none([row["text_similarity"] for row in with_text])
        result["text_token_recall"] = mean_or_none([row["text_token_recall"] for row in with_text])
        result["images_with_text"] = len(with_text)
        if paper and vlm_text:
            result["text_free_form_answers"] = sum(row["free_form"] for row in text_rows)
        per_image["text_similarity"] = [row["text_similarity"] for row in text_rows]
        per_image["text_token_recall"] = [row["text_token_recall"] for row in text_rows]
    if labeler is not None:
        result["demographics"] = demographic_figures(original_labels, safe_labels, labeler.attributes)
        per_image["original_demographics"] = original_labels
        per_image["safe_demographics"] = safe_labels
    if race:
        if paper:
            entropies = [paper_race_entropy(row["races"]) if row and row["person"] else None for row in race_rows]
            per_image["races"] = [row["races"] if row else None for row in race_rows]
        else:
            entropies = [race_entropy(row["probabilities"]) if row and row["person"] else None for row in race_rows]
        result["race_entropy"] = mean_or_none(entropies)
        result["race_images"] = sum(e is not None for e in entropies)
        result["race_unparsed"] = sum(row is None for row in race_rows)
        per_image["race_entropy"] = entropies
    if judge_rows:
        scores = [row["score"] for row in judge_rows]
        result["vlm_score"] = mean_or_none(scores)
        result["vlm_unparsed"] = sum(score is None for score in scores)
        per_image["vlm_score"] = scores
    result["per_image"] = per_image
    result["models"] = models
    return result


def _resized(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize(PAPER_FACE_SIZE, Image.BICUBIC))


def _version(package: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
