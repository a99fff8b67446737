"""Classical region editors of the ``local`` preset: blur, pixelate, fill, inpaint.

Each edits only the areas of the known regions (the whole image when none are known);
the transform then composites through the feathered mask.
"""

import cv2
import numpy as np
from PIL import Image

from .masks import edit_box, grow_box


class RegionEditor:
    """Applies ``_edit_area`` to every region's edit box of every requested image."""

    uses_seed = False  # deterministic by construction

    def __init__(self, config, rank=None, **shared):
        self.settings = config.edit

    def edit(self, requests: list) -> list:
        return [self._edit_one(request) for request in requests]

    def _edit_one(self, request) -> Image.Image:
        array = np.array(request.image, dtype=np.uint8)
        size = request.image.size
        boxes = [r.box for r in request.inspection.regions] or [(0, 0, size[0], size[1])]
        for box in boxes:
            x0, y0, x1, y1 = edit_box(box, self.settings.region_margin, self.settings.feather, size)
            if x1 > x0 and y1 > y0:
                array[y0:y1, x0:x1] = self._edit_area(array, (x0, y0, x1, y1), grow_box(box, self.settings.region_margin, size))
        return Image.fromarray(array)

    def _edit_area(self, array, area, core):
        raise NotImplementedError


class BlurEditor(RegionEditor):
    """Gaussian blur strong enough to erase identity: sigma is a fraction of the region's size."""

    def _edit_area(self, array, area, core):
        x0, y0, x1, y1 = area
        crop = array[y0:y1, x0:x1]
        sigma = max(2.0, self.settings.blur_strength * min(core[2] - core[0], core[3] - core[1]))
        # A wide blur loses nothing at lower resolution: blur a copy shrunk so sigma is ~4 px.
        factor = max(1.0, sigma / 4.0)
        small = cv2.resize(crop, (max(1, round(crop.shape[1] / factor)), max(1, round(crop.shape[0] / factor))), interpolation=cv2.INTER_AREA)
        # Two passes: one wide gaussian still leaves the layout of a face readable to a detector.
        for _ in range(2):
            small = cv2.GaussianBlur(small, (0, 0), sigma / factor, borderType=cv2.BORDER_REPLICATE)
        return cv2.resize(small, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_LINEAR)


class PixelateEditor(RegionEditor):
    def _edit_area(self, array, area, core):
        x0, y0, x1, y1 = area
        crop = array[y0:y1, x0:x1]
        side = max(1, min(core[2] - core[0], core[3] - core[1]) // self.settings.pixel_blocks)
        small = cv2.resize(crop, (max(1, (x1 - x0) // side), max(1, (y1 - y0) // side)), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)


class FillEditor(RegionEditor):
    def _edit_area(self, array, area, core):
        x0, y0, x1, y1 = area
        return np.broadcast_to(np.asarray(self.settings.fill_color, dtype=np.uint8), (y1 - y0, x1 - x0, 3))


class InpaintEditor(RegionEditor):
    """OpenCV Telea inpainting from the pixels around the region.

    Telea's cost grows with the hole's area times its radius squared (the fourth power of
    the region's side), so the hole is filled at a working size of at most ``WORK_SIDE``
    pixels and scaled back: a fill from the surroundings holds no detail worth the cost.
    """

    WORK_SIDE = 96

    def _edit_area(self, array, area, core):
        x0, y0, x1, y1 = area
        height, width = array.shape[:2]
        pad = max(x1 - x0, y1 - y0) // 4 + 2  # context the inpainting draws from
        cx0, cy0, cx1, cy1 = max(0, x0 - pad), max(0, y0 - pad), min(width, x1 + pad), min(height, y1 + pad)
        context = np.ascontiguousarray(array[cy0:cy1, cx0:cx1])
        hole = np.zeros(context.shape[:2], dtype=np.uint8)
        hole[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0] = 255
        if hole.all():  # nothing around to draw from: fall back to the mean colour of the area
            return np.broadcast_to(context.reshape(-1, 3).mean(axis=0).astype(np.uint8), (y1 - y0, x1 - x0, 3))
        scale = min(1.0, self.WORK_SIDE / max(context.shape[:2]))
        small_size = (max(1, round(context.shape[1] * scale)), max(1, round(context.shape[0] * scale)))
        small = cv2.resize(context, small_size, interpolation=cv2.INTER_AREA)
        small_hole = cv2.resize(hole, small_size, interpolation=cv2.INTER_NEAREST)
        small_hole[small_hole > 0] = 255
        filled = cv2.inpaint(small, small_hole, max(3, round(pad * scale) // 2), cv2.INPAINT_TELEA)
        filled = cv2.resize(filled, (context.shape[1], context.shape[0]), interpolation=cv2.INTER_LINEAR)[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0]
        # Telea carries edges in from the border (hair, collar) that can still read as a face;
        # a light blur of the fill removes that structure.
        sigma = max(2.0, 0.1 * min(core[2] - core[0], core[3] - core[1]))
        return cv2.GaussianBlur(filled, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
