"""Images in and out: decode any input form, normalise modes, strip metadata, encode output.

Output images never carry the input's EXIF/GPS/XMP/IPTC, comments, thumbnails or text.
Images that pass through unchanged keep their exact pixels: JPEG, PNG, WebP and GIF are
cleaned at the byte level (``u2s_datasets.metadata``), other formats are re-written
losslessly from their pixels. 16-bit colour and floating-point images keep their samples
(``deep_images.DeepImage``); whatever had to be converted or dropped is said in ``DecodedImage.notes``.
"""

import io
import os
import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from PIL import Image, ImageOps

from . import deep_images, metadata
from .deep_images import DeepImage
from .metadata import MetadataError
from .metadata_policy import MetadataPolicy

_KEEP_ALL = MetadataPolicy()


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
    image = deep_images.from_bytes(data, orientation, view)
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
        return deep_images.from_samples(np.array(array), 257.0)
    elif np.issubdtype(array.dtype, np.floating):
        array = np.array(array, dtype=np.float32)
        if array.ndim == 2:
            return Image.fromarray(array)  # F
        return deep_images.from_samples(array, deep_images.float_scale(array))
    elif array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(array))


# ----------------------------------------------------------------------------- modes

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
            gray[top:top + len(band)] = deep_images.eight_bit(band[..., None], scale)[..., 0]
        return Image.fromarray(gray)
    return image if image.mode == "L" else image.convert("L")


def _bands(image: Image.Image, rows: int = 256):
    """(top, array) for each band of rows: arrays of a very large image without a whole-image copy."""
    for top in range(0, image.height, rows):
        yield top, np.asarray(image.crop((0, top, image.width, min(top + rows, image.height))))


def _sample_scale(image: Image.Image) -> float:
    """8-bit value -> the image's own sample value."""
    if isinstance(image, DeepImage):
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


_BAND = 256  # rows blended at a time, so temporaries stay small on very large images


def compose(original: Image.Image, edited_rgb: Image.Image, mask: Optional[np.ndarray]) -> Image.Image:
    """Blend the editor's RGB output into the original, in the original's mode and depth.

    ``mask`` (HxW float in [0, 1]) selects the edited pixels; where it is 0 the result is the
    original pixel, bit for bit (alpha included). ``mask=None`` keeps the whole edited image.
    Inside the edit, alpha goes towards opaque with the mask's weight, so nothing hidden by
    transparency survives there.
    """
    deep = isinstance(original, DeepImage)
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
        return deep_images.from_samples(result, scale)
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


# ----------------------------------------------------------------------------- encoding

def encode(image: Image.Image, source_format: Optional[str], jpeg_quality: int, image_format: str = "auto",
           notes: Optional[list] = None, kept: Optional[dict] = None) -> bytes:
    """Encode a new image with no metadata; conversions it had to make are appended to ``notes``.

    ``kept``: what the metadata policy keeps, as Pillow save parameters (``kept_metadata``).

    ``image_format="auto"``: JPEG inputs stay JPEG (lossy, but no PNG blow-up), floating-point
    and 32-bit grey images are deflated TIFF, all else is lossless PNG (16-bit and floating-point
    colour as 16-bit PNG); ``"png"``: always lossless PNG; ``"jpeg"``: always JPEG where the mode allows.
    """
    notes = [] if notes is None else notes
    wants_jpeg = image_format == "jpeg" or (image_format == "auto" and source_format == "JPEG")
    if isinstance(image, DeepImage):
        encoded = deep_images.encode(image, "jpeg" if wants_jpeg else image_format, notes)
        if encoded is not None:
            return encoded
        return encode(image.copy(), "JPEG", jpeg_quality, "jpeg")
    buffer, image, kept = io.BytesIO(), _bare(image), kept or {}
    if wants_jpeg and image.mode in ("RGB", "L", "CMYK"):
        image.save(buffer, format="JPEG", quality=jpeg_quality, **kept)
    elif image.mode == "CMYK" or (image.mode in ("I", "F") and image_format == "auto"):
        image.save(buffer, format="TIFF", compression="tiff_adobe_deflate", **kept)
    else:
        if image.mode in ("I", "F"):
            notes.append(f"{'floating-point' if image.mode == 'F' else '32-bit'} samples written as 16-bit PNG")
            array = np.asarray(image).astype(np.float32) * np.float32(257 / _sample_scale(image))
            image = Image.fromarray(np.clip(array, 0, 65535).round().astype(np.uint16))
        image.save(buffer, format="PNG", **kept)
    return buffer.getvalue()


def kept_metadata(decoded: DecodedImage, policy: MetadataPolicy = _KEEP_ALL) -> dict:
    """Pillow save parameters for what ``policy`` keeps of the input: the rebuilt profile, the density."""
    kept = {}
    profile = metadata.clean_icc_profile(decoded.icc_profile) if policy.icc and decoded.icc_profile else None
    if profile:
        kept["icc_profile"] = profile
    if policy.dpi and decoded.dpi and all(v > 0 for v in decoded.dpi):
        kept["dpi"] = tuple(float(v) for v in decoded.dpi)
    return kept


# formats whose pixels are re-written losslessly in the same format when passed through
_LOSSLESS_SAME_FORMAT = {"TIFF": dict(format="TIFF", compression="tiff_adobe_deflate"), "BMP": dict(format="BMP")}
_STRIPPERS = {"JPEG": metadata.strip_jpeg_metadata, "MPO": metadata.strip_jpeg_metadata, "PNG": metadata.strip_png_metadata,
              "WEBP": metadata.strip_webp_metadata, "GIF": metadata.strip_gif_metadata}


