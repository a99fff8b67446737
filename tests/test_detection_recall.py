"""The local preset leaves nothing an independent reader can read or re-identify.

A small slice of ``benchmarks/bench_recall.py``: strings drawn on the sample photos
(turned, vertical, inverse, 10-16 px) judged by RapidOCR with its default settings, and
faces pasted into 3000-4000 px photos judged by CenterFace at a low threshold plus dlib.
"""

import io
import random

import datasets
import numpy as np
import pytest
from PIL import Image, ImageOps

from u2s_datasets import Unsafe2Safe
from u2s_datasets.samples import sample_images
from u2s_datasets.taxonomy import parent_category
from u2s_datasets.testing.recall_set import face_set, paste_faces, text_set
from u2s_datasets.testing.readers import FaceJudge, StringReader


@pytest.fixture(scope="module")
def reader():
    return StringReader()


@pytest.fixture(scope="module")
def judge():
    return FaceJudge()


def encode(image: Image.Image, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, **params)
    return buffer.getvalue()


def anonymise(encoded: list, **settings) -> list:
    """Rows of ``Unsafe2Safe(**settings)`` through ds.map, safe images decoded upright."""
    transform = Unsafe2Safe(**settings)
    ds = datasets.Dataset.from_dict({"image": [{"bytes": b, "path": None} for b in encoded]},
                                    features=datasets.Features({"image": datasets.Image(decode=False)}))
    out = ds.map(transform, batched=True, batch_size=4, features=transform.features(ds.features), load_from_cache_file=False)
    rows = list(out.cast_column("safe_image", datasets.Image(decode=False)))
    for row in rows:
        row["rgb"] = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(row["safe_image"]["bytes"]))).convert("RGB"))
    return rows


def covered(box: tuple, regions: list, category: str) -> float:
    """The largest fraction of ``box`` that one region of ``category`` (or of one of its subcategories) covers."""
    x0, y0, x1, y1 = box
    best = 0.0
    for region in regions:
        if parent_category(region["category"]) != category:  # a licence plate is text
            continue
        a, b, c, d = region["box"]
        overlap = max(0.0, min(x1, c) - max(x0, a)) * max(0.0, min(y1, d) - max(y0, b))
        best = max(best, overlap / ((x1 - x0) * (y1 - y0)))
    return best


@pytest.fixture(scope="module")
def strings(reader):
    images = text_set(count=4, per_image=4, seed=1)
    rows = anonymise([encode(item.image) for item in images])
    return images, rows


def test_turned_vertical_inverse_and_small_strings_are_found_and_unreadable(strings, reader):
    images, rows = strings
    readable_before, readable_after, total = [], [], 0
    for item, row in zip(images, rows):
        before = reader.readable_strings(np.asarray(item.image), item.strings)
        readable_before += before
        readable_after += reader.readable_strings(row["rgb"], item.strings)
        total += len(item.strings)
        for s in before:  # every string the reader could read was boxed as text
            x0, y0 = s.quad.min(axis=0)
            x1, y1 = s.quad.max(axis=0)
            assert covered((x0, y0, x1, y1), row["privacy_regions"], "text_symbols") > 0.5, (s.text, s.style, s.height, s.angle)
    kinds = {(s.style, s.height <= 16, s.angle in (90, -90), s.angle not in (0, 90, -90)) for s in readable_before}
    assert any(style == "inverse" for style, *_ in kinds) and any(small for _, small, *_ in kinds)
    assert any(vertical for *_, vertical, _ in kinds) and any(turned for *_, turned in kinds)
    assert len(readable_before) >= 0.75 * total
    assert len(readable_after) <= 0.02 * total, [s.text for s in readable_after]


def large_photo_with_faces(width: int, height: int, specs: list, seed: int = 0):
    background = sample_images()["china"].convert("RGB").resize((width, height), Image.BICUBIC)
    item = paste_faces(background, specs, random.Random(seed))
    assert len(item.faces) == len(specs), "the photo has room for every face"
    return item


def assert_faces_gone(item, row, judge):
    original = np.asarray(item.image)
    for face in item.faces:
        assert judge.reidentified(original, face), f"the pasted {face.width} px face is recognisable in the input"
        assert covered(face.box, row["privacy_regions"], "people_faces") > 0.5, f"{face.width} px face at {face.angle} degrees not found"
        assert not judge.reidentified(row["rgb"], face), f"{face.width} px face at {face.angle} degrees still recognisable"


def test_faces_24_to_120_px_in_a_large_photo_are_found_and_unrecognisable(judge):
    specs = [("astronaut", 24, 0), ("grace_hopper", 32, 20), ("camera", 48, 0), ("astronaut", 64, -20),
             ("grace_hopper", 80, 0), ("camera", 120, 10)]
    item = large_photo_with_faces(3600, 900, specs)
    (row,) = anonymise([encode(item.image)])
    assert_faces_gone(item, row, judge)


