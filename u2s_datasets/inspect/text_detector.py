"""PP-OCR text detection confirmed by recognition, for lines at any angle, size and polarity."""

import cv2
import numpy as np

from .pyramid import Detection, pyramid_scales, resized, scaled_tiles

SURE_ORIENTATION = 0.9  # angle classifier confidence above which only its choice is read
SURE_READING = 0.95  # a reading this confident settles an unsure orientation (upside-down text reads at 0.5-0.85)
BETTER_READING = 0.1  # the half turn replaces the classifier's pick when it reads this much more confidently
TALL = 1.5  # a rectified line this much taller than wide is vertical text: read it turned by 90 degrees
WINDOW = 16  # a long line is read this many heights at a time (about 20 characters)
MAX_UPSCALE = 1.5  # 10 px text is found at 15 px; more multiplies the work (a 190 px strip would grow 4x)
DETECTION_BATCH_PIXELS = 4_000_000  # views held for detection at once
# Pixels of one detection run. On the CPU a run's activations take about 250 bytes a pixel (a
# 2 Mpx run held 510 MB at the peak of a batch of 88 Mpx photos) and stacking views gains nothing.
CPU_RUN_PIXELS, GPU_RUN_PIXELS = 1_000_000, 2_000_000


class TextDetector:
    """PP-OCR text detection, confirmed by recognition.

    The detector alone fires on fur, foliage and foam; a line counts as text when the
    recogniser reads at least ``min_chars`` characters from it with confidence ``threshold``.
    Each found quad is rectified by a perspective crop; vertical crops are turned by 90
    degrees, and PP-OCR's angle classifier decides whether to read them upside down.

    Args:
        max_side: the whole image is seen once scaled down to this longest side.
        min_side: images whose shorter side is below this are scaled up towards it first (by
            at most ``MAX_UPSCALE``), so that 10 px text reaches a size PP-OCR finds (0: no upscaling).
        tile, overlap: larger images are also seen at native resolution in tiles of this
            size sharing ``overlap`` pixels (0: the whole image at ``max_side`` only).
        inverse: a second detection pass on the inverted image (light text on dark).
        orientations: read each crop in its two likely orientations (else as found).
        threads: threads of each onnxruntime call (0: onnxruntime's default, every core).
        device: ``"cpu"`` (onnxruntime) or a CUDA device (torch).
        precision: ``"fp32"``, ``"int8"`` (the detector, on the CPU) or ``"auto"`` (int8 on the CPU, fp32 on a GPU).
        backend: force ``"onnxruntime"`` or ``"torch"`` (default: by device).
    """

    def __init__(self, threshold: float = 0.5, max_side: int = 1024, min_chars: int = 2, box_threshold: float = 0.3,
                 min_side: int = 0, tile: int = 0, overlap: int = 128, inverse: bool = False, orientations: bool = False,
                 threads: int = 0, device: str = "cpu", precision: str = "fp32", backend: str = None):
        from .ppocr import ppocr_engine

        # The images handed to the detection network are sized here (never above 2000 px,
        # so rapidocr's own "max" limit leaves them as they are).
        self.engine = ppocr_engine(box_threshold, threads, device, precision, backend)
        self.threshold, self.min_chars, self.max_side, self.min_side = threshold, min_chars, min(max_side, 2000), min_side
        self.tile, self.overlap, self.inverse, self.orientations = min(tile, 2000), overlap, inverse, orientations
        self.run_pixels = CPU_RUN_PIXELS if device == "cpu" else GPU_RUN_PIXELS

    def __call__(self, rgb: np.ndarray) -> list:
        return self.detect([rgb])[0]

    def detect(self, images: list) -> list:
        """Lines read in each image (an RGB array or a ``RegionReader``), in reading order; the views of
        all images share detection runs and their lines share recognition runs."""

        quads = self._find_quads(images)
        # Reading order (top to bottom, left to right), as the captions quote the lines.
        quads = [list(self.engine.sorted_boxes(np.stack(_distinct(q)))) if q else [] for q in quads]
        readings = self._read([(rgb, quad) for rgb, qs in zip(images, quads) for quad in qs])
        out = []
        for qs in quads:
            detections = []
            for quad, (text, score) in zip(qs, readings[:len(qs)]):
                text = text.strip()
                if self._reads(text, score):
                    x0, y0 = quad.min(axis=0)
                    x1, y1 = quad.max(axis=0)
                    detections.append(Detection(box=(float(x0), float(y0), float(x1), float(y1)), score=float(score), text=text))
            readings = readings[len(qs):]
            out.append(detections)
        return out

    def _views(self, rgb):
        """(view, scale, origin) the detector looks at: the whole image, scaled to ``max_side`` (or up to
        ``min_side``), and larger images at native resolution in tiles."""

        height, width = rgb.shape[:2]
        top = min(1.0, self.max_side / max(height, width))
        if self.min_side and min(height, width) * top < self.min_side:
            top = min(self.min_side / min(height, width), 2000 / max(height, width), MAX_UPSCALE)
        yield resized(rgb, top), top, (0, 0)
        if self.tile and top < 1.0:
            for scale in pyramid_scales(rgb.shape, self.max_side, 1.0)[1:]:
                for crop, origin in scaled_tiles(rgb, scale, self.tile, self.overlap):
                    yield crop, scale, origin

    def _find_quads(self, images: list) -> list:
        from .ppocr import find_quads

        quads = [[] for _ in images]
        places, views, pixels = [], [], 0

        def run():
            for (owner, scale, origin), found in zip(places, find_quads(self.engine, views, self.run_pixels)):
                quads[owner].extend((q + origin) / scale for q in found)
            places.clear(), views.clear()

        # PP-OCR reads BGR: each view handed to it is turned to BGR on its own, never the whole image;
        # views are run a few megapixels at a time (a large photo's tiles are never all held at once).
        for i, rgb in enumerate(images):
            for view, scale, origin in self._views(rgb):
                bgr = np.ascontiguousarray(view[:, :, ::-1])
                for inverted in (False, True) if self.inverse else (False,):
                    places.append((i, scale, np.asarray(origin, dtype=np.float32)))
                    views.append(255 - bgr if inverted else bgr)
                    pixels += bgr.shape[0] * bgr.shape[1]
                if pixels >= DETECTION_BATCH_PIXELS:
                    run()
                    pixels = 0
        run()
        return quads

    def _read(self, crops: list) -> list:
        """(text, score) per (rgb, quad): the best reading over the orientations tried.

        Tall crops are turned by 90 degrees first. With ``orientations`` the angle classifier
        picks between that view and its half turn; when it is unsure and its pick does not read
        as text with ``SURE_READING`` confidence, the half turn is read too, and kept if it reads
        clearly better (``BETTER_READING``: near ties stay with the classifier, whatever the backend). Long lines are read a window at a time (``WINDOW``
        heights wide), stopping at the first window that reads as text: the recogniser's cost
        grows with the width, and one window decides.
        """
        if not crops:
            return []
        lying = [_lying(_rectified(rgb, quad)) for rgb, quad in crops]
        picked, others = list(lying), {}
        if self.orientations:
            _, angles, _ = self.engine.text_cls(lying)
            for i, (label, confidence) in enumerate(angles):
                if label == "180":
                    picked[i] = np.rot90(lying[i], 2)
                if confidence < SURE_ORIENTATION:
                    others[i] = np.rot90(picked[i], 2)
        best = self._read_windows(picked)
        second = [i for i in others if not (self._reads(*best[i]) and best[i][1] >= SURE_READING)]
        for i, reading in zip(second, self._read_windows([others[i] for i in second])):
            if self._better(reading, best[i]):
                best[i] = reading
        return best

    def _read_windows(self, views: list) -> list:
        windows = [_windows(view) for view in views]
        best = [("", 0.0)] * len(views)
        for k in range(max((len(w) for w in windows), default=0)):
            todo = [j for j, w in enumerate(windows) if k < len(w) and not self._reads(*best[j])]
            if not todo:
                break
            readings, _ = self.engine.text_rec([windows[j][k] for j in todo])
            for j, (text, score) in zip(todo, readings):
                if score > best[j][1] or (k and self._reads(text, score)):
                    best[j] = (text, float(score))
        return best

    def _better(self, turned: tuple, picked: tuple) -> bool:
        turned_reads, picked_reads = self._reads(*turned), self._reads(*picked)
        if turned_reads != picked_reads:
            return turned_reads
        return turned[1] > picked[1] + (BETTER_READING if picked_reads else 0.0)

    def _reads(self, text: str, score: float) -> bool:
        return score >= self.threshold and len(text.replace(" ", "")) >= self.min_chars


