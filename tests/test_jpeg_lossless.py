"""Region edits of a JPEG keep every coefficient, and so every pixel, outside the edited blocks."""

import io
import struct

import jpeglib
import numpy as np
import pytest
import scipy.ndimage as ndimage
import skimage.data
from PIL import Image

from u2s_datasets.imaging.metadata import strip_jpeg_metadata
from u2s_datasets.imaging.jpeg_lossless import (
    UPSAMPLING_REACH,
    UnsupportedJpeg,
    edit_jpeg_region,
    parse_layout,
    touched_blocks,
    touched_pixels,
)
from u2s_datasets.samples import sample_images


def jpeg_bytes(image: Image.Image, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **params)
    return buffer.getvalue()


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data))).astype(np.int16)


def coefficients(data: bytes, tmp_path, name: str) -> list:
    path = tmp_path / name
    path.write_bytes(data)
    jpeg = jpeglib.read_dct(str(path))
    return [c for c in (jpeg.Y, jpeg.Cb, jpeg.Cr) if c is not None]


def feathered_mask(shape, boxes) -> np.ndarray:
    """Rectangles with a soft edge, as the transform's feathered regions have."""
    mask = np.zeros(shape, np.float32)
    for top, left, bottom, right in boxes:
        mask[top:bottom, left:right] = 1.0
    mask = ndimage.gaussian_filter(mask, 3)
    mask[mask < 0.02] = 0
    return mask


def composited(source: bytes, mask: np.ndarray) -> Image.Image:
    """The source with its masked part inverted and blended in by the mask (0 keeps the pixel)."""
    original = np.asarray(Image.open(io.BytesIO(source)))
    weight = mask if original.ndim == 2 else mask[..., None]
    blended = np.rint(original * (1 - weight) + (255 - original.astype(np.float32)) * weight).astype(np.uint8)
    result = np.where(weight > 0, blended, original)
    return Image.fromarray(result, "L" if original.ndim == 2 else "RGB")


def astronaut(size=(301, 250)) -> Image.Image:
    return Image.fromarray(skimage.data.astronaut()).resize(size)


# name -> (image, Pillow save options): real photos at several qualities and samplings, sizes not multiples of 16
SOURCES = {
    "420_q85": lambda: (astronaut(), dict(quality=85, subsampling=2)),
    "420_q70_optimized_restarts": lambda: (astronaut(), dict(quality=70, subsampling=2, optimize=True,
                                                             restart_marker_rows=1)),
    "422_q92": lambda: (Image.fromarray(skimage.data.coffee()).resize((250, 171)), dict(quality=92, subsampling=1)),
    "444_q75": lambda: (Image.fromarray(skimage.data.chelsea()).resize((227, 150)), dict(quality=75, subsampling=0)),
    "gray_q90": lambda: (Image.fromarray(skimage.data.camera()).resize((203, 197)), dict(quality=90)),
    "progressive_420_q80": lambda: (sample_images()["grace_hopper"].convert("RGB").resize((230, 290)),
                                    dict(quality=80, subsampling=2, progressive=True)),
}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_only_blocks_meeting_the_mask_change(name, tmp_path):
    image, params = SOURCES[name]()
    source = jpeg_bytes(image, **params)
    height, width = image.size[1], image.size[0]
    # One region inside, one across the bottom-right border.
    mask = feathered_mask((height, width), [(40, 50, 90, 117), (height - 30, width - 45, height, width)])
    edited = composited(source, mask)
    out = edit_jpeg_region(source, edited, mask)

    layout = parse_layout(out)
    assert not layout.progressive and layout.sampling == parse_layout(source).sampling

    # Coefficients: the source's outside the touched blocks, the edited image's own DCT inside them.
    before, after = coefficients(source, tmp_path, "source.jpg"), coefficients(out, tmp_path, "out.jpg")
    reencoded = coefficients(jpeg_bytes(edited, qtables=Image.open(io.BytesIO(source)).quantization,
                                        subsampling=params.get("subsampling", 0)), tmp_path, "edited.jpg")
    touched = touched_blocks(parse_layout(source), mask)
    partly = touched_blocks(parse_layout(source), (mask < 1).astype(np.float32))
    for old, new, target, blocks in zip(before, after, reencoded, touched):
        assert old.shape == new.shape == blocks.shape + (8, 8)
        assert 0 < blocks.mean() < 0.3
        assert np.array_equal(new[~blocks], old[~blocks])
        assert np.array_equal(new[blocks], target[blocks])
    # Every luma block whose pixels are all fully inverted changed (inverted chroma can stay near grey).
    inverted = touched[0] & ~partly[0]
    assert inverted.any() and (after[0] != before[0]).any(axis=(2, 3))[inverted].all()

    # The blocks are the ones whose pixels meet the mask, and no further than one MCU away.
    area = touched_pixels(source, mask)
    assert area[mask > 0].all() and not area[~ndimage.binary_dilation(mask > 0, np.ones((3, 3)), iterations=15)].any()

    # Pixels: bit-identical outside the touched blocks and the upsampling reach, inverted inside the mask.
    margin = ndimage.binary_dilation(area, structure=np.ones((3, 3)), iterations=UPSAMPLING_REACH)
    old_pixels, new_pixels = decoded(source), decoded(out)
    assert np.array_equal(new_pixels[~margin], old_pixels[~margin])
    assert np.abs(new_pixels - old_pixels)[mask == 1].mean() > 40

    assert 0.9 < len(out) / len(source) < 1.05


