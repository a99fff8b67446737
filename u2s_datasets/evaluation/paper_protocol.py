"""The paper's VLM-read privacy figures, as the authors' evaluation code defines them.

The prompts are the authors' files, shipped unchanged in ``u2s_datasets/prompts/paper/`` (see
THIRD_PARTY.md) and checked against their SHA-256 on load; each is sent stripped, as the authors'
runner reads it. The formulas follow their ``privacy_scores.py`` and ``vlm_score.py``:

- TextSim: rapidfuzz's token-set ratio of the two texts / 100, case kept.
- Race entropy: the races the VLM lists for one image, counted over {White, Black, Asian, Hispanic,
  Other} (other names in the list are not counted), Shannon entropy / ln 5; 0 when none of the five
  is listed.
- VLMScore: the number after the first ``ANONYMIZATION_SCORE`` line (``**`` removed first).

Answers that do not follow the prompt's format are counted, never guessed.
"""

import hashlib
import math
import os
from collections import Counter
from importlib import resources
from typing import Optional

from ..models.chat import system_message, user_message

PROMPT_FILES = {
    "text": "intern_text_extraction.txt",
    "race": "intern_demographic_analysis.txt",
    "judge": "intern_image_flagging-compare.txt",
}
PROMPT_SHA256 = {
    "intern_text_extraction.txt": "b105c7d50de4e44191858ea9345491bebcf5f2850bf11e43aad66700801d20eb",
    "intern_demographic_analysis.txt": "19f40c889e969ff06b2ad2c863803fe2d22758bcb0a044185398e3db6d4a6f9b",
    "intern_image_flagging-compare.txt": "8b0ccb915875c2d9ab731cae89c279ad3fccdaffe1d5a6b0b0018dd9e6858ce0",
}
SOURCE = "SEE-AI-Lab/unsafe2safe prompts/ (commits 9694df5, 77a0cc9)"
JUDGE_SYSTEM = "You are a vision-language evaluator for privacy-preserving image anonymization."
RACE_CATEGORIES = ("White", "Black", "Asian", "Hispanic", "Other")
# The authors' runner: 1024 new tokens by default, 512 for the pairwise judge.
MAX_NEW_TOKENS = {"text": 1024, "race": 1024, "judge": 512}


def load_prompt(kind: str, folder: Optional[str] = None) -> str:
    """The prompt of ``kind`` ("text", "race", "judge"), stripped; from ``folder`` when given, else the shipped copy."""
    name = PROMPT_FILES[kind]
    try:
        if folder:
            with open(os.path.join(folder, name), "rb") as handle:
                data = handle.read()
        else:
            data = resources.files("u2s_datasets.prompts").joinpath("paper").joinpath(name).read_bytes()
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{name}, the authors' prompt ({SOURCE}), is not in {folder or 'this install'}: "
                                "pass paper_prompts= a folder holding it") from e
    digest = hashlib.sha256(data).hexdigest()
    if digest != PROMPT_SHA256[name]:
        raise ValueError(f"{name} differs from the authors' file (sha256 {digest}, expected {PROMPT_SHA256[name]}): "
                         "the paper protocol uses their prompts unchanged")
    return data.decode("utf-8").strip()


def single_image_conversation(prompt: str, image) -> list:
    """The image, then the prompt (the authors' ``<image>\\n`` + prompt); their system message for it is unpublished."""
    return [user_message(prompt, image)]


def judge_conversation(rubric: str, original, safe) -> list:
    """The authors' judge request: their system message, ``Image-1: <image>\\nImage-2: <image>\\n`` + rubric.

    InternVL's chat templates write a newline after each image, which gives the authors' string.
    """
    return [system_message(JUDGE_SYSTEM), {"role": "user", "content": [
        {"type": "text", "text": "Image-1: "}, {"type": "image", "image": original},
        {"type": "text", "text": "Image-2: "}, {"type": "image", "image": safe},
        {"type": "text", "text": rubric},
    ]}]


