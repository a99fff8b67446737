"""Decoding: any input form -> bytes -> open -> orientation -> depth -> ``DecodedImage``.

Read top to bottom, one input's way: ``decode`` takes a PIL image, array, dict, path or
bytes to bytes where it can (an image ``datasets`` opened still holds them), ``_open_bytes``
opens them, ``_checked`` reads size, frames and orientation, and 16-bit or floating-point
colour goes to ``depth`` (which keeps every bit) before the ``DecodedImage`` is built.
"""

import io
import os
import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from PIL import Image, ImageOps

from . import depth


class ImageError(ValueError):
    """An input image that cannot be used; the message says why, ``size`` is kept when known."""

    def __init__(self, message: str, size=None):
        super().__init__(message)
        self.size = size


@dataclass
class DecodedImage:
    image: Image.Image  # loaded, original mode, EXIF orientation applied
    source_bytes: Optional[bytes]  # the encoded input, when its first image is exactly ``image``
    format: Optional[str]  # "JPEG", "PNG", ... of the input, when known
    notes: list = field(default_factory=list)  # what was converted or dropped, e.g. "first of 12 frames kept"
    icc_profile: Optional[bytes] = None  # the input's colour profile as read (kept rebuilt, when the policy keeps it)
    dpi: Optional[tuple] = None  # the input's pixel density, as Pillow reads it


def decode(value, max_pixels: int, bake_orientation: bool = True) -> DecodedImage:
    """Any supported input form -> a loaded PIL image. Raises ImageError with the reason.

    ``bake_orientation``: EXIF rotation is applied to the pixels (else they are used as stored)."""
    if value is None:
        raise ImageError("image is missing (None)")
    if isinstance(value, Image.Image):
        data = source_bytes(value)
        return _open_bytes(data, max_pixels, bake_orientation) if data is not None else _checked(value, None, max_pixels, bake_orientation)
    if isinstance(value, np.ndarray):
        return _checked(_from_array(value), None, max_pixels)
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
        if data is None and not path:
            raise ImageError("image dict has neither bytes nor path")
        value = data if data is not None else path
    if isinstance(value, (str, os.PathLike)):
        try:
            with open(value, "rb") as f:
                value = f.read()
        except OSError as e:
            raise ImageError(f"cannot read image file {str(value)!r}: {e.strerror or e}") from None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _open_bytes(bytes(value), max_pixels, bake_orientation)
    raise ImageError(f"unsupported image type {type(value).__name__}")


def source_bytes(image: Image.Image) -> Optional[bytes]:
    """The encoded bytes a decoded PIL image was read from, when they still decode to exactly its pixels.

    ``datasets`` opens an image from its bytes (kept as the image's ``fp``) or its path (kept as
    ``filename``); both outlive the decoding. The check against the pixels guards against images
    changed in place after decoding.
    """
    data = None
    fp = getattr(image, "fp", None)
    try:
        if isinstance(fp, io.BytesIO):
            data = fp.getvalue()
        elif getattr(image, "filename", ""):
            with open(image.filename, "rb") as f:
                data = f.read()
    except (OSError, ValueError):
        return None
    if not data:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stored = Image.open(io.BytesIO(data))
            same = stored.size == image.size and stored.mode == image.mode and stored.tobytes() == image.tobytes()
    except Exception:
        return None
    return data if same else None


def _open_bytes(data: bytes, max_pixels: int, bake_orientation: bool = True) -> DecodedImage:
    if not data:
        raise ImageError("image bytes are empty")
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        # Pillow refuses images over twice its own limit; a user who raised ours raised both.
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        image = Image.open(io.BytesIO(data))
    except Exception as e:
        if data[:4] in (b"II*\x00", b"MM\x00*"):  # TIFFs Pillow cannot read (floating-point colour)
            return _deep_from_bytes(data, "TIFF", None, max_pixels, [])
        raise ImageError(f"not a readable image ({type(e).__name__})") from None
    return _checked(image, data, max_pixels, bake_orientation)


