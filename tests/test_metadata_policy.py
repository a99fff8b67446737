"""The metadata policy (``keep_metadata``): what is asked for survives byte for byte, what can identify
someone never does, and the policy applied is written into the dataset card and provenance.

The inputs are the planted files of ``metadata_carriers`` (a secret and face thumbnails in every
carrier, an ICC profile with free text, JFIF density) with one more EXIF block in front: GPS
position, a body serial number, a maker note and an EXIF rotation."""

import io
import json
import struct
import zlib

import datasets
import numpy as np
import pytest
from metadata_carriers import SECRET, embedded_images, faces_in, icc_with_text, planted, secret_found
from PIL import Image, ImageOps, TiffImagePlugin

from u2s_datasets import Unsafe2Safe
from u2s_datasets.hub import push_safe_dataset
from u2s_datasets.inspect.detectors import CenterFaceDetector
from u2s_datasets.imaging.metadata import clean_icc_profile, png_chunks

CLEAN_ICC = clean_icc_profile(icc_with_text())  # the profile as it is kept: colour data only, text empty
NEVER = ("gps", "serials", "maker-notes", "thumbnails", "xmp", "iptc", "comments", "exif", "GPS", "serial_numbers", "thumbnail")


@pytest.fixture(scope="module")
def detector():
    return CenterFaceDetector()


def camera_exif(orientation: int) -> bytes:
    """EXIF as a camera writes it: rotation, GPS position, a body serial number, a maker note."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    rational = TiffImagePlugin.IFDRational
    exif.get_ifd(0x8825).update({1: "N", 2: (rational(52), rational(22), rational(15, 10)),
                                 3: "E", 4: (rational(4), rational(53), rational(2))})
    exif.get_ifd(0x8769).update({0xA431: SECRET, 0x927C: SECRET.encode()})
    data = exif.tobytes()
    return data if data.startswith(b"Exif") else b"Exif\x00\x00" + data


def camera_jpeg(private: bool, orientation: int = 6) -> bytes:
    """The planted JPEG (JFIF at 72 dpi with a thumbnail, ICC with text, EXIF, XMP, IPTC, comments, ...)
    with the camera's EXIF first."""
    data = planted("JPEG", private)
    segment = b"\xff\xe1" + struct.pack(">H", len(camera_exif(orientation)) + 2) + camera_exif(orientation)
    return data[:2] + segment + data[2:]


def png_with_density(private: bool) -> bytes:
    """The planted PNG (iCCP with text, text chunks, eXIf, hidden frames, ...) with a pHYs of 300 dpi."""
    data = planted("PNG", private)
    body = struct.pack(">IIB", 11811, 11811, 1)
    chunk = struct.pack(">I", 9) + b"pHYs" + body + struct.pack(">I", zlib.crc32(b"pHYs" + body) & 0xFFFFFFFF)
    ihdr_end = 8 + 8 + 13 + 4
    return data[:ihdr_end] + chunk + data[ihdr_end:]


def anonymized(rows: dict, **settings) -> dict:
    ds = datasets.Dataset.from_dict({"image": [{"bytes": b, "path": None} for b in rows.values()], "name": list(rows)},
                                    features=datasets.Features({"image": datasets.Image(decode=False), "name": datasets.Value("string")}))
    out = ds.map(Unsafe2Safe(editor="fill", **settings), batched=True, load_from_cache_file=False)
    out = out.cast_column("safe_image", datasets.Image(decode=False))
    return {name: (status, safe["bytes"]) for name, status, safe in zip(out["name"], out["u2s_status"], out["safe_image"])}


def jpeg_segments(data: bytes) -> list:
    """(marker, payload) of every segment before the first scan."""
    out, pos = [], 2
    while data[pos + 1] != 0xDA:
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        out.append((data[pos + 1], data[pos + 4:pos + 2 + length]))
        pos += 2 + length
    return out


def jfif_density(data: bytes) -> bytes:
    """Units, X and Y density of the JFIF header."""
    (payload,) = [p for marker, p in jpeg_segments(data) if marker == 0xE0]
    return payload[7:12]


