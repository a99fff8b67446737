"""The safe image's file, as published: the transform's own bytes wherever they are already clean.

A safe image the transform wrote as JPEG, PNG or WebP is published byte for byte when its
metadata is already gone (checked by stripping it again and comparing), cleaned at the byte
level when not (pixels untouched), and only re-encoded when it is in another format, needs
its EXIF rotation baked in, or the user asked for one format (``image_format=``). JPEG and
PNG go through the project's strippers; WebP, which the transform does not write, through
a chunk filter here.
"""

import io
import math
import struct
import sys
from pathlib import Path
from typing import Optional

from PIL import Image as PILImage

from ..config import OutputConfig
from ..imaging.decode import ImageError, decode
from ..imaging.encode import strip_jpeg_metadata, strip_png_metadata
from ..imaging.modes import to_rgb
from .embed import embed_media, media_columns

DATA_DIR = "data"
IMAGE_FORMATS = ("auto", "png", "jpeg", "webp")  # "auto": JPEG, PNG and WebP stay as they are; others become PNG
_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
KEPT, RESTRIPPED, REENCODED, REENCODED_LOSSY = "unchanged", "metadata_removed", "reencoded", "reencoded_lossy"
_HOW_COLUMN = "__u2s_image_file"


def publish_image(value, image_format: str = "auto", quality: int = 90, max_pixels: Optional[int] = None) -> tuple:
    """(bytes, how) for one stored safe image; ``how``: ``"unchanged"``, ``"metadata_removed"``, ``"reencoded"`` (lossless)
    or ``"reencoded_lossy"``.

    ``max_pixels``: the decompression limit; None for no limit of this package's own.
    """
    decoded = decode(value, sys.maxsize if max_pixels is None else max_pixels)
    fmt, data = decoded.format, decoded.source_bytes
    target = _target_format(fmt, image_format)
    if data is not None and target == fmt:
        clean = _restripped(data, fmt)
        if clean is not None:
            return clean, KEPT if clean == data else RESTRIPPED
    lossless = target == "PNG" or (target == "WEBP" and fmt in ("PNG", "WEBP"))
    return _encoded(decoded, target, quality), REENCODED if lossless else REENCODED_LOSSY


def reencode(value, image_format: str = "jpeg", quality: int = 90, max_pixels: Optional[int] = OutputConfig.max_image_pixels) -> bytes:
    """A stored image in ``image_format`` without metadata; JPEG stays JPEG without a new generation of loss."""
    return publish_image(value, image_format, quality, max_pixels)[0]


def _target_format(fmt: Optional[str], image_format: str) -> str:
    if image_format == "auto":
        return fmt if fmt in ("JPEG", "PNG", "WEBP") else "PNG"
    return _PIL_FORMATS[image_format]


def _restripped(data: bytes, fmt: str) -> Optional[bytes]:
    """The bytes with their metadata stripped again; None when the stripper cannot walk them."""
    stripper = {"JPEG": strip_jpeg_metadata, "PNG": strip_png_metadata, "WEBP": _webp_stripper()}.get(fmt)
    try:
        return stripper(data) if stripper else None
    except ValueError:  # ImageError, or the stricter strippers' MetadataError: a stream they cannot walk
        return None


