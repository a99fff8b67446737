"""Images with more than 8 bits per colour sample (16-bit or floating-point RGB/RGBA).

Pillow has no mode for them and would cut them to 8 bits, so OpenCV reads and writes their
samples. A ``DeepImage`` is, as a PIL image, the 8-bit view that detectors, editors and
viewers see; its samples are read again from the source bytes when an edit needs them, so
an image that passes through never holds them in memory next to its view.
"""

import io
from typing import Callable, Optional

import cv2
import numpy as np
from PIL import Image, ImageOps

# numpy views that undo each EXIF orientation, as ImageOps.exif_transpose does
_ORIENT = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1], 5: lambda a: a.swapaxes(0, 1),
    6: lambda a: a.swapaxes(0, 1)[:, ::-1], 7: lambda a: a.swapaxes(0, 1)[::-1, ::-1], 8: lambda a: a.swapaxes(0, 1)[::-1],
}
_BAND = 256  # rows converted at a time: temporaries stay small


class DeepImage(Image.Image):
    """The 8-bit RGB(A) view of a deep image; ``scale`` maps an 8-bit value onto its samples
    (257 for uint16, 1/255 for floats in [0, 1])."""

    scale: float
    _load: Callable[[], np.ndarray]
    _held: Optional[np.ndarray]
    _low_bytes: Optional[Callable[[], Optional[Image.Image]]] = None

    def pixels(self) -> np.ndarray:
        """The samples (HxWxC, RGB order, uint16 or float32) as a new array the caller may change."""
        if self._held is not None:
            return self._held.copy()
        low = self._low_bytes() if self._low_bytes is not None else None
        return self._joined(low) if low is not None else self._load()

    def _joined(self, low: Image.Image) -> np.ndarray:
        """16-bit samples from this 8-bit view (the high bytes) and ``low``, a band at a time."""
        width, height = self.size
        out = np.empty((height, width, len(self.mode)), dtype=np.uint16)
        for top in range(0, height, _BAND):
            box = (0, top, width, min(top + _BAND, height))
            np.left_shift(np.asarray(self.crop(box)), 8, out=out[top:box[3]], dtype=np.uint16)
            out[top:box[3]] |= np.asarray(low.crop(box))
        return out

    # The 8-bit view of held samples (an edit's result) is made only when something reads it;
    # crops, which is what comparing an edit with its original reads, come from the samples.
    @property
    def im(self):
        if self._im is None and self._held is not None:
            self._im = eight_bit_view(self._held, self.scale).im
        return Image.Image.im.fget(self)

    @im.setter
    def im(self, core):
        self._im = core

    def crop(self, box=None) -> Image.Image:
        if self._im is None and self._held is not None and box is not None:
            x0, y0, x1, y1 = (int(round(v)) for v in box)
            if 0 <= x0 <= x1 <= self.width and 0 <= y0 <= y1 <= self.height:
                return Image.fromarray(eight_bit(self._held[y0:y1, x0:x1], self.scale), self.mode)
        return super().crop(box)

    def samples(self) -> np.ndarray:
        """The samples, read-only use: no copy when they are held."""
        return self._held if self._held is not None else self._load()

    @property
    def sample_kind(self) -> str:
        return "floating-point" if self.scale != 257.0 else "16-bit"


def _deep(view: Image.Image, scale: float, load=None) -> DeepImage:
    image = DeepImage()
    image.im, image._mode, image._size = view.im, view.mode, view.size
    image.scale, image._load, image._held = scale, load, None
    return image


def from_samples(pixels: np.ndarray, scale: float) -> DeepImage:
    """A deep image that holds ``pixels``; its 8-bit view is made when first read."""
    image = DeepImage()
    image._mode, image._size = ("RGB" if pixels.shape[2] == 3 else "RGBA"), (pixels.shape[1], pixels.shape[0])
    image.scale, image._load, image._held = scale, None, pixels
    return image


def from_bytes(data: bytes, orientation=None, view: Optional[Image.Image] = None) -> Optional[DeepImage]:
    """A deep image whose samples OpenCV reads from ``data`` when asked (None when it cannot read
    colour samples from them). ``view``: Pillow's own 8-bit reading of 16-bit ``data`` (the high
    bytes), which spares holding the samples next to it."""

    def load() -> Optional[np.ndarray]:
        pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if pixels is None or pixels.ndim != 3 or pixels.shape[2] not in (3, 4) or pixels.dtype not in (np.uint16, np.float32):
            return None
        cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB if pixels.shape[2] == 3 else cv2.COLOR_BGRA2RGBA, dst=pixels)
        return np.ascontiguousarray(_ORIENT[orientation](pixels)) if orientation in _ORIENT else pixels

    if view is not None:
        image = _deep(view, 257.0, load=load)
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            image._low_bytes = lambda: _png_low_bytes(data)
        return image
    pixels = load()
    if pixels is None:
        return None
    scale = 257.0 if pixels.dtype == np.uint16 else float_scale(pixels)
    return _deep(eight_bit_view(pixels, scale), scale, load=load)