def assert_nothing_forbidden(data: bytes, where: str, detector):
    assert not secret_found(data), f"{where}: a planted secret (serial number, maker note, comment, ...) survived"
    assert b"Exif\x00\x00" not in data and b"eXIf" not in data, f"{where}: EXIF (GPS, serials, maker notes) survived"
    assert not Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825), f"{where}: GPS survived"
    assert b"http://ns.adobe.com/xap" not in data and b"Photoshop 3.0" not in data and b"XML:com.adobe.xmp" not in data, where
    assert faces_in(embedded_images(data), detector) == 0, f"{where}: a face (a thumbnail, a hidden frame) survived"


# ----------------------------------------------------------------------------- the setting


@pytest.mark.parametrize("name", NEVER)
def test_asking_for_what_identifies_is_an_error(name):
    with pytest.raises(ValueError, match=rf"keep_metadata: '{name}' is never kept \(.+\); what can be kept: icc, dpi, orientation-baked"):
        Unsafe2Safe(keep_metadata=("icc", name))


def test_the_setting_and_its_default():
    assert Unsafe2Safe().config.output.keep_metadata == ("dpi", "icc", "orientation-baked")
    with pytest.raises(ValueError, match="Did you mean 'icc'"):
        Unsafe2Safe(keep_metadata=["ICC"])
    with pytest.raises(ValueError, match="'camera-model' is not something that can be kept"):
        Unsafe2Safe(keep_metadata=["camera-model"])
    # One policy, one config hash, in whatever order it is written.
    assert Unsafe2Safe(keep_metadata=["icc", "dpi"]).config.hash() == Unsafe2Safe(keep_metadata=("dpi", "icc", "dpi")).config.hash()
    assert Unsafe2Safe(keep_metadata=["icc"]).config.hash() != Unsafe2Safe().config.hash()


# ----------------------------------------------------------------------------- JPEG


@pytest.fixture(scope="module")
def jpegs():
    return {"clean": camera_jpeg(False), "private": camera_jpeg(True), "upright": camera_jpeg(False, orientation=1)}


def test_default_keeps_the_rebuilt_profile_density_and_rotation(jpegs, detector):
    out = anonymized(jpegs)
    source = Image.open(io.BytesIO(jpegs["clean"]))
    for name, (status, data) in out.items():
        assert status.split(";")[0] == ("edited" if name == "private" else "passthrough"), (name, status)
        assert_nothing_forbidden(data, name, detector)
        assert Image.open(io.BytesIO(data)).info["icc_profile"] == CLEAN_ICC, name  # byte for byte
        assert jfif_density(data) == b"\x01\x00\x48\x00\x48", name  # 72 dpi, as the source's JFIF said
    # Rotation 6 is baked into the pixels: the photo comes out turned, and says nothing of it.
    rotated = Image.open(io.BytesIO(out["clean"][1]))
    assert rotated.size == ImageOps.exif_transpose(source).size == source.size[::-1]
    assert not rotated.getexif()
    # An upright photo passes through with its coded data untouched.
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(out["upright"][1]))), np.asarray(Image.open(io.BytesIO(jpegs["upright"]))))


def test_nothing_kept_means_no_profile_no_density_and_pixels_as_stored(jpegs, detector):
    out = anonymized(jpegs, keep_metadata=())
    for name, (status, data) in out.items():
        assert_nothing_forbidden(data, name, detector)
        assert not any(marker == 0xE2 for marker, _ in jpeg_segments(data)) and "icc_profile" not in Image.open(io.BytesIO(data)).info
        assert jfif_density(data) == b"\x00\x00\x01\x00\x01", name  # aspect 1:1, no units
    # Not rotated: the stored pixels, exactly (the coded data is the source's; only segments went).
    stored = Image.open(io.BytesIO(jpegs["clean"]))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(out["clean"][1]))), np.asarray(stored))
    assert out["clean"][0] == "passthrough"


