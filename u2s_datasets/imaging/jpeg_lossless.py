"""Edit a region of a JPEG without re-encoding the rest of it.

``edit_jpeg_region(source, edited, mask)`` keeps every DCT coefficient of the source
outside the 8x8 blocks whose pixels meet ``mask > 0``; the blocks that do are replaced by
the quantised DCT of ``edited``, with the source's own quantisation tables and chroma
sampling. Pixels of untouched blocks decode bit for bit as before, except within
``UPSAMPLING_REACH`` pixels of a replaced chroma block: a decoder's "fancy" (triangle)
chroma upsampling blends each chroma sample with its neighbours.

A block is replaced when its own footprint meets the mask: 8x8 pixels for luma, and for
subsampled chroma the 16x8 or 16x16 pixels it covers, so a replaced chroma block spans
its whole MCU. ``touched_pixels`` gives the union of the replaced footprints.

The output is a baseline JPEG (progressive input comes out baseline) with Huffman
tables optimised for its data, and carries no metadata: a bare JFIF header and, when the
source has one, its ICC colour profile (needed to show the pixels in the right colours).
Coefficient I/O goes through ``jpeglib`` (libjpeg-turbo 2.1 inside, MPL-2.0).

What cannot be spliced raises ``UnsupportedJpeg`` before libjpeg sees the file, so a
caller can fall back to a plain re-encode: arithmetic, lossless, hierarchical or 12-bit
coding, CMYK/YCCK/RGB colour, chroma sampling other than 4:4:4, 4:2:2 and 4:2:0, an EXIF
orientation other than 1 (the decoded pixels are then not the stored ones).
"""

import io
import os
import struct
import tempfile
import warnings
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np
from PIL import Image

from .metadata import strip_jpeg_metadata

UPSAMPLING_REACH = 1  # pixels: how far a changed chroma sample moves decoded pixels outside its footprint
LIBJPEG_VERSION = "turbo210"  # the libjpeg inside jpeglib used for coefficient I/O