def test_chroma_upsampling_reach_is_measured(tmp_path):
    """Subsampled chroma moves pixels just outside the touched blocks, and never further than the reach."""
    source = jpeg_bytes(astronaut(), quality=85, subsampling=2)
    mask = feathered_mask((250, 301), [(40, 50, 90, 117)])
    out = edit_jpeg_region(source, composited(source, mask), mask)
    area = touched_pixels(source, mask)
    moved = (decoded(out) != decoded(source)).any(axis=-1)
    assert moved[~area].any()
    assert not moved[~ndimage.binary_dilation(area, structure=np.ones((3, 3)), iterations=UPSAMPLING_REACH)].any()


# ----------------------------------------------------------------------------- metadata

def segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def segments(data: bytes):
    """(marker, payload) of every segment up to the first scan, plus what follows the end marker."""
    found, pos = [], 2
    assert data[:2] == b"\xff\xd8"
    while data[pos + 1] != 0xDA:
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        found.append((data[pos + 1], data[pos + 4:pos + 2 + length]))
        pos += 2 + length
    return found, data[data.rfind(b"\xff\xd9") + 2:]


def planted_source() -> bytes:
    """A JPEG with EXIF (camera, GPS), XMP, IPTC, a comment, a JFIF thumbnail, an ICC profile and a trailer."""
    from PIL import ImageCms

    image = astronaut((160, 120))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "PlantedMake", "PlantedModel", 1
    exif.get_ifd(0x8825)[2] = (48.0, 8.0, 13.0)  # GPS latitude
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = jpeg_bytes(image, quality=90, exif=exif.tobytes(), icc_profile=icc, comment=b"planted comment")
    thumbnail = jpeg_bytes(image.resize((16, 12)))
    jfif_with_thumbnail = b"JFXX\x00\x10" + thumbnail
    xmp = b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>planted xmp</x:xmpmeta>"
    iptc = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x10planted iptc...."
    planted = segment(0xE0, jfif_with_thumbnail) + segment(0xE1, xmp) + segment(0xED, iptc) + segment(0xFE, b"second")
    return data[:2] + planted + data[2:] + b"planted trailer", icc