def test_turned_faces_in_a_large_photo_are_found_and_unrecognisable(judge):
    # Turned 45 degrees, CenterFace sees no face at all: only the turned passes over the
    # finer levels find these (the whole photo turned, at 1024 px, makes them 6-12 px).
    specs = [("grace_hopper", 24, -45), ("camera", 48, 45), ("astronaut", 32, -45)]
    item = large_photo_with_faces(3600, 900, specs, seed=5)
    (row,) = anonymise([encode(item.image)])
    assert_faces_gone(item, row, judge)


def test_the_recall_sets_faces_are_all_unrecognisable(judge):
    # benchmarks/bench_recall.py's face set: 21 faces of 16-120 px at 0, 20 and -45 degrees in a
    # 3000- and a 4000-px photo. The 16-24 px turned ones score 0.03-0.1 in every search and are
    # only found as small weak finds of the turned searches, confirmed zoomed at their own turn.
    images = face_set(2)
    rows = anonymise([encode(item.image) for item in images])
    left = [(face.width, face.angle) for item, row in zip(images, rows) for face in item.faces if judge.reidentified(row["rgb"], face)]
    assert sum(len(item.faces) for item in images) == 21
    assert left == []


def test_small_turned_faces_in_small_photos_are_all_unrecognisable(judge):
    # benchmarks/bench_recall.py's small-photo set: 14 faces of 16 and 20 px turned by -45..45 degrees
    # in 512- and 640-px photos. A 16 px face turned by 20 degrees scores about 0.08 on the finer
    # upright level and in the 45-degree view: only the small finds' second look finds it.
    images = face_set(4, widths=(16, 20), angles=(-45, -30, -20, 0, 20, 30, 45), long_side=(512, 640))
    rows = anonymise([encode(item.image) for item in images])
    assert sum(len(item.faces) for item in images) == 14
    assert all(judge.reidentified(np.asarray(item.image), face) for item in images for face in item.faces)
    left = [(face.width, face.angle) for item, row in zip(images, rows) for face in item.faces if judge.reidentified(row["rgb"], face)]
    assert left == []


def test_a_20_px_face_in_a_4000_px_photo(judge):
    item = large_photo_with_faces(4000, 700, [("astronaut", 20, 0)], seed=3)
    (row,) = anonymise([encode(item.image)])
    assert_faces_gone(item, row, judge)


def test_face_in_an_exif_rotated_photo(judge):
    # Stored sideways with orientation 6 ("turn 90 degrees clockwise to show"): only the
    # upright view shows an upright face.
    upright = sample_images()["grace_hopper"].convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(stored, exif=exif)
    assert np.array_equal(np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data)))).shape, np.asarray(upright).shape)
    (row,) = anonymise([data])
    assert row["is_private"] and "people_faces" in row["privacy_categories"]
    shown = np.ascontiguousarray(row["rgb"])
    assert shown.shape == np.asarray(upright).shape, "the safe image shows upright, as the input does"
    original = judge.original("grace_hopper")
    before = np.asarray(upright)
    assert any(judge.embedder.same_identity(judge.embedder.embed(before, f.box), original) for f in judge.detector(before))
    for face in judge.detector(shown):
        assert not judge.embedder.same_identity(judge.embedder.embed(shown, face.box), original)


def test_grace_hoppers_name_tag_is_found_and_unreadable(reader):
    data = encode(sample_images()["grace_hopper"].convert("RGB"))
    assert any("HOP" in text.upper() for text in reader.read(np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))))
    (row,) = anonymise([data])
    assert "text_symbols" in row["privacy_categories"] and "HOPP" in row["private_caption"].upper()
    assert not any("HOP" in text.upper() for text in reader.read(row["rgb"]))


def test_a_large_photo_read_by_regions_gives_the_same_finds():
    # Photos from LARGE_IMAGE pixels on are read tile by tile from the PIL image, never copied
    # whole into an array: the detectors must find the same faces and lines that way.
    from PIL import ImageDraw, ImageFont

    from u2s_datasets.inspect.detectors import CenterFaceDetector, RegionReader, TextDetector
    from u2s_datasets.testing.recall_set import font_path

    item = large_photo_with_faces(3600, 900, [("grace_hopper", 32, 0), ("camera", 48, -45)], seed=7)
    image = item.image.copy()
    ImageDraw.Draw(image).text((200, 700), "Harbour Road 14", font=ImageFont.truetype(font_path("DejaVuSans.ttf"), 18), fill=(10, 10, 10))
    array, reader = np.asarray(image), RegionReader(image)
    assert reader.shape == array.shape and np.array_equal(reader[100:300, 2000:2600], array[100:300, 2000:2600])
    faces = CenterFaceDetector(min_face=16, angles=(-45, 45), proposal_threshold=0.1, turned_min_face=24)
    by_regions, whole = faces(reader), faces(array)
    for face in item.faces:
        cx, cy = face.center
        assert any(f.box[0] <= cx <= f.box[2] and f.box[1] <= cy <= f.box[3] for f in by_regions), (face.width, face.angle)
    assert len(by_regions) == len(whole)
    text = TextDetector(min_side=736, orientations=True, tile=1024)
    read_by_regions = {t.text for t in text(reader)}
    assert {t.text for t in text(array)} <= read_by_regions and any("Harbour" in t for t in read_by_regions)