def _checked(image: Image.Image, data: Optional[bytes], max_pixels: int, bake_orientation: bool = True) -> DecodedImage:
    width, height = image.size
    if width * height == 0:
        raise ImageError(f"image has 0 pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(f"image of {width}x{height} pixels is over the decompression limit of {max_pixels} pixels")
    fmt, notes = image.format, []
    frames = getattr(image, "n_frames", 1)
    # Only the first frame is inspected and edited, so only it may come out; the byte-level
    # cleaners of GIF, PNG and MPO keep exactly the first image, other formats are re-written.
    whole = frames == 1 or fmt in ("GIF", "PNG", "MPO")
    if frames > 1:
        notes.append(f"first of {frames} {'pages' if fmt == 'TIFF' else 'frames'} kept")
    kept = dict(icc_profile=image.info.get("icc_profile") or None, dpi=image.info.get("dpi"))
    orientation = _orientation(image) if bake_orientation else None
    if data is not None and _is_deep(image, data):
        return _deep_from_bytes(data, fmt, orientation, max_pixels, notes, whole, _loaded(image, frames))
    if not whole:
        data = None
    image = _loaded(image, frames)
    if orientation not in (None, 1):
        # Stripped EXIF would lose the rotation, so bake it into the pixels.
        image, data = ImageOps.exif_transpose(image), None
    return DecodedImage(image=image, source_bytes=data, format=fmt, notes=notes, **kept)


def _loaded(image: Image.Image, frames: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
    except Exception as e:
        raise ImageError(f"corrupt or truncated image data ({type(e).__name__}: {e})", size=image.size) from None
    if frames > 1:
        image.seek(0)
        image = image.copy()
    return image


def _orientation(image: Image.Image):
    try:
        return image.getexif().get(0x0112)
    except Exception:
        return None


def _is_deep(image: Image.Image, data: bytes) -> bool:
    """Colour images whose samples Pillow would cut to 8 bits."""
    if image.format == "PNG":
        return data[24:25] == b"\x10" and data[25:26] in (b"\x02", b"\x06")  # IHDR: 16-bit RGB / RGBA
    if image.format == "TIFF" and image.mode in ("RGB", "RGBA"):
        bits = image.tag_v2.get(258, (8,))
        return max(bits if isinstance(bits, tuple) else (bits,)) > 8
    return False


def _deep_from_bytes(data: bytes, fmt: str, orientation, max_pixels: int, notes: list, whole: bool = True,
                     view: Optional[Image.Image] = None) -> DecodedImage:
    """16-bit or floating-point colour; OpenCV reads the samples, which keeps every bit.
    ``view``: Pillow's 8-bit reading of a 16-bit file, when it has one."""
    if view is not None and orientation not in (None, 1):
        view = ImageOps.exif_transpose(view)
    image = depth.from_bytes(data, orientation, view)
    if image is None:
        raise ImageError(f"not a readable {fmt} image (16-bit or floating-point colour)")
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(f"image of {width}x{height} pixels is over the decompression limit of {max_pixels} pixels")
    source = data if whole and orientation in (None, 1) else None
    return DecodedImage(image=image, source_bytes=source, format=fmt, notes=notes)


def _from_array(array: np.ndarray) -> Image.Image:
    if array.size == 0:
        raise ImageError(f"image array is empty (shape {array.shape})")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(f"image array must be HxW, HxWx3 or HxWx4, got shape {array.shape}")
    if not (array.dtype == bool or np.issubdtype(array.dtype, np.number)):
        raise ImageError(f"image array has non-numeric dtype {array.dtype}")
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype == np.uint16 and array.ndim == 2:
        return Image.fromarray(array)  # I;16
    elif array.dtype == np.uint16:
        return depth.from_samples(np.array(array), 257.0)
    elif np.issubdtype(array.dtype, np.floating):
        array = np.array(array, dtype=np.float32)
        if array.ndim == 2:
            return Image.fromarray(array)  # F
        return depth.from_samples(array, depth.float_scale(array))
    elif array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(array))