def test_only_what_is_asked_is_kept(jpegs, detector):
    icc_only = anonymized(jpegs, keep_metadata=("icc",))
    dpi_only = anonymized(jpegs, keep_metadata=("dpi", "orientation-baked"))
    for name in jpegs:
        for out in (icc_only, dpi_only):
            assert_nothing_forbidden(out[name][1], name, detector)
        assert Image.open(io.BytesIO(icc_only[name][1])).info["icc_profile"] == CLEAN_ICC
        assert jfif_density(icc_only[name][1]) == b"\x00\x00\x01\x00\x01"
        assert "icc_profile" not in Image.open(io.BytesIO(dpi_only[name][1])).info
        assert jfif_density(dpi_only[name][1]) == b"\x01\x00\x48\x00\x48"


# ----------------------------------------------------------------------------- PNG, WebP, TIFF


def chunks(data: bytes) -> dict:
    return {kind: body for kind, body in png_chunks(data)}


def test_png_keeps_iccp_and_phys_exactly_as_asked(detector):
    rows = {"clean": png_with_density(False), "private": png_with_density(True)}
    kept, stripped = anonymized(rows), anonymized(rows, keep_metadata=())
    for name in rows:
        for out in (kept, stripped):
            assert_nothing_forbidden(out[name][1], name, detector)
        found = chunks(kept[name][1])
        assert found[b"pHYs"] == struct.pack(">IIB", 11811, 11811, 1), name
        name_end = found[b"iCCP"].index(b"\x00")
        assert zlib.decompress(found[b"iCCP"][name_end + 2:]) == CLEAN_ICC, name
        assert b"iCCP" not in chunks(stripped[name][1]) and b"pHYs" not in chunks(stripped[name][1]), name
    # Either way the passthrough pixels are the input's.
    for out in (kept, stripped):
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(out["clean"][1]))), np.asarray(Image.open(io.BytesIO(rows["clean"]))))


def test_webp_and_tiff_keep_the_profile_only_when_asked(detector):
    rows = {"webp": planted("WEBP", False), "tiff": planted("TIFF", False)}
    kept, stripped = anonymized(rows), anonymized(rows, keep_metadata=("dpi",))
    for name in rows:
        assert_nothing_forbidden(kept[name][1], name, detector)
        assert_nothing_forbidden(stripped[name][1], name, detector)
        assert Image.open(io.BytesIO(kept[name][1])).info.get("icc_profile") == CLEAN_ICC, name
        assert not Image.open(io.BytesIO(stripped[name][1])).info.get("icc_profile"), name


# ----------------------------------------------------------------------------- card and provenance


def test_the_policy_applied_is_in_the_card_and_provenance(jpegs, tmp_path):
    transform = Unsafe2Safe(editor="fill", keep_metadata=("icc",))
    ds = datasets.Dataset.from_dict({"image": [{"bytes": jpegs["clean"], "path": None}]},
                                    features=datasets.Features({"image": datasets.Image(decode=False)}))
    safe = ds.map(transform, batched=True, load_from_cache_file=False)
    push_safe_dataset(safe, "org/photos-safe", dry_run=tmp_path / "stage", transform=transform, allow_text_columns=True)
    provenance = json.loads((tmp_path / "stage" / "provenance.json").read_text())
    policy = provenance["anonymization"]["metadata"]
    assert policy["keep_metadata"] == ["icc"] and policy["recorded"] is True
    assert policy["exif_orientation"] == "not applied: pixels as stored, the tag removed"
    assert {"gps", "serials", "maker-notes", "thumbnails"} <= set(policy["never_kept"])
    card = (tmp_path / "stage" / "README.md").read_text()
    assert "Image metadata was removed from every image except the ICC colour profile, rebuilt with its colour data only" in card
    assert "EXIF orientation not applied: pixels as stored" in card and "never kept: gps, serials, maker-notes, thumbnails" in card
    # Publishing strips again and adds nothing back: the kept profile is still the rebuilt one.
    import pyarrow.parquet as pq

    (shard,) = (tmp_path / "stage" / "data").glob("*.parquet")
    published = pq.read_table(shard).column("image").to_pylist()[0]["bytes"]
    assert Image.open(io.BytesIO(published)).info["icc_profile"] == CLEAN_ICC
    assert jfif_density(published) == b"\x00\x00\x01\x00\x01"
