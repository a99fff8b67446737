"""Encoding: output bytes that never carry the input's EXIF/GPS/XMP/IPTC, comments, thumbnails or text.

Images that pass through unchanged keep their exact pixels: JPEG, PNG, WebP and GIF are
cleaned at the byte level (``metadata``), other formats are re-written losslessly from their
pixels; 16-bit and floating-point colour is written by ``depth``. What the policy keeps
(``metadata_policy``) is rebuilt, never copied.
"""

import io
import os
from typing import Optional

import numpy as np
from PIL import Image

from . import depth, metadata
from .decode import DecodedImage, ImageError
from .metadata import MetadataError
from .metadata_policy import MetadataPolicy
from .modes import _sample_scale, output_mode

_KEEP_ALL = MetadataPolicy()


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
    if isinstance(image, depth.DeepImage):
        encoded = depth.encode(image, "jpeg" if wants_jpeg else image_format, notes)
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
    if isinstance(image, depth.DeepImage):
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
    if isinstance(image, depth.DeepImage):
        return False  # 16-bit containers other than PNG are re-written from their samples
    if decoded.mode == image.mode and decoded.mode not in ("P", "PA"):
        return decoded.tobytes() == image.tobytes()
    return decoded.convert("RGBA").tobytes() == image.convert("RGBA").tobytes()


def _bare(image: Image.Image) -> Image.Image:
    """An image that Pillow saves without the source's EXIF, XMP, ICC, comments or text chunks."""
    if set(image.info) <= {"transparency"} and not isinstance(image, depth.DeepImage) and type(image) is Image.Image:
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
