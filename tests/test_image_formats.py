"""Odd formats keep their fidelity: 16-bit colour, floating-point samples, alpha, frames and pages,
on real photos, through the transform and the image functions it uses."""

import io
import struct
import zlib

import cv2
import datasets
import numpy as np
import pytest
from PIL import Image
import skimage.data
from photos import astronaut, coffee, page

from u2s_datasets import Unsafe2Safe
from u2s_datasets.edit.masks import region_mask
from u2s_datasets.imaging.compose import compose
from u2s_datasets.imaging.decode import decode
from u2s_datasets.imaging.encode import encode, passthrough_bytes
from u2s_datasets.imaging.modes import inspection_views, to_rgb
from u2s_datasets.inspect.detectors import TextDetector


@pytest.fixture(scope="module")
def transform():
    return Unsafe2Safe(editor="fill")


def _run(transform, data: bytes) -> dict:
    ds = datasets.Dataset.from_dict({"image": [{"bytes": data, "path": None}]},
                                    features=datasets.Features({"image": datasets.Image(decode=False)}))
    row = ds.map(transform, batched=True).cast_column("safe_image", datasets.Image(decode=False))[0]
    row["status"] = row["u2s_status"].split(";")[0]
    return row


def _mask(transform, row, size) -> np.ndarray:
    settings = transform.config.edit
    return region_mask(size, [r["box"] for r in row["privacy_regions"]], settings.region_margin, settings.feather)


def _swap(pixels: np.ndarray) -> np.ndarray:
    """RGB(A) <-> BGR(A), OpenCV's order."""
    return np.ascontiguousarray(pixels[..., [2, 1, 0, 3][:pixels.shape[2]]])


def _cv2_bytes(rgb: np.ndarray, extension: str) -> bytes:
    ok, data = cv2.imencode(extension, _swap(rgb))
    assert ok
    return data.tobytes()


def _cv2_read(data: bytes) -> np.ndarray:
    return _swap(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED))


def _png16(rgb: np.ndarray) -> bytes:
    """A 16-bit RGB(A) PNG written here, byte by byte, so no library reads its own writing back."""
    height, width, channels = rgb.shape
    rows = rgb.astype(">u2").reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 16, 2 if channels == 3 else 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _sixteen_bit(rgb: np.ndarray) -> np.ndarray:
    """A 16-bit photo whose low bits carry detail an 8-bit read would lose."""
    noise = np.random.default_rng(0).integers(0, 256, rgb.shape, dtype=np.uint16)
    return rgb.astype(np.uint16) * 256 + noise


# ----------------------------------------------------------------------------- 16-bit colour

def test_16bit_png_edit_keeps_every_bit_outside_the_regions(transform):
    original = _sixteen_bit(astronaut())
    row = _run(transform, _png16(original))
    assert row["status"] == "edited" and row["privacy_regions"]
    out = _cv2_read(row["safe_image"]["bytes"])
    assert out.dtype == np.uint16 and out.shape == original.shape
    mask = _mask(transform, row, (512, 512))
    assert np.array_equal(out[mask == 0], original[mask == 0])
    assert np.abs(out[mask == 1].astype(np.int64) - original[mask == 1]).mean() > 1000  # the face was filled


def test_16bit_png_passes_through_with_every_bit(transform):
    original = _sixteen_bit(coffee()[:200, :300])
    row = _run(transform, _png16(original))
    assert row["status"] == "passthrough"
    assert np.array_equal(_cv2_read(row["safe_image"]["bytes"]), original)


# ----------------------------------------------------------------------------- floating point

def test_float_rgb_tiff_in_unit_range_is_seen_and_kept_at_16_bits(transform):
    original = (astronaut() / 255).astype(np.float32)
    data = _cv2_bytes(original, ".tiff")
    decoded = decode(data, 10**8)
    view = np.asarray(to_rgb(decoded.image))
    assert abs(view.astype(float).mean() - astronaut().mean()) < 1  # not black: the detectors see the photo
    row = _run(transform, data)
    assert row["status"] == "edited"
    out = _cv2_read(row["safe_image"]["bytes"])
    assert out.dtype == np.uint16  # Pillow opens no floating-point colour file: the closest it opens
    mask = _mask(transform, row, (512, 512))
    assert np.array_equal(out[mask == 0], np.round(original * 65535)[mask == 0])
    assert not np.array_equal(out[mask == 1], np.round(original * 65535)[mask == 1])
    notes = []
    encode(decoded.image, "TIFF", 90, "auto", notes)
    assert notes == ["floating-point colour written as 16-bit PNG"]