def _png_low_bytes(data: bytes) -> Optional[Image.Image]:
    """The low bytes of a 16-bit RGB(A) PNG as an 8-bit image, decoded by Pillow row by row (OpenCV
    would hold the samples twice while decoding). Pillow reads the high bytes ("RGB;16B"); the
    little-endian raw mode of the same bytes takes the low ones."""
    image = Image.open(io.BytesIO(data))
    if not all(isinstance(tile.args, str) and tile.args.endswith(";16B") for tile in image.tile):
        return None
    image.tile = [tile._replace(args=tile.args.replace(";16B", ";16L")) for tile in image.tile]
    image.load()
    orientation = image.getexif().get(0x0112)
    return ImageOps.exif_transpose(image) if orientation not in (None, 1) else image  # it copies even when upright


def float_scale(array: np.ndarray) -> float:
    """8-bit value -> sample: floats are read as [0, 1], [0, 255] or [0, 65535] by their range."""
    top = max((float(np.nanmax(array[i:i + _BAND])) for i in range(0, len(array), _BAND)), default=0.0)
    return 1 / 255 if top <= 1.0 else 1.0 if top <= 255 else 257.0


def eight_bit(pixels: np.ndarray, scale: float) -> np.ndarray:
    """Samples scaled to 8 bits, a band of rows at a time (no full-size float copy)."""
    out = np.empty(pixels.shape, dtype=np.uint8)
    for top in range(0, pixels.shape[0], _BAND):
        out[top:top + _BAND] = _band_to_8bit(pixels[top:top + _BAND], scale)
    return out


def _band_to_8bit(band: np.ndarray, scale: float) -> np.ndarray:
    if band.dtype == np.uint16 and scale == 257.0:
        return (band >> 8).astype(np.uint8)  # what Pillow itself shows of a 16-bit file
    return np.clip(np.nan_to_num(band.astype(np.float32) / np.float32(scale)), 0, 255).round().astype(np.uint8)


def eight_bit_view(pixels: np.ndarray, scale: float) -> Image.Image:
    """The PIL 8-bit view, filled band by band."""
    mode = "RGB" if pixels.shape[2] == 3 else "RGBA"
    view = Image.new(mode, (pixels.shape[1], pixels.shape[0]))
    for top in range(0, pixels.shape[0], _BAND):
        view.paste(Image.fromarray(_band_to_8bit(pixels[top:top + _BAND], scale), mode), (0, top))
    return view


def encode(image: DeepImage, image_format: str, notes: list) -> Optional[bytes]:
    """16-bit PNG; None for ``jpeg`` (then the 8-bit view is what can be written).

    Floating-point colour is written as 16-bit PNG too: the ``datasets`` Image column must hold
    files Pillow can open, and Pillow opens no floating-point colour format.
    """
    if image_format == "jpeg":
        notes.append(f"{image.sample_kind} colour written as 8-bit JPEG")
        return None
    held = image._held is not None
    pixels = image.samples()
    if pixels.dtype == np.float32:
        notes.append("floating-point colour written as 16-bit PNG")
        sixteen = np.empty(pixels.shape, dtype=np.uint16)
        for top in range(0, len(pixels), _BAND):
            band = np.nan_to_num(pixels[top:top + _BAND]) * np.float32(257 / image.scale)
            sixteen[top:top + _BAND] = np.clip(band, 0, 65535).round()
        pixels, held = sixteen, False
    return _cv2_encode(".png", pixels, [], restore=held)


def _cv2_encode(extension: str, pixels: np.ndarray, params: list, restore: bool) -> bytes:
    """OpenCV writes only the image-defining fields; it wants BGR order, swapped in place (and back
    when the array is still in use) instead of copied."""
    swap = cv2.COLOR_RGB2BGR if pixels.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
    cv2.cvtColor(pixels, swap, dst=pixels)
    try:
        ok, encoded = cv2.imencode(extension, pixels, params)
    finally:
        if restore:
            cv2.cvtColor(pixels, swap, dst=pixels)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {pixels.dtype} image as {extension}")
    return encoded.tobytes()