_SOF_SUPPORTED = {0xC0, 0xC1, 0xC2}  # baseline, extended sequential, progressive; all Huffman-coded
_SOF_OTHER = {0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# (h, v) of luma for the chroma samplings Pillow's encoder can reproduce (chroma is 1x1).
_LUMA_SAMPLING = {(1, 1): 0, (2, 1): 1, (2, 2): 2}  # -> Pillow's ``subsampling`` (4:4:4, 4:2:2, 4:2:0)


class UnsupportedJpeg(ValueError):
    """A JPEG whose coefficients cannot be spliced; re-encode the whole image instead."""


@dataclass
class JpegLayout:
    """What the frame header says about the block grid."""

    width: int
    height: int
    progressive: bool
    sampling: List[Tuple[int, int]]  # (h, v) per component
    icc_segments: List[bytes]  # APP2 ICC_PROFILE segments, marker and length included

    @property
    def mcu_size(self) -> Tuple[int, int]:
        """Pixel (height, width) of one MCU; one block for a single-component image."""
        if len(self.sampling) == 1:
            return 8, 8
        return 8 * max(v for _, v in self.sampling), 8 * max(h for h, _ in self.sampling)

    def block_footprint(self, component: int) -> Tuple[int, int]:
        """Pixel (height, width) that one 8x8 block of ``component`` covers."""
        mcu_h, mcu_w = self.mcu_size
        if len(self.sampling) == 1:
            return 8, 8
        h, v = self.sampling[component]
        return mcu_h // v, mcu_w // h


def parse_layout(source: bytes) -> JpegLayout:
    """Walk the marker segments of ``source`` and check that it can be spliced."""
    if source[:2] != b"\xff\xd8":
        raise UnsupportedJpeg("not a JPEG stream (no start-of-image marker)")
    pos, frame, progressive, icc, qtables, adobe_transform = 2, None, False, [], set(), None
    while True:
        if pos + 4 > len(source) or source[pos] != 0xFF:
            raise UnsupportedJpeg(f"malformed JPEG marker structure at byte {pos}")
        marker = source[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        (length,) = struct.unpack(">H", source[pos + 2 : pos + 4])
        segment = source[pos : pos + 2 + length]
        body = segment[4:]
        if len(segment) != length + 2 or length < 2:
            raise UnsupportedJpeg(f"truncated JPEG segment 0x{marker:02X} at byte {pos}")
        if marker in _SOF_OTHER:
            raise UnsupportedJpeg(f"JPEG coding process SOF{marker - 0xC0} (arithmetic, lossless or hierarchical)")
        if marker == 0xDB:
            qtables |= _qtable_ids(body)
        elif marker == 0xE2 and body[:12] == b"ICC_PROFILE\x00":
            icc.append(segment)
        elif marker == 0xEE and body[:5] == b"Adobe" and len(body) >= 12:
            adobe_transform = body[11]  # 0: no colour transform (RGB or CMYK), 1: YCbCr, 2: YCCK
        elif marker in _SOF_SUPPORTED:
            frame, progressive = _frame(body), marker == 0xC2
        elif marker == 0xDA:
            break
        pos += 2 + length
    if frame is None:
        raise UnsupportedJpeg("JPEG has no frame header before its first scan")
    width, height, sampling, tables = frame
    if len(sampling) == 3 and adobe_transform == 0:
        raise UnsupportedJpeg("RGB-coded JPEG (Adobe header without colour transform)")
    missing = set(tables) - qtables
    if missing:
        raise UnsupportedJpeg(f"JPEG frame uses undefined quantisation table(s) {sorted(missing)}")
    return JpegLayout(width, height, progressive, sampling, icc)


def _qtable_ids(body: bytes) -> set:
    ids, pos = set(), 0
    while pos < len(body):
        precision, table = body[pos] >> 4, body[pos] & 0x0F
        ids.add(table)
        pos += 1 + 64 * (2 if precision else 1)
    return ids


def _frame(body: bytes):
    if len(body) < 6:
        raise UnsupportedJpeg("truncated JPEG frame header")
    precision, height, width, count = struct.unpack(">BHHB", body[:6])
    if precision != 8:
        raise UnsupportedJpeg(f"{precision}-bit JPEG samples (only 8-bit is supported)")
    if width == 0 or height == 0:
        raise UnsupportedJpeg("JPEG frame height is set later in the stream (DNL), or is 0")
    if count not in (1, 3):
        raise UnsupportedJpeg(f"{count}-component JPEG (CMYK/YCCK are not supported)")
    if len(body) < 6 + 3 * count:
        raise UnsupportedJpeg("truncated JPEG frame header")
    components = [body[6 + 3 * i : 9 + 3 * i] for i in range(count)]
    sampling = [(c[1] >> 4, c[1] & 0x0F) for c in components]
    tables = [c[2] for c in components]
    if count == 3:
        if [c[0] for c in components] == list(b"RGB"):
            raise UnsupportedJpeg("RGB-coded JPEG (only YCbCr colour is supported)")
        if sampling[1:] != [(1, 1), (1, 1)] or sampling[0] not in _LUMA_SAMPLING:
            raise UnsupportedJpeg(f"JPEG chroma sampling {sampling} (only 4:4:4, 4:2:2 and 4:2:0)")
    return width, height, sampling, tables


def _orientation(image: Image.Image):
    try:
        return image.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - unreadable EXIF holds no usable orientation
        return None


def _blocks_meeting(inside: np.ndarray, footprint: Tuple[int, int], grid: Tuple[int, int]) -> np.ndarray:
    """Boolean grid: which blocks of ``footprint`` pixels hold any True pixel of ``inside``."""
    fh, fw = footprint
    blocks = np.zeros(grid, dtype=bool)
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    if rows.size == 0:
        return blocks
    # Only the blocks around the region's bounding box are looked at: regions are small, photos large.
    top, bottom, left, right = rows[0] // fh, rows[-1] // fh + 1, cols[0] // fw, cols[-1] // fw + 1
    window = np.zeros(((bottom - top) * fh, (right - left) * fw), dtype=bool)
    part = inside[top * fh : bottom * fh, left * fw : right * fw]
    window[: part.shape[0], : part.shape[1]] = part
    blocks[top:bottom, left:right] = window.reshape(bottom - top, fh, right - left, fw).any(axis=(1, 3))
    return blocks


def _component_grid(layout: JpegLayout, component: int) -> Tuple[int, int]:
    fh, fw = layout.block_footprint(component)
    return -(-layout.height // fh), -(-layout.width // fw)


def touched_blocks(layout: JpegLayout, mask: np.ndarray) -> List[np.ndarray]:
    """Per component, which blocks are re-encoded for ``mask > 0``."""
    inside = mask > 0
    return [_blocks_meeting(inside, layout.block_footprint(c), _component_grid(layout, c))
            for c in range(len(layout.sampling))]


def touched_pixels(source: bytes, mask: np.ndarray) -> np.ndarray:
    """HxW boolean: pixels covered by a block that ``edit_jpeg_region`` replaces for ``mask``.

    Decoded pixels further than ``UPSAMPLING_REACH`` from these stay bit-identical."""
    layout = parse_layout(source)
    covered = np.zeros((layout.height, layout.width), dtype=bool)
    for component, blocks in enumerate(touched_blocks(layout, mask)):
        fh, fw = layout.block_footprint(component)
        grown = np.repeat(np.repeat(blocks, fh, axis=0), fw, axis=1)
        covered |= grown[: layout.height, : layout.width]
    return covered


def _check_inputs(source: bytes, edited: Image.Image, mask: np.ndarray, layout: JpegLayout) -> np.ndarray:
    size = (layout.width, layout.height)
    mode = "L" if len(layout.sampling) == 1 else "RGB"
    if edited.size != size or edited.mode != mode:
        raise ValueError(f"edited image is {edited.mode} {edited.size[0]}x{edited.size[1]}, "
                         f"the JPEG decodes to {mode} {size[0]}x{size[1]}")
    mask = np.asarray(mask)
    if mask.shape != (layout.height, layout.width):
        raise ValueError(f"mask shape {mask.shape} differs from the image's {(layout.height, layout.width)}")
    try:
        decoded = Image.open(io.BytesIO(source))
        if _orientation(decoded) not in (None, 1):
            raise UnsupportedJpeg("EXIF-rotated JPEG: the decoded pixels are not the stored ones")
        with warnings.catch_warnings():  # the caller has already accepted the image's size
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            decoded.load()
    except UnsupportedJpeg:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder complaint means libjpeg may reject it too
        raise UnsupportedJpeg(f"JPEG does not decode cleanly ({type(e).__name__}: {e})") from None
    if decoded.format != "JPEG" or decoded.mode != mode:
        raise UnsupportedJpeg(f"JPEG decodes to {decoded.mode}, expected {mode}")
    differs, outside = np.asarray(decoded) != np.asarray(edited), ~(mask > 0)
    if np.logical_and(differs, outside[..., None] if differs.ndim == 3 else outside).any():
        raise UnsupportedJpeg("edited image differs from the source outside the mask; its edit would be lost")
    return mask


def _mcu_crop(layout: JpegLayout, mask: np.ndarray) -> Tuple[int, int, int, int]:
    """MCU-aligned (top, left, bottom, right) pixel box around every touched MCU."""
    mcu_h, mcu_w = layout.mcu_size
    grid = (-(-layout.height // mcu_h), -(-layout.width // mcu_w))
    rows, cols = np.nonzero(_blocks_meeting(mask > 0, (mcu_h, mcu_w), grid))
    return (rows.min() * mcu_h, cols.min() * mcu_w,
            min((rows.max() + 1) * mcu_h, layout.height), min((cols.max() + 1) * mcu_w, layout.width))


def _component_tables(jpeg) -> List[np.ndarray]:
    return [jpeg.qt[i] for i in jpeg.quant_tbl_no]


def _components(jpeg) -> List[np.ndarray]:
    return [c for c in (jpeg.Y, jpeg.Cb, jpeg.Cr) if c is not None]


def edit_jpeg_region(source: bytes, edited: Image.Image, mask: np.ndarray, keep_icc: bool = True, keep_dpi: bool = True) -> bytes:
    """A JPEG whose coefficients are the source's outside the blocks that meet ``mask > 0``
    and, inside them, the quantised DCT of ``edited`` with the source's tables and sampling.

    ``edited`` is the full-size result (the decoded source's size and mode) and equals the
    decoded source wherever ``mask`` is 0. Raises ``UnsupportedJpeg`` (a ``ValueError``) for
    a JPEG that cannot be spliced, so the caller can re-encode the image instead.
    """
    layout = parse_layout(source)
    mask = _check_inputs(source, edited, mask, layout)
    replacement = None
    if (mask > 0).any():
        top, left, bottom, right = _mcu_crop(layout, mask)
        subsampling = 0 if len(layout.sampling) == 1 else _LUMA_SAMPLING[layout.sampling[0]]
        crop = io.BytesIO()
        try:  # cropped at MCU edges, the crop's blocks are exactly the full image's blocks there
            edited.crop((left, top, right, bottom)).save(
                crop, format="JPEG", qtables=Image.open(io.BytesIO(source)).quantization, subsampling=subsampling)
        except (ValueError, OSError) as e:
            raise UnsupportedJpeg(f"cannot encode with the source's tables ({e})") from None
        replacement = (crop.getvalue(), top, left, touched_blocks(layout, mask))
    try:
        spliced = _splice(source, layout, replacement)
    except OSError as e:  # jpeglib reports libjpeg's errors as OSError
        raise UnsupportedJpeg(f"libjpeg cannot transcode this JPEG ({e})") from None
    # The project's cleaner rebuilds the ICC profile without its free text (desc, cprt, ...).
    return strip_jpeg_metadata(_clean_markers(spliced, layout), keep_icc, keep_dpi)


def _splice(source: bytes, layout: JpegLayout, replacement) -> bytes:
    import jpeglib

    if jpeglib.version.get() != LIBJPEG_VERSION:  # jpeglib's choice of libjpeg is process-wide
        jpeglib.version.set(LIBJPEG_VERSION)
    with tempfile.TemporaryDirectory(prefix="u2s-jpeg-") as folder:
        source_path, crop_path, out_path = (os.path.join(folder, n) for n in ("source.jpg", "crop.jpg", "out.jpg"))
        with open(source_path, "wb") as f:
            f.write(source)
        jpeg = jpeglib.read_dct(source_path)
        components = [c.copy() for c in _components(jpeg)]
        tables = _component_tables(jpeg)
        if replacement is not None:
            data, top, left, touched = replacement
            with open(crop_path, "wb") as f:
                f.write(data)
            crop = jpeglib.read_dct(crop_path)
            if not all(np.array_equal(a, b) for a, b in zip(tables, _component_tables(crop))):
                raise UnsupportedJpeg("the source's quantisation tables cannot be reproduced by the encoder")
            for component, (target, new, blocks) in enumerate(zip(components, _components(crop), touched)):
                fh, fw = layout.block_footprint(component)
                rows, cols = slice(top // fh, top // fh + new.shape[0]), slice(left // fw, left // fw + new.shape[1])
                if target[rows, cols].shape != new.shape:
                    raise UnsupportedJpeg(f"block grid of component {component} does not line up with the source's")
                selected = blocks[rows, cols]
                target[rows, cols][selected] = new[selected]
        jpeg.Y, jpeg.Cb, jpeg.Cr = (components + [None, None])[:3]
        jpeg.markers = []
        jpeg.write_dct(out_path, flags=["+OPTIMIZE_CODING"])
        written = jpeglib.read_dct(out_path)
        # Fail closed: what libjpeg wrote must be exactly the spliced coefficients.
        if len(_components(written)) != len(components) or not all(
                np.array_equal(a, b) for a, b in zip(components, _components(written))) or not all(
                np.array_equal(a, b) for a, b in zip(tables, _component_tables(written))):
            raise UnsupportedJpeg("the written JPEG does not hold the spliced coefficients")
        with open(out_path, "rb") as f:
            return f.read()


def _clean_markers(data: bytes, layout: JpegLayout) -> bytes:
    """SOI, a bare JFIF header, the source's ICC profile, then only the segments that code pixels."""
    jfif = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01"  # version 1.01, aspect ratio 1:1
    out, pos = [b"\xff\xd8", None] + layout.icc_segments, 2
    while pos + 4 <= len(data):
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker == 0xE0 and data[pos + 4 : pos + 9] == b"JFIF\x00" and length >= 16:
            jfif = data[pos + 4 : pos + 16]  # libjpeg's header (the source's density); no thumbnail
        if marker == 0xDA:  # the first scan: the rest is entropy-coded data up to and including EOI
            out[1] = b"\xff\xe0" + struct.pack(">H", 16) + jfif + b"\x00\x00"
            end = data.rfind(b"\xff\xd9")
            out.append(data[pos : end + 2])
            return b"".join(out)
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            out.append(data[pos : pos + 2 + length])
        pos += 2 + length
    raise UnsupportedJpeg("the written JPEG has no scan")
