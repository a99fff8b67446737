"""The offline ``local`` preset on real photos: faces and text found, then gone; nothing else touched."""

import io
import re

import datasets
import numpy as np
import pytest
from conftest import CLEAN, FACES, TEXT, rgb
from PIL import Image

from u2s_datasets import Unsafe2Safe
from u2s_datasets.edit.masks import region_mask
from u2s_datasets.inspect.detectors import CenterFaceDetector, TextDetector


@pytest.fixture(scope="module")
def faces():
    return CenterFaceDetector()


@pytest.fixture(scope="module")
def ocr():
    return TextDetector()


def words(detections) -> set:
    return {w.lower() for d in detections for w in re.findall(r"[A-Za-z]{4,}", d.text)}


def run(ds, **overrides):
    transform = Unsafe2Safe(**overrides)
    out = ds.map(transform, batched=True, batch_size=3, features=transform.features(ds.features), load_from_cache_file=False)
    return {row["name"]: row for row in out.cast_column("safe_image", datasets.Image(decode=False))}


def test_detectors_find_faces_and_text_in_real_photos(photo_bytes, faces, ocr):
    for name in FACES:
        assert len(faces(rgb(photo_bytes[name]))) == 1, name
    found = words(ocr(rgb(photo_bytes["page"])))
    assert {"region", "markers", "coins", "background"} <= found
    for name in CLEAN:
        assert faces(rgb(photo_bytes[name])) == [] and ocr(rgb(photo_bytes[name])) == [], name


@pytest.fixture(scope="module")
def blurred(photo_dataset):
    return run(photo_dataset)


def test_private_rows_are_flagged_and_described(blurred):
    for name in FACES:
        row = blurred[name]
        assert row["u2s_status"] == "edited" and row["is_private"]
        assert row["privacy_categories"][0] == "people_faces"
        assert "1 face" in row["private_caption"] and "1 face" not in row["public_caption"]
        assert row["edit_instruction"].startswith("Blur every face")
        assert [r["category"] for r in row["privacy_regions"]].count("people_faces") == 1
    page = blurred["page"]
    assert page["privacy_categories"] == ["text_symbols"]
    assert "Region" in page["private_caption"] and "Region" not in page["public_caption"]


@pytest.mark.parametrize("editor", ["blur", "pixelate", "fill", "inpaint"])
def test_editors_remove_faces_and_text(photo_dataset, photo_bytes, faces, ocr, editor):
    rows = blurred_rows = run(photo_dataset, editor=editor)
    for name in FACES:
        assert faces(rgb(rows[name]["safe_image"]["bytes"])) == [], f"{editor} left a face in {name}"
    before, after = words(ocr(rgb(photo_bytes["page"]))), words(ocr(rgb(blurred_rows["page"]["safe_image"]["bytes"])))
    assert before and not (before & after), f"{editor} left readable words: {before & after}"


def test_pixels_outside_feathered_regions_are_identical(photo_dataset, photo_bytes):
    # Lossless output, so the check reaches the file itself (JPEG inputs otherwise stay JPEG).
    rows = run(photo_dataset, image_format="png")
    transform = Unsafe2Safe()
    for name in (*FACES, *TEXT):
        before, after = rgb(photo_bytes[name]), rgb(rows[name]["safe_image"]["bytes"])
        boxes = [r["box"] for r in rows[name]["privacy_regions"]]
        mask = region_mask((before.shape[1], before.shape[0]), boxes, transform.config.edit.region_margin, transform.config.edit.feather)
        outside = mask == 0
        assert np.array_equal(before[outside], after[outside]), name
        changed = np.abs(before.astype(int) - after.astype(int)).sum(axis=2) > 0
        assert changed[mask == 1].mean() > 0.5, f"{name}: the regions were barely edited"


def test_clean_photos_pass_through_byte_identical(blurred, photo_bytes):
    for name in CLEAN:
        row = blurred[name]
        assert row["u2s_status"] == "passthrough" and not row["is_private"]
        assert row["privacy_regions"] == [] and row["edit_instruction"] == ""
        assert row["safe_image"]["bytes"] == photo_bytes[name]


