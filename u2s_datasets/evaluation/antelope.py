"""The paper's face similarity model: InsightFace's antelopev2 pack, SCRFD detector + ArcFace recogniser.

Both are ONNX files run with onnxruntime (``scrfd_10g_bnkps.onnx`` or ``det_10g.onnx``, and
``glintr100.onnx``), loaded from a local folder or a hub repository that holds the pack. The
``insightface`` package is not needed: SCRFD's box decoding and ArcFace's 5-point alignment are
written out here as InsightFace publishes them. Licence: InsightFace's pretrained models are for
non-commercial research use only; this package ships none of them.
"""

import glob
import logging
import os
from dataclasses import dataclass

import cv2
import numpy as np

logger = logging.getLogger(__name__)

LICENCE = "InsightFace pretrained models: non-commercial research use only"
DETECTOR_FILES = ("scrfd_10g_bnkps.onnx", "det_10g.onnx")
RECOGNISER_FILES = ("glintr100.onnx",)
# Where ArcFace expects the eyes, nose tip and mouth corners in its 112x112 crop.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float32
)


@dataclass
class Detection:
    box: tuple
    score: float
    landmarks: np.ndarray  # 5x2


def resolve_pack(source: str, revision=None, local_files_only: bool = False) -> str:
    """A folder holding the pack: ``source`` itself, or a hub repository downloaded (ONNX files only)."""
    if os.path.isdir(source):
        return source
    from huggingface_hub import snapshot_download

    return snapshot_download(source, revision=revision, allow_patterns=["*.onnx", "**/*.onnx"], local_files_only=local_files_only)


def _find(folder: str, names: tuple) -> str:
    for name in names:
        found = glob.glob(os.path.join(folder, "**", name), recursive=True)
        if found:
            return sorted(found)[0]
    raise FileNotFoundError(f"none of {', '.join(names)} in {folder!r} (the antelopev2 pack)")


def _session(path: str):
    import onnxruntime

    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in onnxruntime.get_available_providers()]
    return onnxruntime.InferenceSession(path, providers=providers)