def _windows(crop: np.ndarray) -> list:
    """``crop`` (a lying line) as windows ``WINDOW`` heights wide sharing 2 heights, from its start."""
    height, width = crop.shape[:2]
    size = WINDOW * height
    if width <= size:
        return [crop]
    step = size - 2 * height
    return [crop[:, x:x + size] for x in range(0, width - 2 * height, step)]


def _lying(crop: np.ndarray) -> np.ndarray:
    return np.rot90(crop) if crop.shape[0] >= TALL * crop.shape[1] else crop


def _rectified(rgb: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The quad's content as an upright BGR rectangle (PP-OCR's perspective crop), from a crop around it."""
    x0, y0 = np.maximum(np.floor(quad.min(axis=0)).astype(int) - 2, 0)
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int) + 3
    around = np.ascontiguousarray(rgb[y0:y1, x0:x1][:, :, ::-1])
    quad = quad - np.array([x0, y0], dtype=quad.dtype)
    width = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3]), 1))
    height = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2]), 1))
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    return cv2.warpPerspective(around, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)


def _distinct(quads: list) -> list:
    """Drop quads that repeat another almost exactly (same line found twice)."""
    kept = []
    for quad in quads:
        if not any(np.abs(quad - other).max() < 0.25 * _short_side(other) for other in kept):
            kept.append(quad)
    return kept


def _short_side(quad: np.ndarray) -> float:
    return float(min(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[1] - quad[2])))
