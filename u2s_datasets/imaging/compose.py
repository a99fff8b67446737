"""Compositing: an edit blended back into the original, in the original's mode and depth."""

from typing import Optional

import numpy as np
from PIL import Image

from . import depth
from .modes import _in_mode, _sample_scale, output_mode


_BAND = 256  # rows blended at a time, so temporaries stay small on very large images


def compose(original: Image.Image, edited_rgb: Image.Image, mask: Optional[np.ndarray]) -> Image.Image:
    """Blend the editor's RGB output into the original, in the original's mode and depth.

    ``mask`` (HxW float in [0, 1]) selects the edited pixels; where it is 0 the result is the
    original pixel, bit for bit (alpha included). ``mask=None`` keeps the whole edited image.
    Inside the edit, alpha goes towards opaque with the mask's weight, so nothing hidden by
    transparency survives there.
    """
    deep = isinstance(original, depth.DeepImage)
    if deep:
        mode, result, scale = original.mode, original.pixels(), original.scale
    else:
        mode = output_mode(original.mode, original)
        result, scale = _in_mode(original, mode), _sample_scale(original)
    x, y, w, h = (0, 0, original.width, original.height) if mask is None else _bounding_box(mask)
    colour_mode = "L" if mode in ("L", "LA", "I;16", "I", "F") else "CMYK" if mode == "CMYK" else "RGB"
    opaque = np.float32(255 * scale if deep else 255) if mode in ("RGBA", "LA") else None
    # Only the mask's bounding box is blended, a band of rows at a time; the rest stays as read.
    for top in range(y, y + h, _BAND):
        bottom = min(top + _BAND, y + h)
        edited = np.asarray(edited_rgb.crop((x, top, x + w, bottom)).convert(colour_mode), dtype=np.float32)
        edited *= np.float32(scale)
        if opaque is not None:
            edited = np.dstack([edited, np.full(edited.shape[:2], opaque, dtype=np.float32)])
        part = result[top:bottom, x:x + w]
        weight = np.ones(part.shape[:2], np.float32) if mask is None else mask[top:bottom, x:x + w].astype(np.float32)
        if part.ndim == 3:
            weight = weight[..., None]
        blended = part.astype(np.float32)
        blended += (edited.reshape(part.shape) - blended) * weight
        if np.issubdtype(result.dtype, np.integer):
            info = np.iinfo(result.dtype)
            np.clip(np.rint(blended, out=blended), info.min, info.max, out=blended)
        np.copyto(part, blended.astype(result.dtype), where=np.broadcast_to(weight > 0, part.shape))
    if deep:
        return depth.from_samples(result, scale)
    return _image_from_array(result, mode)


def _bounding_box(mask: np.ndarray) -> tuple:
    """x, y, w, h of the mask's non-zero pixels, found a band of rows at a time."""
    rows, columns = np.zeros(mask.shape[0], bool), np.zeros(mask.shape[1], bool)
    for top in range(0, mask.shape[0], _BAND):
        selected = mask[top:top + _BAND] > 0
        rows[top:top + _BAND] = selected.any(axis=1)
        columns |= selected.any(axis=0)
    if not rows.any():
        return 0, 0, 0, 0
    y0, y1 = np.flatnonzero(rows)[[0, -1]]
    x0, x1 = np.flatnonzero(columns)[[0, -1]]
    return int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)


def _image_from_array(array: np.ndarray, mode: str) -> Image.Image:
    """The array as an image without an intermediate byte copy (grey and float modes share its memory)."""
    rawmode = {"I;16": "I;16", "I": "I", "F": "F"}.get(mode, mode)
    if mode in ("I;16", "I", "F"):
        array = array.astype({"I;16": "<u2", "I": "<i4", "F": "<f4"}[mode], copy=False)
    array = np.ascontiguousarray(array)
    return Image.frombuffer(mode, (array.shape[1], array.shape[0]), array, "raw", rawmode, 0, 1)


def redacted_like(image: Optional[Image.Image], size=None) -> Optional[Image.Image]:
    """A fully redacted (black) image of the same size and mode family, or None when no size is known."""
    if image is not None:
        size = image.size
    if size is None:
        return None
    return Image.new("RGB", size, (0, 0, 0))
