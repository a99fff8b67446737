"""No metadata carrier survives: a secret and a face thumbnail planted in every carrier of JPEG, PNG,
WebP, GIF, TIFF and AVIF are gone after the transform, the CLI and publishing, on passthrough and
edited rows alike, while passthrough pixels stay exactly as they were."""

import io
import struct
import subprocess
import sys

import datasets
import numpy as np
import pytest
from metadata_carriers import FORMATS, SECRET, embedded_images, faces_in, icc_with_text, planted, secret_found
from PIL import Image, ImageCms

from u2s_datasets import Unsafe2Safe
from u2s_datasets.imaging.decode import decode
from u2s_datasets.inspect.detectors import CenterFaceDetector
from u2s_datasets.imaging.metadata import clean_icc_profile, png_chunks, strip_jpeg_metadata, strip_png_metadata

ROWS = [(fmt, private) for fmt in FORMATS for private in (False, True)]


def _name(fmt, private):
    return f"{fmt.lower()}-{'private' if private else 'clean'}"


def _status(value):
    return value.split(";")[0]


@pytest.fixture(scope="module")
def detector():
    return CenterFaceDetector()


@pytest.fixture(scope="module")
def planted_rows():
    return {_name(fmt, private): planted(fmt, private) for fmt, private in ROWS}


@pytest.fixture(scope="module")
def planted_dataset(planted_rows):
    return datasets.Dataset.from_dict(
        {"image": [{"bytes": data, "path": None} for data in planted_rows.values()], "name": list(planted_rows)},
        features=datasets.Features({"image": datasets.Image(decode=False), "name": datasets.Value("string")}),
    )


def _assert_clean(data: bytes, where: str, detector):
    assert not secret_found(data), f"{where}: the planted secret survived"
    images = embedded_images(data)
    assert images, f"{where}: no image decodes from the output"
    assert faces_in(images, detector) == 0, f"{where}: a face survived in one of {len(images)} embedded images"


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(decode(data, 10**8).image.convert("RGBA"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_planted_images_carry_the_secret_and_hidden_faces(fmt, planted_rows, detector):
    # The check below is only worth something if it finds what was planted.
    data = planted_rows[_name(fmt, False)]
    assert secret_found(data)
    main = _pixels(data)
    hidden = [image for image in embedded_images(data) if image.size != main.shape[1::-1] or not np.array_equal(
        np.asarray(image.convert("RGBA")), main)]
    assert faces_in(hidden, detector) >= 1


def test_transform_leaves_no_carrier(planted_dataset, planted_rows, detector):
    out = planted_dataset.map(Unsafe2Safe(editor="fill"), batched=True, batch_size=4)
    out = out.cast_column("safe_image", datasets.Image(decode=False))
    for name, status, safe in zip(out["name"], out["u2s_status"], out["safe_image"]):
        assert _status(status) == ("edited" if name.endswith("private") else "passthrough"), (name, status)
        _assert_clean(safe["bytes"], name, detector)
        if name.endswith("clean"):  # passthrough: the first frame's pixels, exactly
            assert np.array_equal(_pixels(safe["bytes"]), _pixels(planted_rows[name])), name


def test_cli_and_publish_leave_no_carrier(planted_dataset, tmp_path, detector):
    saved, out, folder, staging = (tmp_path / n for n in ("in", "out", "folder", "staging"))
    planted_dataset.remove_columns("name").save_to_disk(str(saved))  # images only: publishing refuses free text

    def u2s(*args):
        result = subprocess.run([sys.executable, "-m", "u2s_datasets.cli", *args], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]

    u2s("anonymize", str(saved), str(out), "--editor", "fill")
    u2s("anonymize", str(saved), str(folder), "--editor", "fill", "--format", "images")
    u2s("publish", str(out), "someone/safe", "--dry-run", str(staging))

    written = datasets.load_from_disk(str(out)).cast_column("safe_image", datasets.Image(decode=False))
    for index, safe in enumerate(written["safe_image"]):
        _assert_clean(safe["bytes"], f"saved dataset, row {index}", detector)
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix not in (".jsonl", ".json")]
    assert len(files) == len(planted_dataset)
    for path in files:
        _assert_clean(path.read_bytes(), f"image folder, {path.name}", detector)
    published = datasets.load_dataset("parquet", data_files=[str(p) for p in staging.rglob("*.parquet")], split="train")
    published = published.cast_column("image", datasets.Image(decode=False))
    assert len(published) == len(planted_dataset)
    for index, row in enumerate(published):
        _assert_clean(row["image"]["bytes"], f"published, row {index}", detector)
    for path in staging.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


# ----------------------------------------------------------------------------- the rebuilt segments

def _jpeg_segments(data: bytes) -> list:
    segments, pos = [], 2
    while data[pos + 1] != 0xDA:
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        segments.append((data[pos + 1], data[pos + 4:pos + 2 + length]))
        pos += 2 + length
    return segments


def test_jpeg_keeps_a_bare_jfif_adobe_transform_and_a_colour_only_profile(planted_rows):
    data = planted_rows["jpeg-clean"]
    cleaned = strip_jpeg_metadata(data)
    app = [(marker, payload) for marker, payload in _jpeg_segments(cleaned) if 0xE0 <= marker <= 0xEF or marker == 0xFE]
    assert [marker for marker, _ in app] == [0xE0, 0xE2, 0xEE]
    assert app[0][1] == b"JFIF\x00\x01\x01\x01\x00\x48\x00\x48\x00\x00"  # JFIF 1.01, density kept, no thumbnail
    assert app[2][1] == b"Adobe\x00\x64\x00\x00\x00\x00\x01"  # version 100, no flags, the transform as in the source
    assert cleaned.endswith(b"\xff\xd9") and cleaned.count(b"\xff\xd8") == 1
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(cleaned))), np.asarray(Image.open(io.BytesIO(data))))


def test_clean_icc_profile_keeps_colour_and_drops_text():
    planted_profile = icc_with_text()
    clean = clean_icc_profile(planted_profile)
    assert SECRET.encode() not in clean and SECRET.encode() in planted_profile
    profile = ImageCms.ImageCmsProfile(io.BytesIO(clean))
    assert ImageCms.getProfileDescription(profile).strip() == ""
    tags = {clean[132 + 12 * i:136 + 12 * i] for i in range(struct.unpack(">I", clean[128:132])[0])}
    assert {b"rXYZ", b"gXYZ", b"bXYZ", b"rTRC", b"wtpt"} <= tags and not tags & {b"dmnd", b"dmdd", b"zz01"}
    # Colours convert exactly as with the original profile.
    pixels = Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    srgb = ImageCms.createProfile("LAB")
    before = ImageCms.profileToProfile(pixels, ImageCms.ImageCmsProfile(io.BytesIO(planted_profile)), srgb, outputMode="LAB")
    after = ImageCms.profileToProfile(pixels, profile, srgb, outputMode="LAB")
    assert before.tobytes() == after.tobytes()


def test_png_keeps_no_palette_in_truecolour_and_no_animation_chunks(planted_rows):
    data = planted_rows["png-clean"]
    kinds = [kind for kind, _ in png_chunks(strip_png_metadata(data))]
    assert set(kinds) <= {b"IHDR", b"IDAT", b"IEND", b"iCCP"}, kinds
    assert b"PLTE" in [kind for kind, _ in png_chunks(data)] and b"fdAT" in [kind for kind, _ in png_chunks(data)]