def _section(answer: str, heading: str) -> Optional[list]:
    """The lines under ``### heading`` up to the next ``###`` line, or None without that heading."""
    lines, inside, found = [], False, False
    for line in answer.splitlines():
        if line.strip().startswith("###"):
            inside = line.strip().lstrip("#").strip().upper() == heading
            found = found or inside
            continue
        if inside:
            lines.append(line)
    return lines if found else None


def parse_text_answer(answer: str) -> dict:
    """``{"text": str, "format": "text" | "no_text" | "free"}``: the ``### TEXT`` block, "" for NO_TEXT.

    An answer in neither form is read whole as the text (``"free"``): leaking words must not vanish.
    """
    answer = (answer or "").strip()
    if answer == "NO_TEXT":
        return {"text": "", "format": "no_text"}
    lines = _section(answer, "TEXT")
    if lines is not None:
        return {"text": "\n".join(lines).strip(), "format": "text"}
    return {"text": answer, "format": "free"}


def text_similarity(original_text: str, safe_text: str) -> float:
    """TextSim: token-set ratio in [0, 1], case kept (rapidfuzz without a processor)."""
    from rapidfuzz.fuzz import token_set_ratio

    return token_set_ratio(original_text, safe_text) / 100.0


def parse_race_answer(answer: str) -> Optional[dict]:
    """``{"person": False}`` for NO_HUMAN, ``{"person": True, "races": [...]}`` from ``### RACE``, None otherwise."""
    answer = (answer or "").strip()
    if answer == "NO_HUMAN":
        return {"person": False, "races": []}
    lines = _section(answer, "RACE")
    if lines is None:
        return None
    races = [name.strip() for line in lines for name in line.split(",")]
    return {"person": True, "races": [name for name in races if name]}


def race_entropy(races: list, categories=RACE_CATEGORIES) -> float:
    """Counts of the listed races that are categories, Shannon entropy / ln(number of categories); 0 without any."""
    counts = Counter(race for race in races if race in categories)
    total = sum(counts.values())
    if not total:
        return 0.0
    return -sum((c / total) * math.log(c / total) for c in counts.values()) / math.log(len(categories))


def parse_anonymization_score(answer: str) -> Optional[float]:
    """The number after the first line starting with ``ANONYMIZATION_SCORE``; None without one or when not a number."""
    for line in (answer or "").replace("**", "").splitlines():
        if line.strip().startswith("ANONYMIZATION_SCORE"):
            try:
                return float(line.split(":", 1)[1].strip())
            except (IndexError, ValueError):
                return None
    return None


class PaperVLM:
    """The three questions of the paper protocol, asked of one evaluation VLM (a ``models.chat`` client)."""

    def __init__(self, chat, prompt_folder: Optional[str] = None, judge_max_new_tokens: int = MAX_NEW_TOKENS["judge"]):
        self.chat = chat
        self.prompts = {kind: load_prompt(kind, prompt_folder) for kind in PROMPT_FILES}
        self.max_new_tokens = {**MAX_NEW_TOKENS, "judge": judge_max_new_tokens}

    def _ask(self, kind: str, conversation: list) -> str:
        return self.chat.generate([conversation], self.max_new_tokens[kind])[0]

    def read_text(self, image) -> dict:
        return parse_text_answer(self._ask("text", single_image_conversation(self.prompts["text"], image)))

    def races(self, image) -> Optional[dict]:
        return parse_race_answer(self._ask("race", single_image_conversation(self.prompts["race"], image)))

    def judge(self, original, safe) -> dict:
        answer = self._ask("judge", judge_conversation(self.prompts["judge"], original, safe))
        return {"score": parse_anonymization_score(answer), "answer": answer[-300:]}

    def describe(self) -> dict:
        return {"prompts": {kind: PROMPT_FILES[kind] for kind in PROMPT_FILES}, "prompt_source": SOURCE,
                "judge_system": JUDGE_SYSTEM, "race_categories": list(RACE_CATEGORIES)}
