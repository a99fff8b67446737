"""After editing: look again, in each edited region of the output, for what made the row private.

A classical editor (blur, pixelate, fill, inpaint) must leave no face there. A generative
editor draws new faces on purpose, so for it a leak is the same person coming back (dlib
re-identification). For text, with either kind, a leak is the same words read again (fuzzy
match against what was read before): smudges of a blur can read as "1.2", which names nobody.
"""

import logging

import numpy as np

from .edit.masks import grow_box

logger = logging.getLogger(__name__)

CLASSICAL_EDITORS = ("blur", "pixelate", "fill", "inpaint")
SAME_TEXT_RATIO = 80  # rapidfuzz partial_ratio at which two strings read as the same words
MIN_TEXT_CHARS = 3  # letters and digits a line needs to identify anything
MIN_CROP_SIDE = 160  # pixels: the shorter side a crop is looked at with
CONTEXT = 0.5  # the crop searched around a region, as a fraction of its size: detectors need some surroundings


class EditVerifier:
    """``leaks(original_rgb, safe_rgb, regions)`` -> what is still recognisable, e.g. ``["face at (12, 30)"]``."""

    def __init__(self, config):
        from .inspect.detectors import CenterFaceDetector, TextDetector

        settings = config.inspect
        self.generative = config.edit.editor not in CLASSICAL_EDITORS
        # Single-scale detectors on crops brought to a readable size: the region is known, so
        # the inspector's search over scales, tiles and angles would only repeat itself.
        self.faces = CenterFaceDetector(settings.face_threshold, settings.detector_max_side)
        self.text = TextDetector(settings.text_threshold, settings.detector_max_side)
        self._embedder = None

    def leaks(self, original: np.ndarray, safe: np.ndarray, regions: list) -> list:
        height, width = safe.shape[:2]
        areas = [grow_box(r.box, CONTEXT, (width, height)) for r in regions] or [(0, 0, width, height)]
        found = []
        for x0, y0, x1, y1 in areas:
            if x1 - x0 < 4 or y1 - y0 < 4:
                continue
            before, after = _readable(original[y0:y1, x0:x1]), _readable(safe[y0:y1, x0:x1])
            found += [f"face near ({x0}, {y0})" for _ in self._faces_left(before, after)]
            known = [r.label for r in regions if r.category == "text_symbols" and r.label and _inside(r.box, (x0, y0, x1, y1))]
            found += [f"text {t!r}" for t in self._text_left(before, after, known)]
        return found

    def _faces_left(self, before, after) -> list:
        faces = self.faces(after)
        if not faces or not self.generative:
            return faces
        # A generative editor replaces faces: only the same person coming back is a leak.
        originals = [self._embed(before, f.box) for f in self.faces(before)]
        return [f for f in faces if any(self._same_person(self._embed(after, f.box), o) for o in originals)]

    def _text_left(self, before, after, known) -> list:
        lines = [t.text for t in self.text(after) if _chars(t.text) >= MIN_TEXT_CHARS]
        if not lines:
            return []
        from rapidfuzz import fuzz

        originals = known or [t.text for t in self.text(before)]  # what the inspector read there, else read it now
        return [line for line in lines if any(fuzz.partial_ratio(_norm(line), _norm(o)) >= SAME_TEXT_RATIO for o in originals)]

    def _embed(self, rgb, box):
        if self._embedder is None:
            from .evaluation.faces import DlibFaceEmbedder

            self._embedder = DlibFaceEmbedder()
        return self._embedder.embed(np.ascontiguousarray(rgb), box)

    def _same_person(self, a, b) -> bool:
        return self._embedder.same_identity(a, b)


def _readable(crop: np.ndarray) -> np.ndarray:
    """``crop`` scaled up so its shorter side is at least ``MIN_CROP_SIDE``: small faces and lines are found at that size."""
    import cv2

    scale = MIN_CROP_SIDE / min(crop.shape[:2])
    if scale <= 1:
        return np.ascontiguousarray(crop)
    return cv2.resize(crop, (round(crop.shape[1] * scale), round(crop.shape[0] * scale)), interpolation=cv2.INTER_CUBIC)


def _inside(box, area) -> bool:
    x0, y0, x1, y1 = box
    return x0 >= area[0] and y0 >= area[1] and x1 <= area[2] and y1 <= area[3]


def _chars(text: str) -> int:
    return sum(c.isalnum() for c in text)


def _norm(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())