def test_no_metadata_survives(tmp_path):
    source, icc = planted_source()
    found, trailer = segments(source)
    assert {m for m, _ in found} >= {0xE0, 0xE1, 0xE2, 0xED, 0xFE} and trailer == b"planted trailer"

    for mask in (np.zeros((120, 160), np.float32), feathered_mask((120, 160), [(30, 30, 70, 80)])):
        out = edit_jpeg_region(source, composited(source, mask), mask)
        found, trailer = segments(out)
        assert trailer == b""
        apps = [(m, p) for m, p in found if 0xE0 <= m <= 0xEF or m == 0xFE]
        assert apps[0] == (0xE0, apps[0][1]) and apps[0][1][:5] == b"JFIF\x00" and len(apps[0][1]) == 14
        assert apps[0][1][-2:] == b"\x00\x00"  # no thumbnail
        # The ICC profile is the one the project's cleaner rebuilds: colour tags only, no free text.
        rebuilt = Image.open(io.BytesIO(strip_jpeg_metadata(source))).info["icc_profile"]
        assert [m for m, _ in apps[1:]] == [0xE2] and apps[1][1] == b"ICC_PROFILE\x00\x01\x01" + rebuilt
        for planted in (b"Planted", b"planted", b"Exif", b"xap", b"Photoshop", b"JFXX"):
            assert planted not in out
        reopened = Image.open(io.BytesIO(out))
        assert not reopened.getexif() and "comment" not in reopened.info
        assert reopened.info["icc_profile"] == rebuilt and len(rebuilt) <= len(icc)
        if not mask.any():  # nothing to edit: the same coefficients, only the metadata gone
            for old, new in zip(coefficients(source, tmp_path, "s.jpg"), coefficients(out, tmp_path, "o.jpg")):
                assert np.array_equal(old, new)


# ----------------------------------------------------------------------------- what falls back

def patched(data: bytes, marker: int, offset: int, value: int) -> bytes:
    """``data`` with one byte of the first ``marker`` segment's payload replaced."""
    pos = data.index(bytes([0xFF, marker])) + 4 + offset
    return data[:pos] + bytes([value]) + data[pos + 1:]


def rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return jpeg_bytes(astronaut((64, 48)), exif=exif.tobytes())


@pytest.mark.parametrize("case, message", [
    ("12-bit", "12-bit"),
    ("arithmetic", "arithmetic"),
    ("4:1:1", "sampling"),
    ("rgb", "RGB-coded"),
    ("cmyk", "4-component"),
    ("rotated", "EXIF-rotated"),
    ("truncated", "decode cleanly"),
    ("edited outside the mask", "outside the mask"),
])
def test_unsupported_jpegs_raise_before_libjpeg_sees_them(case, message):
    source = jpeg_bytes(astronaut((64, 48)), quality=90, subsampling=2)
    sof = 0xC0
    source = {
        "12-bit": lambda: patched(source, sof, 0, 12),
        "arithmetic": lambda: source.replace(b"\xff\xc0", b"\xff\xc9", 1),
        "4:1:1": lambda: patched(source, sof, 7, 0x41),
        "rgb": lambda: source[:2] + segment(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x00") + source[2:],
        "cmyk": lambda: jpeg_bytes(astronaut((64, 48)).convert("CMYK")),
        "rotated": rotated,
        "truncated": lambda: source[: len(source) // 2],
        "edited outside the mask": lambda: source,
    }[case]()
    mask = np.zeros((48, 64), np.float32)
    mask[10:20, 10:20] = 1
    mode = "CMYK" if case == "cmyk" else "RGB"
    edited = Image.new(mode, (64, 48)) if case == "edited outside the mask" else None
    if edited is None:
        try:
            edited = composited(source, mask) if mode == "RGB" else Image.new(mode, (64, 48))
        except Exception:  # noqa: BLE001 - sources that no decoder reads still get an edited image
            edited = Image.new(mode, (64, 48))
    with pytest.raises(UnsupportedJpeg, match=message):
        edit_jpeg_region(source, edited, mask)


def test_mismatched_inputs_are_named():
    source = jpeg_bytes(astronaut((64, 48)))
    mask = np.zeros((48, 64), np.float32)
    with pytest.raises(ValueError, match="edited image is RGB 32x48"):
        edit_jpeg_region(source, Image.new("RGB", (32, 48)), mask)
    with pytest.raises(ValueError, match="mask shape"):
        edit_jpeg_region(source, composited(source, mask), mask[:10])
