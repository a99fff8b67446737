"""The paper's face similarity model: InsightFace's antelopev2 pack, SCRFD detector + ArcFace recogniser.

Both are ONNX files run with onnxruntime (``scrfd_10g_bnkps.onnx`` or ``det_10g.onnx``, and
``glintr100.onnx``), loaded from a local folder or a hub repository that holds the pack. The
``insightface`` package is not needed: what its ``FaceAnalysis.get`` does is written out here step
by step (SCRFD's letterbox, box decoding and its own non-maximum suppression; the least-squares
similarity alignment onto ArcFace's 5-point template with scikit-image's ``SimilarityTransform``;
the recogniser's input normalisation, read from its graph as InsightFace reads it).

Channel order: InsightFace expects OpenCV's BGR arrays and swaps them to RGB for its networks. The
paper's evaluation hands it PIL's RGB arrays, so its networks see BGR. ``reference_channels=True``
(the paper protocol) reproduces that; ``False`` feeds the networks RGB, as InsightFace intends.
Licence: InsightFace's pretrained models are for non-commercial research use only; this package
ships none of them.
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
PAPER_DETECTION_SIZE = 512  # the paper prepares FaceAnalysis with det_size=(512, 512)


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


def network_channels(image: np.ndarray, reference_channels: bool) -> np.ndarray:
    """The array InsightFace's blob holds for ``image`` (RGB): RGB as intended, BGR as the paper's code feeds it."""
    return image[..., ::-1] if reference_channels else image


def letterbox(rgb: np.ndarray, size: int) -> tuple:
    """SCRFD's input: the image scaled to fit ``size`` x ``size`` (aspect kept), top-left, zero padding; and the scale."""
    height, width = rgb.shape[:2]
    if height / width > 1.0:
        new_height, new_width = size, int(size / (height / width))
    else:
        new_width, new_height = size, int(size * (height / width))
    scale = new_height / height
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[:new_height, :new_width] = cv2.resize(rgb, (new_width, new_height))
    return canvas, scale


def scrfd_blob(canvas: np.ndarray, reference_channels: bool) -> np.ndarray:
    """(pixel - 127.5) / 128, NCHW float32, as SCRFD's ``blobFromImage`` makes it."""
    pixels = network_channels(canvas, reference_channels).astype(np.float32)
    return ((pixels - 127.5) / 128.0).transpose(2, 0, 1)[None].copy()


