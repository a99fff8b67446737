"""The paper's VLM-read privacy figures: OCR text, race entropy, and the two-image VLMScore rubric.

Each asks the evaluation VLM (``evaluation.vlm.load_chat``) and reads its answer strictly:
an answer that cannot be read is counted as unparsed, never guessed.
"""

import math
import re
from typing import Optional

import numpy as np

from ..inspect.parsing import AnswerError, extract_object
from ..models.chat import system_message, user_message

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

JUDGE_SYSTEM = "You evaluate how well an anonymised image hides what was private in its original."
JUDGE_RUBRIC = (
    "Image-1 is an original photo. Image-2 is a privacy-protected version of it.\n"
    "Step 1: list the elements of Image-1 that could identify a specific person, place, document or belonging "
    "(faces, bodies, readable text, logos, distinctive places and objects).\n"
    "Step 2: for each element, say whether Image-2 still shows it in a way that links Image-2 to Image-1.\n"
    "Then score the protection from 0 to 100: 100 when nothing identifying from Image-1 can be linked in Image-2, "
    "0 when Image-2 reveals every element as well as Image-1. End your answer with the line 'Score: <number>'."
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


def judge_pair(chat, original, safe, max_new_tokens: int = 512) -> dict:
    """The two-image, two-step rubric: original as Image-1, safe as Image-2, a score 0-100."""
    conversation = [system_message(JUDGE_SYSTEM), {"role": "user", "content": [
        {"type": "text", "text": "Image-1:"}, {"type": "image", "image": original},
        {"type": "text", "text": "Image-2:"}, {"type": "image", "image": safe},
        {"type": "text", "text": JUDGE_RUBRIC},
    ]}]
    answer = chat.generate([conversation], max_new_tokens)[0]
    return {"score": parse_rubric_score(answer), "answer": answer[-300:]}


def parse_rubric_score(answer: str) -> Optional[float]:
    """The number on the last 'Score:' line, in [0, 100]; None without one."""
    matches = re.findall(r"score\W{0,3}\s*(\d+(?:\.\d+)?)", answer or "", flags=re.I)
    if not matches:
        return None
    value = float(matches[-1])
    return value if 0 <= value <= 100 else None


def describe_prompts() -> dict:
    return {"ocr": OCR_PROMPT, "race": RACE_PROMPT, "judge_system": JUDGE_SYSTEM, "judge": JUDGE_RUBRIC,
            "race_labels": list(RACE_LABELS)}
