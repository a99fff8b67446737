"""Images in and out: decode any input form, normalise modes, strip metadata, encode output.

Output images never carry the input's EXIF/GPS/XMP/IPTC or text chunks. Images that
pass through unchanged keep their exact pixels: JPEG and PNG are cleaned at the byte
level (metadata segments dropped, compressed data untouched).
"""

import io
import os
import struct
import warnings
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
from PIL import Image, ImageOps


class ImageError(ValueError):
    """An input image that cannot be used; the message says why, ``size`` is kept when known."""

    def __init__(self, message: str, size=None):
        super().__init__(message)
        self.size = size


@dataclass
class DecodedImage:
    image: Image.Image  # loaded, original mode, EXIF orientation applied
    source_bytes: Optional[bytes]  # the encoded input, when pixels are exactly as stored there
    format: Optional[str]  # "JPEG", "PNG", ... of the input, when known


def decode(value, max_pixels: int) -> DecodedImage:
    """Any supported input form -> a loaded PIL image. Raises ImageError with the reason."""
    if value is None:
        raise ImageError("image is missing (None)")
    if isinstance(value, Image.Image):
        data = source_bytes(value)
        return _open_bytes(data, max_pixels) if data is not None else _checked(value, None, max_pixels)
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
        return _open_bytes(bytes(value), max_pixels)
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


def _open_bytes(data: bytes, max_pixels: int) -> DecodedImage:
    if not data:
        raise ImageError("image bytes are empty")
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        # Pillow refuses images over twice its own limit; a user who raised ours raised both.
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        image = Image.open(io.BytesIO(data))
    except Exception as e:
        raise ImageError(f"not a readable image ({type(e).__name__})") from None
    return _checked(image, data, max_pixels)