def test_jpeg_inputs_stay_jpeg(blurred):
    assert blurred["astronaut"]["safe_image"]["bytes"][:2] == b"\xff\xd8"
    assert blurred["camera"]["safe_image"]["bytes"][:4] == b"\x89PNG"


def test_output_schema_is_exact(photo_dataset):
    transform = Unsafe2Safe()
    out = photo_dataset.map(transform, batched=True, features=transform.features(photo_dataset.features))
    expected = {
        "image": datasets.Image(decode=False),
        "name": datasets.Value("string"),
        "safe_image": datasets.Image(),
        "is_private": datasets.Value("bool"),
        "privacy_categories": datasets.List(datasets.Value("string")),
        "private_caption": datasets.Value("string"),
        "public_caption": datasets.Value("string"),
        "edit_instruction": datasets.Value("string"),
        "target_caption": datasets.Value("string"),
        "privacy_regions": datasets.List(
            {"category": datasets.Value("string"), "box": datasets.List(datasets.Value("float32"), length=4), "score": datasets.Value("float32")}
        ),
        "u2s_status": datasets.Value("string"),
    }
    assert out.features == datasets.Features(expected)
    # Without features=, the safe image is still an Image column.
    plain = photo_dataset.select(range(2)).map(Unsafe2Safe(), batched=True)
    assert plain.features["safe_image"] == datasets.Image()


def test_class_label_goes_into_the_captions(photo_dataset):
    ds = photo_dataset.add_column("label", [0, 1, 0, 2, 3, 3])
    names = ["person", "officer", "document", "cup"]
    transform = Unsafe2Safe(class_column="label", class_names=names)
    out = ds.map(transform, batched=True)
    by_name = {r["name"]: r for r in out}
    assert by_name["astronaut"]["public_caption"].startswith("a photo of a person")
    assert by_name["coffee"]["public_caption"] == "a photo of a cup"


def test_iterable_dataset(photo_dataset):
    stream = photo_dataset.to_iterable_dataset().map(Unsafe2Safe(), batched=True, batch_size=4)
    statuses = {row["name"]: row["u2s_status"] for row in stream}
    assert statuses == {"astronaut": "edited", "grace_hopper": "edited", "camera": "edited", "page": "edited",
                        "coffee": "passthrough", "chelsea": "passthrough"}


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16"])
def test_image_modes(photo_bytes, faces, mode):
    source = Image.open(io.BytesIO(photo_bytes["astronaut"])).convert("RGB")
    if mode == "I;16":
        image = Image.fromarray((np.asarray(source.convert("L"), dtype=np.uint16) * 257))
    elif mode == "LA":
        image = source.convert("L").convert("LA")
    else:
        image = source.convert(mode)
    out = Unsafe2Safe()({"image": [image]})
    safe = out["safe_image"][0]
    assert safe.size == image.size
    assert out["u2s_status"][0] == "edited", out["u2s_status"][0]
    assert safe.mode == {"P": "RGB", "1": "L"}.get(mode, mode)  # a blurred 1-bit face needs grey levels
    assert faces(np.asarray(safe.convert("RGB"))) == []


def test_inpaint_on_a_large_face_leaves_no_one_to_recognise():
    from u2s_datasets.evaluation.faces import FaceAnalyzer
    from u2s_datasets.samples import sample_images

    photo = sample_images()["grace_hopper"].resize((1024, 1200))  # a face over 500 px wide: cost is bounded
    out = Unsafe2Safe(editor="inpaint", detect_text=False)({"image": [photo]})
    assert out["u2s_status"][0].split(";")[0] in ("edited", "escalated")
    analyzer = FaceAnalyzer()
    originals = analyzer(np.asarray(photo))
    assert originals, "the photo has a face to hide"
    for face in analyzer(np.asarray(out["safe_image"][0].convert("RGB"))):
        assert not any(analyzer.embedder.same_identity(face.embedding, o.embedding) for o in originals)