_WEBP_IMAGE_CHUNKS = {b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF", b"ICCP"}
_VP8X_EXIF_XMP = 0x08 | 0x04


def _strip_webp(data: bytes) -> bytes:
    """Only the chunks that make the image (EXIF, XMP and unknown chunks dropped, their VP8X flags cleared,
    nothing after the RIFF kept); ValueError when the RIFF structure is broken."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP stream")
    (size,) = struct.unpack("<I", data[4:8])
    end, pos, chunks = min(len(data), size + 8), 12, []
    while pos + 8 <= end:
        kind, (length,) = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])
        stop = pos + 8 + length + (length & 1)
        if stop > end:
            raise ValueError(f"WebP chunk {kind!r} runs past the end of the stream")
        if kind == b"VP8X":
            chunk = bytearray(data[pos:stop])
            chunk[8] &= ~_VP8X_EXIF_XMP & 0xFF
            chunks.append(bytes(chunk))
        elif kind in _WEBP_IMAGE_CHUNKS:
            chunks.append(data[pos:stop])
        pos = stop
    if pos != end:
        raise ValueError("WebP stream ends inside a chunk header")
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _webp_stripper():
    try:  # the project's own, where this version has one
        from ..imaging.metadata import strip_webp_metadata
    except ImportError:
        return _strip_webp
    return strip_webp_metadata


def _encoded(decoded, pil_format: str, quality: int) -> bytes:
    image = _in_format_mode(decoded.image, pil_format).copy()
    image.info = {k: v for k, v in image.info.items() if k == "transparency"}  # Pillow carries comments along otherwise
    buffer = io.BytesIO()
    if pil_format == "PNG":
        image.save(buffer, format="PNG")
    elif pil_format == "WEBP" and decoded.format in ("PNG", "WEBP"):  # keep in step with publish_image's "lossless"
        image.save(buffer, format="WEBP", lossless=True)  # no new generation of loss
    else:
        image.save(buffer, format=pil_format, quality=quality)
    return buffer.getvalue()


def _in_format_mode(image: PILImage.Image, pil_format: str) -> PILImage.Image:
    if pil_format == "PNG":
        return image if image.mode in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16") else to_rgb(image)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        image = image.convert("RGBA")
        if pil_format == "WEBP":
            return image
        background = PILImage.new("RGBA", image.size, (255, 255, 255, 255))
        return PILImage.alpha_composite(background, image).convert("RGB")
    if image.mode == "L" and pil_format == "JPEG":
        return image
    return to_rgb(image)


# ----------------------------------------------------------------------------- shards

def write_shards(prepared, folder: Path, image_format: str = "auto", quality: int = 90,
                 max_shard_size: int = 500 * 2**20, max_pixels: Optional[int] = None) -> tuple:
    """Parquet shards ``data/<split>-0000i-of-0000n.parquet``; (their paths in the repo, image files per ``how``).

    ``max_pixels``: the decompression limit for the safe images (None: none; they are the transform's own output).
    """
    from datasets import Image

    ds = prepared.dataset
    estimate = ds.data.nbytes * len(ds) / max(1, ds.data.num_rows)
    num_shards = max(1, math.ceil(estimate / max_shard_size))
    (folder / DATA_DIR).mkdir(parents=True, exist_ok=True)
    paths, offset, how = [], 0, dict.fromkeys((KEPT, RESTRIPPED, REENCODED, REENCODED_LOSSY), 0)
    kept_media = media_columns(ds.features, skip=(prepared.image_column,))  # the safe image is written as bytes below
    for index in range(num_shards):
        shard = ds.shard(num_shards, index, contiguous=True)
        encoder = _ShardEncoder(prepared.name, prepared.image_column, offset, image_format, quality, max_pixels)
        shard = shard.map(
            encoder, batched=True, batch_size=32, with_indices=True, keep_in_memory=True,
            desc=f"Checking images ({prepared.name}, shard {index + 1}/{num_shards})",
        )
        for outcome in shard[_HOW_COLUMN]:
            how[outcome] += 1
        shard = shard.remove_columns(_HOW_COLUMN).cast_column(prepared.image_column, Image())
        if kept_media:  # bytes, not paths of this machine
            shard = embed_media(shard, kept_media, prepared.name)
        path = f"{DATA_DIR}/{prepared.name}-{index:05d}-of-{num_shards:05d}.parquet"
        shard.to_parquet(str(folder / path))
        paths.append(path)
        offset += len(shard)
    return paths, how


class _ShardEncoder:
    """The ``map`` function that checks (and where needed cleans or re-encodes) one shard's images; errors name the row."""

    def __init__(self, split, column, offset, image_format, quality, max_pixels=None):
        self.split, self.column, self.offset = split, column, offset
        self.image_format, self.quality, self.max_pixels = image_format, quality, max_pixels

    def __call__(self, batch, indices):
        images, outcomes = [], []
        for index, value in zip(indices, batch[self.column]):
            try:
                data, how = publish_image(value, self.image_format, self.quality, self.max_pixels)
            except ImageError as e:
                raise ValueError(f"Split {self.split!r}, row {self.offset + index}: the safe image cannot be read ({e})") from None
            images.append({"bytes": data, "path": None})  # a path could carry a private file name
            outcomes.append(how)
        return {self.column: images, _HOW_COLUMN: outcomes}