def passthrough_bytes(decoded: DecodedImage, jpeg_quality: int, policy: MetadataPolicy = _KEEP_ALL) -> bytes:
    """The input image, unchanged in pixels, with its metadata removed but for what ``policy``
    keeps; any format change is appended to ``decoded.notes``."""
    data, fmt, kept = decoded.source_bytes, decoded.format, kept_metadata(decoded, policy)
    if data is not None and fmt in _STRIPPERS:
        try:
            cleaned = _STRIPPERS[fmt](data, keep_icc=policy.icc, keep_dpi=policy.dpi)
            if fmt in ("JPEG", "MPO") or (fmt == "PNG" and not metadata.is_animated_png(data)):
                return cleaned  # segments dropped, coded image untouched
            if _decodes_to(cleaned, decoded.image):
                return cleaned  # the container was rebuilt: checked to show the same pixels
        except MetadataError:
            pass  # a stream Pillow reads but we cannot walk: re-encode the pixels instead
    image = decoded.image
    if isinstance(image, DeepImage):
        encoded = encode(image, None, jpeg_quality, "auto", decoded.notes, kept)
        if fmt != "PNG" and image.sample_kind == "16-bit":
            decoded.notes.append(f"{fmt} written as lossless 16-bit PNG")
        return encoded
    image = _bare(image)
    if fmt in ("JPEG", "MPO"):
        buffer = io.BytesIO()
        tables = getattr(decoded.image, "quantization", None)
        if tables:  # re-use the source's quantisation: as close to the input as a re-encode gets
            from PIL import JpegImagePlugin

            image.save(buffer, format="JPEG", qtables=tables, subsampling=JpegImagePlugin.get_sampling(decoded.image), **kept)
        else:
            image.save(buffer, format="JPEG", quality=jpeg_quality, **kept)
        decoded.notes.append("re-encoded as JPEG")
        return buffer.getvalue()
    if fmt in _LOSSLESS_SAME_FORMAT and image.mode in ("1", "L", "P", "RGB", "RGBA", "I;16", "I", "F", "CMYK"):
        buffer = io.BytesIO()
        image.save(buffer, **_LOSSLESS_SAME_FORMAT[fmt], **kept)
        return buffer.getvalue()
    if fmt == "WEBP" and image.mode in ("RGB", "RGBA"):
        buffer = io.BytesIO()
        image.save(buffer, format="WEBP", lossless=True, exact=True, **{k: v for k, v in kept.items() if k == "icc_profile"})
        return buffer.getvalue()
    if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I", "F"):
        image = image.convert(output_mode(image.mode, image))
    encoded = encode(image, None, jpeg_quality, "auto", decoded.notes, kept)
    if fmt is not None:
        decoded.notes.append(f"{fmt} written as lossless {Image.open(io.BytesIO(encoded)).format}")
    return encoded


def _decodes_to(data: bytes, image: Image.Image) -> bool:
    """True when ``data`` decodes to a single image with the same pixels as ``image``."""
    try:
        decoded = Image.open(io.BytesIO(data))
        decoded.load()
    except Exception:
        return False
    if getattr(decoded, "n_frames", 1) != 1 or decoded.size != image.size:
        return False
    if isinstance(image, DeepImage):
        return False  # 16-bit containers other than PNG are re-written from their samples
    if decoded.mode == image.mode and decoded.mode not in ("P", "PA"):
        return decoded.tobytes() == image.tobytes()
    return decoded.convert("RGBA").tobytes() == image.convert("RGBA").tobytes()


def _bare(image: Image.Image) -> Image.Image:
    """An image that Pillow saves without the source's EXIF, XMP, ICC, comments or text chunks."""
    if set(image.info) <= {"transparency"} and not isinstance(image, DeepImage) and type(image) is Image.Image:
        return image  # nothing to drop: no copy of a possibly very large image
    bare = image.copy()
    bare.info = {k: v for k, v in image.info.items() if k == "transparency"}
    return bare


def _as_image_error(strip):
    def strip_or_raise(data: bytes) -> bytes:
        try:
            return strip(data)
        except MetadataError as e:
            raise ImageError(str(e)) from None

    strip_or_raise.__doc__, strip_or_raise.__name__ = strip.__doc__, strip.__name__
    return strip_or_raise


strip_jpeg_metadata = _as_image_error(metadata.strip_jpeg_metadata)
strip_png_metadata = _as_image_error(metadata.strip_png_metadata)


def dataset_image(data: bytes) -> Image.Image:
    """A PIL image that ``datasets`` stores as exactly ``data``.

    ``datasets`` infers the Image feature only from PIL objects and re-encodes them with
    default settings; this image writes its own bytes back when saved in its own format,
    so our encoding (JPEG quality, stripped metadata, untouched passthrough) survives.
    """
    image = Image.open(io.BytesIO(data))
    own_format = image.format
    plain_save = image.save

    def save(fp, format=None, **params):
        target = format or (os.path.splitext(str(fp))[1][1:].upper() if isinstance(fp, (str, os.PathLike)) else None)
        target = {"JPG": "JPEG", "TIF": "TIFF"}.get(target, target)
        if target == own_format and not params:
            if isinstance(fp, (str, os.PathLike)):
                with open(fp, "wb") as f:
                    f.write(data)
            else:
                fp.write(data)
            return
        plain_save(fp, format=format, **params)

    image.save = save
    return image


GREY_MODES = ("1", "L", "I;16", "I;16B", "I;16L", "I", "F")


def inspection_views(image: Image.Image, grey: bool = False) -> list:
    """What a viewer could see: the RGB data, and for images with alpha also the image over
    white, over black, and the alpha channel itself (text can hide in any of them).

    ``grey``: a single-channel image without alpha is seen as one 8-bit "L" view instead.
    """
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if grey and image.mode in GREY_MODES and not isinstance(image, deep_images.DeepImage):
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
