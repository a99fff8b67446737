"""Independent readers that judge whether drawn strings and pasted faces survived anonymisation.

Strings: RapidOCR with its default settings (its own detector, angle classifier and
recogniser, none of the local preset's choices), matched with rapidfuzz. Faces: CenterFace
at a low threshold on a crop around each pasted face, turned upright, then dlib's identity
embedding compared with the original face (same person below distance 0.6).
"""

import functools
import re

import cv2
import numpy as np

READABLE_RATIO = 80  # rapidfuzz score (0-100) at which the reader's text counts as the string
JUDGE_FACE_THRESHOLD = 0.2


def _normal(text: str) -> str:
    return re.sub(r"[^0-9A-Z]", "", text.upper())


def readable(target: str, read: list) -> bool:
    """Whether any stretch of what the reader read matches ``target`` with a score >= READABLE_RATIO.

    The whole read text is searched (partial_ratio, a window of the target's length); a
    read text shorter than the target is compared whole, so a fragment never counts.
    """
    from rapidfuzz import fuzz

    wanted, seen = _normal(target), _normal(" ".join(read))
    if not wanted or not seen:
        return False
    score = fuzz.partial_ratio(wanted, seen) if len(seen) >= len(wanted) else fuzz.ratio(wanted, seen)
    return score >= READABLE_RATIO


class StringReader:
    """RapidOCR exactly as it ships (default config: det, cls and rec)."""

    def __init__(self):
        import logging

        from rapidocr_onnxruntime import RapidOCR

        self.engine = RapidOCR()
        logging.getLogger("RapidOCR").setLevel(logging.WARNING)

    def read(self, rgb: np.ndarray) -> list:
        result, _ = self.engine(np.ascontiguousarray(rgb[:, :, ::-1]))
        return [line[1] for line in result or []]

    def readable_strings(self, rgb: np.ndarray, strings: list) -> list:
        texts = self.read(rgb)
        return [s for s in strings if readable(s.text, texts)]


class FaceJudge:
    """Re-identifies each pasted face where it was pasted: CenterFace (low threshold) + dlib."""

    def __init__(self):
        from ..evaluation.faces import DlibFaceEmbedder
        from ..inspect.detectors import CenterFaceDetector

        self.detector = CenterFaceDetector(threshold=JUDGE_FACE_THRESHOLD, max_side=4096)
        self.embedder = DlibFaceEmbedder()

    @functools.lru_cache(maxsize=None)
    def original(self, identity: str) -> np.ndarray:
        from ..samples import sample_images

        rgb = np.ascontiguousarray(np.asarray(sample_images()[identity].convert("RGB")))
        face = self.detector(rgb)[0]
        return self.embedder.embed(rgb, face.box)

    def reidentified(self, rgb: np.ndarray, face) -> bool:
        """Crop 3 face widths around the paste, turn it upright, scale the face to ~100 px, look and compare."""
        cx, cy = face.center
        half = 1.5 * face.width
        x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
        x1, y1 = int(min(rgb.shape[1], cx + half)), int(min(rgb.shape[0], cy + half))
        crop = rgb[y0:y1, x0:x1]
        zoom = 100.0 / face.width
        crop = cv2.resize(crop, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC if zoom > 1 else cv2.INTER_AREA)
        h, w = crop.shape[:2]
        upright = cv2.warpAffine(crop, cv2.getRotationMatrix2D((w / 2, h / 2), -face.angle, 1.0), (w, h), borderMode=cv2.BORDER_REFLECT)
        upright = np.ascontiguousarray(upright)
        original = self.original(face.identity)
        for found in self.detector(upright):
            if self.embedder.same_identity(self.embedder.embed(upright, found.box), original):
                return True
        return False
