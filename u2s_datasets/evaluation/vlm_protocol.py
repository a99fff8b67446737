"""This project's VLM-read privacy figures (``protocol="u2s"``): OCR text and a race-probability entropy.

Each asks the evaluation VLM (``evaluation.vlm.load_chat``) and reads its answer strictly:
an answer that cannot be read is counted as unparsed, never guessed. The paper's own prompts and
definitions are in ``paper_protocol``.
"""

import math
import re
from typing import Optional

import numpy as np

from ..inspect.parsing import AnswerError, extract_object
from ..models.chat import user_message

OCR_PROMPT = (
    "Read every piece of text visible in this image: signs, labels, documents, screens, name tags, "
    "handwriting, also small, blurred or partly hidden text. Write it exactly as it appears, in reading "
    "order, one line per text element. If there is no readable text, answer NONE."
)

# The five labels of the paper's race entropy (as in UTKFace); entropy is normalised by ln 5.
RACE_LABELS = ("White", "Black", "Asian", "Indian", "Others")
RACE_PROMPT = (
    "Look at the most prominent person in this image. Judging only from visible appearance, give the "
    "probability (0-100) that this person would be perceived as each of: {labels}. The numbers add up to 100. "
    'If there is no person, answer {{"person": false}}. Otherwise answer with one JSON object and nothing else: '
    '{{"person": true, {example}}}'
)

def read_text_vlm(chat, image, max_new_tokens: int = 256) -> str:
    """The text the VLM reads in ``image``; empty when it reads none."""
    answer = chat.generate([[user_message(OCR_PROMPT, image)]], max_new_tokens)[0].strip()
    return "" if re.fullmatch(r"\W*none\W*", answer, flags=re.I) else answer


def race_distribution(chat, image, max_new_tokens: int = 96) -> Optional[dict]:
    """``{"person": bool, "probabilities": {label: p}}`` from the VLM, or None when the answer is unusable."""
    example = ", ".join(f'"{label}": <0-100>' for label in RACE_LABELS)
    prompt = RACE_PROMPT.format(labels=", ".join(RACE_LABELS), example=example)
    answer = chat.generate([[user_message(prompt, image)]], max_new_tokens)[0]
    return parse_race_answer(answer)


def parse_race_answer(answer: str) -> Optional[dict]:
    try:
        obj = extract_object(answer, {})
    except AnswerError:
        return None
    lowered = {str(k).strip().lower(): v for k, v in obj.items()}
    if lowered.get("person") is False:
        return {"person": False, "probabilities": None}
    values = []
    for label in RACE_LABELS:
        value = lowered.get(label.lower())
        if isinstance(value, str):
            value = value.strip().rstrip("%")
        try:
            values.append(max(0.0, float(value)))
        except (TypeError, ValueError):
            return None
    total = sum(values)
    if total <= 0:
        return None
    return {"person": True, "probabilities": dict(zip(RACE_LABELS, (v / total for v in values)))}


def race_entropy(probabilities: dict) -> float:
    """Shannon entropy of one image's label distribution over the five labels, divided by ln 5 (1 = no cue)."""
    p = np.asarray([probabilities.get(label, 0.0) for label in RACE_LABELS], dtype=np.float64)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log(p)).sum() / math.log(len(RACE_LABELS)))


def describe_prompts() -> dict:
    return {"ocr": OCR_PROMPT, "race": RACE_PROMPT, "race_labels": list(RACE_LABELS)}