def distance_to_boxes(centres: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """SCRFD's (left, top, right, bottom) distances from anchor centres -> [x0, y0, x1, y1]."""
    return np.stack([centres[:, 0] - distances[:, 0], centres[:, 1] - distances[:, 1],
                     centres[:, 0] + distances[:, 2], centres[:, 1] + distances[:, 3]], axis=-1)


def decode_scrfd(outputs: list, input_size: tuple, threshold: float = 0.5, nms: float = 0.4,
                 strides=(8, 16, 32), anchors: int = 2) -> list:
    """SCRFD's raw outputs (scores, boxes, landmarks per stride) -> detections in input pixels."""
    height, width = input_size
    levels = len(strides)
    scores_all, boxes_all, points_all = [], [], []
    for level, stride in enumerate(strides):
        scores = np.asarray(outputs[level]).reshape(-1)
        distances = np.asarray(outputs[level + levels]).reshape(-1, 4) * stride
        points = np.asarray(outputs[level + 2 * levels]).reshape(-1, 10) * stride
        grid_y, grid_x = np.mgrid[: height // stride, : width // stride]
        centres = (np.stack([grid_x, grid_y], axis=-1).reshape(-1, 2) * stride).astype(np.float32)
        centres = np.repeat(centres, anchors, axis=0)
        keep = np.where(scores >= threshold)[0]
        scores_all.append(scores[keep])
        boxes_all.append(distance_to_boxes(centres[keep], distances[keep]))
        points_all.append((np.tile(centres[keep], 5) + points[keep]).reshape(-1, 5, 2))
    scores, boxes, points = np.concatenate(scores_all), np.concatenate(boxes_all), np.concatenate(points_all)
    if not len(scores):
        return []
    order = cv2.dnn.NMSBoxes([[float(x0), float(y0), float(x1 - x0), float(y1 - y0)] for x0, y0, x1, y1 in boxes],
                             scores.astype(float).tolist(), threshold, nms)
    order = sorted(np.asarray(order).reshape(-1).tolist(), key=lambda i: -scores[i])
    return [Detection(tuple(float(v) for v in boxes[i]), float(scores[i]), points[i]) for i in order]


def align(rgb: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """The 112x112 ArcFace crop: a similarity transform taking the 5 landmarks onto ArcFace's template."""
    matrix, _ = cv2.estimateAffinePartial2D(np.asarray(landmarks, np.float32), ARCFACE_TEMPLATE * (size / 112.0),
                                            method=cv2.LMEDS)
    return cv2.warpAffine(rgb, matrix, (size, size), borderValue=0.0)


class AntelopeFaces:
    """SCRFD faces of an RGB image, each with its ArcFace embedding (512-D, compared by cosine)."""

    name = "antelopev2"

    def __init__(self, pack: str = "antelopev2", revision=None, threshold: float = 0.5, input_size: int = 640,
                 local_files_only: bool = False):
        folder = resolve_pack(pack, revision, local_files_only)
        self.detector_file, self.recogniser_file = _find(folder, DETECTOR_FILES), _find(folder, RECOGNISER_FILES)
        self.detector, self.recogniser = _session(self.detector_file), _session(self.recogniser_file)
        self.pack, self.revision, self.threshold, self.input_size = pack, revision, threshold, input_size
        logger.warning("antelopev2 face models in use. %s.", LICENCE)

    def detect(self, rgb: np.ndarray) -> list:
        """SCRFD at ``input_size``: the image scaled to fit, padded on the right and bottom."""
        height, width = rgb.shape[:2]
        scale = min(self.input_size / height, self.input_size / width)
        resized = cv2.resize(rgb, (max(1, int(width * scale)), max(1, int(height * scale))))
        canvas = np.zeros((self.input_size, self.input_size, 3), np.float32)
        canvas[: resized.shape[0], : resized.shape[1]] = resized
        blob = ((canvas - 127.5) / 128.0).transpose(2, 0, 1)[None].astype(np.float32)
        outputs = self.detector.run(None, {self.detector.get_inputs()[0].name: blob})
        found = decode_scrfd(outputs, (self.input_size, self.input_size), self.threshold)
        return [Detection(tuple(v / scale for v in d.box), d.score, d.landmarks / scale) for d in found]

    def embed(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        crop = align(rgb, landmarks).astype(np.float32)
        blob = ((crop - 127.5) / 127.5).transpose(2, 0, 1)[None]
        return np.asarray(self.recogniser.run(None, {self.recogniser.get_inputs()[0].name: blob})[0]).reshape(-1)

    def describe(self) -> dict:
        return {"id": f"{self.pack} (SCRFD {os.path.basename(self.detector_file)} + ArcFace "
                      f"{os.path.basename(self.recogniser_file)})", "revision": self.revision, "licence": LICENCE,
                "scale": "ArcFace cosine similarity"}


class AntelopeAnalyzer:
    """``FaceAnalyzer``'s interface over antelopev2: faces with embeddings, and the embedder's rules."""

    def __init__(self, pack: str, revision=None, face_threshold: float = 0.5, cosine_threshold: float = 0.4,
                 local_files_only: bool = False):
        self.model = AntelopeFaces(pack, revision, face_threshold, local_files_only=local_files_only)
        self.embedder = self
        self.cosine_threshold = cosine_threshold

    def __call__(self, rgb: np.ndarray) -> list:
        from .faces import Face

        return [Face(d.box, d.score, self.model.embed(rgb, d.landmarks)) for d in self.model.detect(rgb)]

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        from .faces import cosine

        return cosine(a, b)

    def same_identity(self, a: np.ndarray, b: np.ndarray) -> bool:
        return self.similarity(a, b) >= self.cosine_threshold

    def describe(self) -> dict:
        return {**self.model.describe(), "verification": f"cosine >= {self.cosine_threshold}"}