def distance_to_boxes(centres: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """SCRFD's (left, top, right, bottom) distances from anchor centres -> [x0, y0, x1, y1]."""
    return np.stack([centres[:, 0] - distances[:, 0], centres[:, 1] - distances[:, 1],
                     centres[:, 0] + distances[:, 2], centres[:, 1] + distances[:, 3]], axis=-1)


def suppress(boxes: np.ndarray, scores: np.ndarray, threshold: float = 0.4) -> list:
    """InsightFace's greedy non-maximum suppression (pixel-inclusive areas, ``+ 1``), best score first."""
    x0, y0, x1, y1 = boxes.T
    areas = (x1 - x0 + 1) * (y1 - y0 + 1)
    order, keep = [int(i) for i in np.argsort(scores)[::-1]], []
    while order:
        best, rest = order[0], np.asarray(order[1:], dtype=int)
        keep.append(int(best))
        width = np.maximum(0.0, np.minimum(x1[best], x1[rest]) - np.maximum(x0[best], x0[rest]) + 1)
        height = np.maximum(0.0, np.minimum(y1[best], y1[rest]) - np.maximum(y0[best], y0[rest]) + 1)
        overlap = width * height / (areas[best] + areas[rest] - width * height)
        order = [int(i) for i in rest[overlap <= threshold]]
    return keep


def scrfd_layout(num_outputs: int) -> tuple:
    """(strides, anchors per position) of a SCRFD export with landmarks, from its number of outputs."""
    if num_outputs == 9:
        return (8, 16, 32), 2
    if num_outputs == 15:
        return (8, 16, 32, 64, 128), 1
    raise ValueError(f"a SCRFD detector with landmarks has 9 or 15 outputs, this one has {num_outputs}")


def decode_scrfd(outputs: list, input_size: tuple, threshold: float = 0.5, nms: float = 0.4,
                 strides=(8, 16, 32), anchors: int = 2) -> list:
    """SCRFD's raw outputs (scores, boxes, landmarks per stride) -> detections in input pixels, best first."""
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
        if len(centres) != len(scores):
            raise ValueError(f"SCRFD stride {stride} gave {len(scores)} scores for {len(centres)} anchors at {input_size}")
        keep = np.where(scores >= threshold)[0]
        scores_all.append(scores[keep])
        boxes_all.append(distance_to_boxes(centres[keep], distances[keep]))
        points_all.append((np.tile(centres[keep], 5) + points[keep]).reshape(-1, 5, 2))
    scores, boxes, points = np.concatenate(scores_all), np.concatenate(boxes_all), np.concatenate(points_all)
    if not len(scores):
        return []
    return [Detection(tuple(float(v) for v in boxes[i]), float(scores[i]), points[i]) for i in suppress(boxes, scores, nms)]


def similarity_matrix(landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """The 2x3 least-squares similarity (Umeyama, scikit-image) taking the 5 landmarks onto ArcFace's template."""
    from skimage.transform import SimilarityTransform

    source, target = np.asarray(landmarks, np.float64), ARCFACE_TEMPLATE.astype(np.float64) * (size / 112.0)
    if hasattr(SimilarityTransform, "from_estimate"):
        transform = SimilarityTransform.from_estimate(source, target)
    else:  # scikit-image before 0.26
        transform = SimilarityTransform()
        transform.estimate(source, target)
    return np.asarray(transform.params[:2], np.float64)


def align(rgb: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """The ``size`` x ``size`` ArcFace crop (InsightFace's ``norm_crop``)."""
    return cv2.warpAffine(rgb, similarity_matrix(landmarks, size), (size, size), borderValue=0.0)


def recogniser_normalisation(model_file: str) -> tuple:
    """(mean, std) of the recogniser's input: (0, 1) when its graph starts by normalising, else (127.5, 127.5)."""
    import onnx

    nodes = onnx.load(model_file, load_external_data=False).graph.node[:8]
    subtracts = any(n.name.startswith("Sub") or n.name.startswith("_minus") for n in nodes)
    multiplies = any(n.name.startswith("Mul") or n.name.startswith("_mul") for n in nodes)
    return (0.0, 1.0) if subtracts and multiplies else (127.5, 127.5)


class AntelopeFaces:
    """SCRFD faces of an RGB image, each with its ArcFace embedding (512-D, compared by cosine)."""

    name = "antelopev2"

    def __init__(self, pack: str = "antelopev2", revision=None, threshold: float = 0.5,
                 input_size: int = PAPER_DETECTION_SIZE, reference_channels: bool = True, local_files_only: bool = False):
        folder = resolve_pack(pack, revision, local_files_only)
        self.detector_file, self.recogniser_file = _find(folder, DETECTOR_FILES), _find(folder, RECOGNISER_FILES)
        self.detector, self.recogniser = _session(self.detector_file), _session(self.recogniser_file)
        self.strides, self.anchors = scrfd_layout(len(self.detector.get_outputs()))
        self.mean, self.std = recogniser_normalisation(self.recogniser_file)
        self.pack, self.revision, self.threshold, self.input_size = pack, revision, threshold, input_size
        self.reference_channels = reference_channels
        logger.warning("antelopev2 face models in use. %s.", LICENCE)

    def detect(self, rgb: np.ndarray) -> list:
        canvas, scale = letterbox(rgb, self.input_size)
        blob = scrfd_blob(canvas, self.reference_channels)
        outputs = self.detector.run(None, {self.detector.get_inputs()[0].name: blob})
        found = decode_scrfd(outputs, (self.input_size, self.input_size), self.threshold, strides=self.strides,
                             anchors=self.anchors)
        return [Detection(tuple(v / scale for v in d.box), d.score, d.landmarks / scale) for d in found]

    def embed(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        crop = network_channels(align(rgb, landmarks), self.reference_channels).astype(np.float32)
        blob = ((crop - self.mean) / self.std).transpose(2, 0, 1)[None].copy()
        return np.asarray(self.recogniser.run(None, {self.recogniser.get_inputs()[0].name: blob})[0]).reshape(-1)

    def describe(self) -> dict:
        return {"id": f"{self.pack} (SCRFD {os.path.basename(self.detector_file)} + ArcFace "
                      f"{os.path.basename(self.recogniser_file)})", "revision": self.revision, "licence": LICENCE,
                "scale": "ArcFace cosine similarity", "detection_size": self.input_size,
                "alignment": "least-squares similarity onto the 5-point ArcFace template (scikit-image)",
                "channels": "BGR, as the paper's code feeds InsightFace" if self.reference_channels else "RGB"}


class AntelopeAnalyzer:
    """``FaceAnalyzer``'s interface over antelopev2: faces with embeddings, and the embedder's rules."""

    def __init__(self, pack: str, revision=None, face_threshold: float = 0.5, cosine_threshold: float = 0.4,
                 reference_channels: bool = True, local_files_only: bool = False):
        self.model = AntelopeFaces(pack, revision, face_threshold, reference_channels=reference_channels,
                                   local_files_only=local_files_only)
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
