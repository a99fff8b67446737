"""After editing: look again, in each edited region of the output, for what made the row private.

A classical editor (blur, pixelate, fill, inpaint) must leave no face there. A generative
editor draws new faces on purpose, so for it a leak is the same person coming back (dlib
re-identification). For text, with either kind, a leak is the same words read again (fuzzy
match against what was read before): smudges of a blur can read as "1.2", which names nobody.
"""

import logging

import numpy as np
from PIL import Image

from ..edit.masks import grow_box
from ..taxonomy import parent_category

logger = logging.getLogger(__name__)

CLASSICAL_EDITORS = ("blur", "pixelate", "fill", "inpaint")
SAME_TEXT_RATIO = 80  # rapidfuzz partial_ratio at which two strings read as the same words
MIN_TEXT_CHARS = 3  # letters and digits a line needs to identify anything
MIN_CROP_SIDE = 160  # pixels: the shorter side a crop is looked at with
MAX_MERGED_SIDE = 1024  # pixels: merged areas stay small enough to be searched at full resolution
CONTEXT = 0.5  # the crop searched around a region, as a fraction of its size: detectors need some surroundings


class EditVerifier:
    """``leaks(original_rgb, safe_rgb, regions)`` -> what is still recognisable, e.g. ``["face at (12, 30)"]``."""

    def __init__(self, config):
        from .detectors import CenterFaceDetector, TextDetector

        settings = config.inspect
        self.generative = config.edit.editor not in CLASSICAL_EDITORS
        # Single-scale detectors on crops brought to a readable size: the region is known, so
        # the inspector's search over scales, tiles and angles would only repeat itself.
        self.faces = CenterFaceDetector(settings.face_threshold, settings.detector_max_side)
        self.text = TextDetector(settings.text_threshold, settings.detector_max_side)
        self._embedder = None

    def leaks(self, original, safe, regions: list) -> list:
        width, height = safe.size if isinstance(safe, Image.Image) else safe.shape[1::-1]
        found = []
        for look_for in ("faces", "text"):
            for x0, y0, x1, y1 in _areas(regions, look_for, (width, height)):
                if x1 - x0 < 4 or y1 - y0 < 4:
                    continue
                before, after = (_readable(_crop(image, (x0, y0, x1, y1))) for image in (original, safe))
                if look_for == "faces":
                    found += [f"face near ({x0}, {y0})" for _ in self._faces_left(before, after)]
                    continue
                known = [r.label for r in regions if parent_category(r.category) == "text_symbols" and r.label
                         and _inside(r.box, (x0, y0, x1, y1))]
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
            from ..evaluation.faces import DlibFaceEmbedder

            self._embedder = DlibFaceEmbedder()
        return self._embedder.embed(np.ascontiguousarray(rgb), box)

    def _same_person(self, a, b) -> bool:
        return self._embedder.same_identity(a, b)


# What each region was found for is what must be gone from it; other categories (a VLM's
# documents, tattoos, screens ...) are searched for both.
_ONLY = {"people_faces": "faces", "text_symbols": "text"}


def _areas(regions: list, look_for: str, size: tuple) -> list:
    """The boxes to search for ``look_for``: the regions grown by ``CONTEXT``, overlapping ones merged
    up to ``MAX_MERGED_SIDE`` (one look at a page, not one per line); the whole image when there are none."""
    if not regions:
        return [(0, 0, *size)]
    boxes = [list(grow_box(r.box, CONTEXT, size)) for r in regions if _ONLY.get(parent_category(r.category), look_for) == look_for]
    merged = True
    while merged:
        merged = False
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                union = min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])
                small = max(union[2] - union[0], union[3] - union[1]) <= MAX_MERGED_SIDE
                if small and a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    a[:] = union
                    boxes.remove(b)
                    merged = True
                    break
            if merged:
                break
    return [tuple(b) for b in boxes]


def _crop(image, box) -> np.ndarray:
    """``box`` of ``image`` (a PIL image in any mode, or an RGB array) as 8-bit RGB, without copying the rest."""
    from ..imaging.modes import to_rgb

    if isinstance(image, Image.Image):
        return np.asarray(to_rgb(image.crop(box)))
    x0, y0, x1, y1 = box
    return image[y0:y1, x0:x1]


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
