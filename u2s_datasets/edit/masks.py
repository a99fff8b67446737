"""Region masks: boxes grown by a margin, with a feathered edge that falls to exactly 0."""

import cv2
import numpy as np


def grow_box(box, margin: float, size) -> tuple:
    """``box`` grown on every side by ``margin`` times its width/height, clipped to ``size``."""
    width, height = size
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    return (max(0, int(x0 - dx)), max(0, int(y0 - dy)), min(width, int(np.ceil(x1 + dx))), min(height, int(np.ceil(y1 + dy))))


def edit_box(box, margin: float, feather: int, size) -> tuple:
    """The area an editor must change for ``box``: grown box plus the feathered edge."""
    width, height = size
    x0, y0, x1, y1 = grow_box(box, margin, size)
    return (max(0, x0 - feather), max(0, y0 - feather), min(width, x1 + feather), min(height, y1 + feather))


def region_mask(size, boxes, margin: float, feather: int):
    """HxW float32 mask: 1 inside the grown boxes, a linear ramp over ``feather`` pixels, 0 beyond.

    Returns None when there are no boxes (the region is unknown, not empty).
    """
    if not boxes:
        return None
    width, height = size
    hard = np.zeros((height, width), dtype=np.uint8)
    for box in boxes:
        x0, y0, x1, y1 = grow_box(box, margin, size)
        hard[y0:y1, x0:x1] = 1
    if feather <= 0:
        return hard.astype(np.float32)
    distance = cv2.distanceTransform(1 - hard, cv2.DIST_L2, 5)
    return np.clip(1.0 - distance / float(feather), 0.0, 1.0).astype(np.float32)