def _checked(image: Image.Image, data: Optional[bytes], max_pixels: int) -> DecodedImage:
    width, height = image.size
    if width * height == 0:
        raise ImageError(f"image has 0 pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(f"image of {width}x{height} pixels is over the decompression limit of {max_pixels} pixels")
    fmt = image.format
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
    except Exception as e:
        raise ImageError(f"corrupt or truncated image data ({type(e).__name__}: {e})", size=image.size) from None
    if getattr(image, "n_frames", 1) > 1:
        # Only the first frame is inspected and edited, so only it may come out.
        image.seek(0)
        image, data = image.copy(), None
    if _orientation(image) not in (None, 1):
        # Stripped EXIF would lose the rotation, so bake it into the pixels.
        image, data = ImageOps.exif_transpose(image), None
    return DecodedImage(image=image, source_bytes=data, format=fmt)


def _orientation(image: Image.Image):
    try:
        return image.getexif().get(0x0112)
    except Exception:
        return None


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
        array = (array // 257).astype(np.uint8)  # 16-bit colour: Pillow has no such mode
    elif np.issubdtype(array.dtype, np.floating):
        scale = 255.0 if array.max(initial=0) <= 1.0 else 1.0
        array = np.clip(array * scale, 0, 255).round().astype(np.uint8)
    elif array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(array))


# ----------------------------------------------------------------------------- modes

def to_rgb(image: Image.Image) -> Image.Image:
    """The 8-bit RGB working copy that detectors and editors see."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        gray = np.clip(array * (255.0 / top), 0, 255).round().astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    return image.convert("RGB")


def output_mode(mode: str, image: Image.Image) -> str:
    """The mode an edited image is written in: the input's own where it makes sense."""
    if mode in ("RGB", "L", "RGBA", "LA", "CMYK", "I;16"):
        return mode
    if mode in ("P", "PA"):
        return "RGBA" if mode == "PA" or "transparency" in image.info else "RGB"
    if mode in ("1",):
        return "L"
    if mode in ("I;16B", "I;16L", "I", "F"):
        return "I;16"
    return "RGB"


def _in_mode(image: Image.Image, mode: str) -> np.ndarray:
    """Array of ``image`` in ``mode``, where 16-bit modes come from scaled 8-bit or native data."""
    if mode == "I;16":
        if image.mode.startswith("I;16") or image.mode in ("I", "F"):
            return np.clip(np.asarray(image, dtype=np.float64), 0, 65535).astype(np.uint16)
        return np.asarray(image.convert("L"), dtype=np.uint16) * 257
    return np.asarray(image.convert(mode))


def compose(original: Image.Image, edited_rgb: Image.Image, mask: Optional[np.ndarray]) -> Image.Image:
    """Blend the editor's RGB output into the original, in the original's mode.

    ``mask`` (HxW float in [0, 1]) selects the edited pixels; where it is 0 the result is the
    original pixel, bit for bit. ``mask=None`` keeps the whole edited image. Alpha is kept.
    """
    mode = output_mode(original.mode, original)
    base = _in_mode(original, mode)
    edited = _in_mode(edited_rgb, "L" if mode in ("L", "LA") else "RGB" if mode in ("RGB", "RGBA") else mode)
    if mode in ("RGBA", "LA"):
        color = base[..., :-1] if base.ndim == 3 else base
        edited = np.dstack([edited.reshape(color.shape), base[..., -1]])
    if mask is None:
        result = edited
    else:
        # Blend only inside the mask's bounding box; everything else is the original, untouched.
        x, y, w, h = cv2.boundingRect((mask > 0).astype(np.uint8))
        region = (slice(y, y + h), slice(x, x + w))
        weight = mask[region].astype(np.float32)
        if base.ndim == 3:
            weight = weight[..., None]
        if mode in ("RGBA", "LA"):
            weight = np.concatenate([np.repeat(weight, base.shape[2] - 1, axis=2), np.zeros_like(weight)], axis=2)
        base_part = base[region]
        blended = base_part.astype(np.float32) * (1 - weight) + edited[region].astype(np.float32) * weight
        result = base.copy()
        result[region] = np.where(weight > 0, np.rint(blended), base_part).astype(base.dtype)
    return _image_from_array(result, mode)


def _image_from_array(array: np.ndarray, mode: str) -> Image.Image:
    if mode == "I;16":
        return Image.fromarray(array.astype(np.uint16))
    return Image.frombytes(mode, (array.shape[1], array.shape[0]), np.ascontiguousarray(array).tobytes())


def redacted_like(image: Optional[Image.Image], size=None) -> Optional[Image.Image]:
    """A fully redacted (black) image of the same size and mode family, or None when no size is known."""
    if image is not None:
        size = image.size
    if size is None:
        return None
    return Image.new("RGB", size, (0, 0, 0))


# ----------------------------------------------------------------------------- encoding

def encode(image: Image.Image, source_format: Optional[str], jpeg_quality: int, image_format: str = "auto") -> bytes:
    """Encode a new image with no metadata.

    ``image_format="auto"``: JPEG inputs stay JPEG (lossy, but no PNG blow-up), all else is
    lossless PNG; ``"png"``: always lossless; ``"jpeg"``: always JPEG where the mode allows.
    """
    buffer, image = io.BytesIO(), _bare(image)
    wants_jpeg = image_format == "jpeg" or (image_format == "auto" and source_format == "JPEG")
    if wants_jpeg and image.mode in ("RGB", "L", "CMYK"):
        image.save(buffer, format="JPEG", quality=jpeg_quality)
    elif image.mode == "CMYK":
        image.save(buffer, format="TIFF", compression="tiff_lzw")
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def passthrough_bytes(decoded: DecodedImage, jpeg_quality: int) -> bytes:
    """The input image, unchanged in pixels, with its metadata removed."""
    data, fmt = decoded.source_bytes, decoded.format
    try:
        if data is not None and fmt == "JPEG":
            return strip_jpeg_metadata(data)
        if data is not None and fmt == "PNG":
            return strip_png_metadata(data)
    except ImageError:
        pass  # a stream Pillow reads but we cannot walk: re-encode the pixels instead
    if data is not None and fmt == "BMP":
        return data  # BMP has no metadata fields
    image = _bare(decoded.image)
    if fmt == "JPEG":
        buffer = io.BytesIO()
        tables = getattr(decoded.image, "quantization", None)
        if tables:  # re-use the source's quantisation: as close to the input as a re-encode gets
            from PIL import JpegImagePlugin

            image.save(buffer, format="JPEG", qtables=tables, subsampling=JpegImagePlugin.get_sampling(decoded.image))
        else:
            image.save(buffer, format="JPEG", quality=jpeg_quality)
        return buffer.getvalue()
    if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"):
        image = image.convert(output_mode(image.mode, image))
    return encode(image, None, jpeg_quality)


def _bare(image: Image.Image) -> Image.Image:
    """A copy that Pillow saves without the source's EXIF, XMP, comments or text chunks."""
    bare = image.copy()
    bare.info = {k: v for k, v in image.info.items() if k == "transparency"}
    return bare


_JPEG_KEEP_APP = {0xE0, 0xEE}  # JFIF, Adobe (colour transform); ICC (APP2) is checked by name


def strip_jpeg_metadata(data: bytes) -> bytes:
    """Drop EXIF/XMP (APP1), IPTC (APP13), comments and other APPn segments, wherever they stand
    (before the frame or between progressive scans), and anything after the end marker
    (appended images, motion-photo video, vendor trailers). The coded pixels are kept as they are.
    """
    if data[:2] != b"\xff\xd8":
        raise ImageError("not a JPEG stream")
    out, pos = [data[:2]], 2
    while pos + 2 <= len(data):
        if data[pos] != 0xFF:
            raise ImageError("malformed JPEG marker")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # end of image: nothing after it is kept
            out.append(data[pos : pos + 2])
            return b"".join(out)
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            out.append(data[pos : pos + 2])
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        end = pos + 2 + length
        segment = data[pos:end]
        is_app = 0xE0 <= marker <= 0xEF
        keep = not (is_app or marker == 0xFE) or marker in _JPEG_KEEP_APP or (
            marker == 0xE2 and segment[4:16] == b"ICC_PROFILE\x00"
        )
        if keep:
            out.append(segment)
        pos = end
        if marker == 0xDA:  # start of scan: entropy-coded data runs to the next real marker
            scan_end = _scan_end(data, pos)
            out.append(data[pos:scan_end])
            pos = scan_end
    raise ImageError("JPEG stream ended before its end marker")


def _scan_end(data: bytes, pos: int) -> int:
    """Where the entropy-coded data starting at ``pos`` ends: the next 0xFF that is neither
    a stuffed byte (FF00) nor a restart marker (FFD0-FFD7)."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            return len(data)
        following = data[pos + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            pos += 1 if following == 0xFF else 2
            continue
        return pos


_PNG_KEEP = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"bKGD", b"pHYs",
             b"acTL", b"fcTL", b"fdAT"}


def strip_png_metadata(data: bytes) -> bytes:
    """Keep only the chunks that define pixels and colour; drop text, EXIF, time and the rest."""
    signature = b"\x89PNG\r\n\x1a\n"
    if data[:8] != signature:
        raise ImageError("not a PNG stream")
    out, pos = [signature], 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if kind in _PNG_KEEP:
            out.append(data[pos:end])
        pos = end
        if kind == b"IEND":
            break
    return b"".join(out)


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


def inspection_views(image: Image.Image) -> list:
    """What a viewer could see: the RGB data, and for images with alpha also the image over
    white, over black, and the alpha channel itself (text can hide in any of them)."""
    rgb = to_rgb(image)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
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
