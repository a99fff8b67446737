"""Apparent demographic labels of an image (a chat VLM or zero-shot CLIP) and their corpus figures.

This project's figure (``u2s/privacy`` with ``demographics=``): normalised entropy over the full label
set and agreement with the original. The labels are a model's impression, never facts about a person.
"""

import math
import re
from collections import Counter
from typing import Optional

import numpy as np
from PIL import Image

# Apparent, visual impressions only; every set ends with a label for "cannot tell".
DEMOGRAPHIC_ATTRIBUTES = {
    "apparent_age": ["child", "teenager", "young adult", "middle-aged adult", "older adult", "unclear"],
    "apparent_gender": ["woman", "man", "unclear"],
    "apparent_skin_tone": ["light", "medium", "dark", "unclear"],
}

DEMOGRAPHIC_QUESTION = (
    "Look at the most prominent person in this picture. Judging only from what is visible, "
    "which of these best describes their {attribute}? Options: {options}. "
    "If no person is visible or it cannot be judged, answer 'unclear'. Answer with one option only."
)


def parse_label(answer: str, labels: list) -> Optional[str]:
    """The label named in a free-text answer (longest label first, so 'young adult' beats 'adult')."""
    text = answer.lower()
    for label in sorted(labels, key=len, reverse=True):
        if re.search(r"\b" + re.escape(label.lower()) + r"\b", text):
            return label
    return None


class VLMDemographicLabeler:
    """Apparent demographic labels from a chat VLM, one question per attribute."""

    def __init__(self, chat, attributes: dict = None):
        self.chat, self.attributes = chat, attributes or DEMOGRAPHIC_ATTRIBUTES

    def __call__(self, image: Image.Image) -> dict:
        labels = {}
        for attribute, options in self.attributes.items():
            question = DEMOGRAPHIC_QUESTION.format(attribute=attribute.replace("_", " "), options=", ".join(options))
            labels[attribute] = parse_label(self.chat.ask(image, question), options)
        return labels

    def describe(self) -> dict:
        return {"labeler": "vlm", **self.chat.describe()}


class ClipDemographicLabeler:
    """Zero-shot apparent labels from CLIP: the label whose phrase matches the image best."""

    def __init__(self, encoder, attributes: dict = None):
        self.encoder, self.attributes = encoder, attributes or DEMOGRAPHIC_ATTRIBUTES

    def __call__(self, image: Image.Image) -> dict:
        image_embedding = self.encoder.image_embeddings([image])[0]
        labels = {}
        for attribute, options in self.attributes.items():
            phrases = [_clip_phrase(attribute, option) for option in options]
            scores = self.encoder.text_embeddings(phrases) @ image_embedding
            labels[attribute] = options[int(scores.argmax())]
        return labels

    def describe(self) -> dict:
        return {"labeler": "clip-zero-shot", **self.encoder.describe()}


def _clip_phrase(attribute: str, option: str) -> str:
    if option == "unclear":
        return "a photo with no clearly visible person"
    if attribute == "apparent_skin_tone":
        return f"a photo of a person with {option} skin"
    return f"a photo of a {option}"


def normalised_entropy(labels: list, label_set: list) -> Optional[float]:
    """Shannon entropy of the label distribution over the FULL label set, divided by log(K)."""
    labels = [label for label in labels if label is not None]
    if not labels or len(label_set) < 2:
        return None
    counts = Counter(labels)
    p = np.array([counts.get(label, 0) for label in label_set], dtype=np.float64) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / math.log(len(label_set)))


def demographic_figures(original_labels: list, safe_labels: list, attributes: dict) -> dict:
    figures = {}
    for attribute, label_set in attributes.items():
        safe = [labels.get(attribute) for labels in safe_labels]
        pairs = [(o.get(attribute), s.get(attribute)) for o, s in zip(original_labels, safe_labels)]
        pairs = [(o, s) for o, s in pairs if o is not None and s is not None]
        figures[attribute] = {
            "normalised_entropy": normalised_entropy(safe, label_set),
            "original_normalised_entropy": normalised_entropy([o.get(attribute) for o in original_labels], label_set),
            "agreement_rate": (sum(o == s for o, s in pairs) / len(pairs)) if pairs else None,
            "unparsed": sum(label is None for label in safe),
        }
    return figures
