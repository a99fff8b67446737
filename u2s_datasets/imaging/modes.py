"""Modes: the 8-bit RGB (or grey) views that detectors and editors see, and the mode an output keeps."""

import numpy as np
from PIL import Image

from . import depth


def to_rgb(image: Image.Image) -> Image.Image:
    """The 8-bit RGB working copy that detectors and editors see."""
    if image.mode == "RGB":
        return image
    if image.mode in GREY_MODES:
        return to_grey(image).convert("RGB")
    return image.convert("RGB")


def to_grey(image: Image.Image) -> Image.Image:
    """The 8-bit "L" working copy of a single-channel image."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        scale, gray = _sample_scale(image), np.empty((image.height, image.width), np.uint8)
        for top, band in _bands(image):
            gray[top:top + len(band)] = depth.eight_bit(band[..., None], scale)[..., 0]
        return Image.fromarray(gray)
    return image if image.mode == "L" else image.convert("L")


def _bands(image: Image.Image, rows: int = 256):
    """(top, array) for each band of rows: arrays of a very large image without a whole-image copy."""
    for top in range(0, image.height, rows):
        yield top, np.asarray(image.crop((0, top, image.width, min(top + rows, image.height))))


def _sample_scale(image: Image.Image) -> float:
    """8-bit value -> the image's own sample value."""
    if isinstance(image, depth.DeepImage):
        return image.scale
    if image.mode.startswith("I;16"):
        return 257.0
    if image.mode in ("I", "F"):
        low, high = image.getextrema()
        if image.mode == "I":
            return 257.0 if high > 255 else 1.0
        return 1 / 255 if high <= 1.0 else 1.0 if high <= 255 else 257.0
    return 1.0


def output_mode(mode: str, image: Image.Image) -> str:
    """The mode an edited image is written in: the input's own where it makes sense."""
    if mode in ("RGB", "L", "RGBA", "LA", "CMYK", "I;16", "I", "F"):
        return mode
    if mode in ("P", "PA"):
        return "RGBA" if mode == "PA" or "transparency" in image.info else "RGB"
    if mode in ("1",):
        return "L"
    if mode in ("I;16B", "I;16L"):
        return "I;16"
    return "RGB"


def _in_mode(image: Image.Image, mode: str) -> np.ndarray:
    """A new, writable array of ``image`` in ``mode``; deeper modes from native samples or scaled 8-bit ones."""
    if mode in ("I;16", "I", "F"):
        source = image if image.mode.startswith("I;16") or image.mode in ("I", "F") else image.convert("L")
        dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
    else:
        source, dtype = (image if image.mode == mode else image.convert(mode)), np.uint8
    channels = Image.getmodebands(mode) if mode not in ("I;16", "I", "F") else 1
    out = np.empty((image.height, image.width) + ((channels,) if channels > 1 else ()), dtype=dtype)
    for top, band in _bands(source):
        out[top:top + len(band)] = np.clip(band, 0, 65535) if mode == "I;16" and band.dtype != np.uint16 else band
    return out


GREY_MODES = ("1", "L", "I;16", "I;16B", "I;16L", "I", "F")


def inspection_views(image: Image.Image, grey: bool = False) -> list:
    """What a viewer could see: the RGB data, and for images with alpha also the image over
    white, over black, and the alpha channel itself (text can hide in any of them).

    ``grey``: a single-channel image without alpha is seen as one 8-bit "L" view instead.
    """
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if grey and image.mode in GREY_MODES and not isinstance(image, depth.DeepImage):
        return [to_grey(image)]
    rgb = to_rgb(image)
    if not has_alpha:
        return [rgb]
    rgba = image.convert("RGBA")
    alpha = rgba.getchannel("A")
    views = [rgb]
    for background in ((255, 255, 255), (0, 0, 0)):
        canvas = Image.new("RGB", image.size, background)
        canvas.paste(rgba.convert("RGB"), mask=alpha)
        views.append(canvas)
    views.append(alpha.convert("RGB"))
    return views
