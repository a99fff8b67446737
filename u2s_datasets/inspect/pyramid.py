"""Views of an image the detectors look at: scaled levels, tiles, turned canvases.

Both detectors look at an image pyramid so that small things stay findable in large photos:
the whole image scaled to ``max_side``, and finer levels down to the scale where the smallest
face (text line) to be found is big enough for the network, cut into overlapping tiles so
that memory stays bounded up to Pillow's decompression limit.
"""

from dataclasses import dataclass

import cv2
import numpy as np


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