def test_float_gray_tiff_in_unit_range_is_seen_and_kept(transform):
    original = (skimage.data.camera() / 255).astype(np.float32)
    buffer = io.BytesIO()
    Image.fromarray(original).save(buffer, format="TIFF")
    assert abs(np.asarray(to_rgb(decode(buffer.getvalue(), 10**8).image)).mean() - skimage.data.camera().mean()) < 1
    row = _run(transform, buffer.getvalue())
    assert row["status"] == "edited"
    out = Image.open(io.BytesIO(row["safe_image"]["bytes"]))
    assert out.format == "TIFF" and out.mode == "F"
    mask = _mask(transform, row, original.shape[::-1])
    assert np.array_equal(np.asarray(out)[mask == 0], original[mask == 0])


# ----------------------------------------------------------------------------- frames and pages

def _frames(fmt: str, **params) -> bytes:
    frames = [Image.fromarray(a).resize((160, 120)) for a in (coffee(), astronaut(), page())]
    buffer = io.BytesIO()
    frames[0].convert("RGB").save(buffer, format=fmt, save_all=True, append_images=[f.convert("RGB") for f in frames[1:]],
                                  **params)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt, word, params", [("GIF", "frames", {"duration": 100}), ("PNG", "frames", {"duration": 100}),
                                               ("WEBP", "frames", {"lossless": True}), ("TIFF", "pages", {})])
def test_only_the_first_frame_comes_out_and_it_is_said(fmt, word, params):
    data = _frames(fmt, **params)
    decoded = decode(data, 10**8)
    assert decoded.notes == [f"first of 3 {word} kept"]
    out = Image.open(io.BytesIO(passthrough_bytes(decoded, 90)))
    assert getattr(out, "n_frames", 1) == 1
    first = Image.open(io.BytesIO(data))
    assert np.array_equal(np.asarray(out.convert("RGBA")), np.asarray(first.convert("RGBA")))


# ----------------------------------------------------------------------------- alpha

def test_edits_make_alpha_opaque_inside_and_keep_it_outside(transform):
    rgb = astronaut()
    alpha = np.random.default_rng(1).integers(0, 256, rgb.shape[:2], dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(buffer, format="PNG")
    row = _run(transform, buffer.getvalue())
    assert row["status"] == "edited"
    out = np.asarray(Image.open(io.BytesIO(row["safe_image"]["bytes"])))
    assert out.shape == (512, 512, 4)
    mask = _mask(transform, row, (512, 512))
    assert np.array_equal(out[mask == 0], np.dstack([rgb, alpha])[mask == 0])  # colour and alpha, bit for bit
    assert (out[..., 3][mask == 1] == 255).all()
    inside = (mask > 0) & (mask < 1)
    assert (out[..., 3][inside].astype(int) >= alpha[inside]).all()  # towards opaque with the mask's weight


def test_compose_on_16bit_rgba_keeps_alpha_bits_outside():
    pixels = _sixteen_bit(np.dstack([coffee()[:64, :64], page()[:64, :64, 0]]))
    decoded = decode(_png16(pixels), 10**8)
    mask = np.zeros((64, 64), np.float32)
    mask[10:30, 20:40] = 1
    safe = compose(decoded.image, Image.new("RGB", (64, 64)), mask)
    out = safe.samples()
    assert out.dtype == np.uint16
    assert np.array_equal(out[mask == 0], pixels[mask == 0])
    assert (out[10:30, 20:40, 3] == 65535).all() and (out[10:30, 20:40, :3] == 0).all()


def test_inspection_views_show_text_hidden_in_alpha():
    text = page()[:180, :, 0]
    hidden = np.dstack([np.full(text.shape + (3,), 90, np.uint8), 255 - text])  # the words exist only in alpha
    image = Image.fromarray(hidden, "RGBA")
    detector = TextDetector()
    assert detector(np.asarray(to_rgb(image))) == []
    views = inspection_views(image)
    assert len(views) == 4 and all(v.mode == "RGB" and v.size == image.size for v in views)
    assert all(detector(np.asarray(view)) for view in views[1:])  # over white, over black, alpha
    assert len(inspection_views(Image.fromarray(coffee()))) == 1


def test_16bit_multipage_tiff_keeps_the_first_page_at_16_bits():
    import tifffile

    pages = [_sixteen_bit(coffee()[:80, :120]), _sixteen_bit(astronaut()[:80, :120])]
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.stack(pages), photometric="rgb", description="U2S-SECRET")
    decoded = decode(buffer.getvalue(), 10**8)
    out = passthrough_bytes(decoded, 90)
    assert np.array_equal(_cv2_read(out), pages[0])
    assert decoded.notes == ["first of 2 pages kept", "TIFF written as lossless 16-bit PNG"]
    assert b"U2S-SECRET" in buffer.getvalue() and b"U2S-SECRET" not in out
