"""Regions a dataset already holds (``regions_column``): DataComp-style relative boxes and pixel boxes
on real photos are edited exactly there, alone or beside the detectors' finds; a malformed box fails
its row closed, with a status that says what is wrong."""

import io

import datasets
import numpy as np
import pytest
from conftest import encode
from PIL import Image

from u2s_datasets import Unsafe2Safe
from u2s_datasets.edit.masks import region_mask
from u2s_datasets.samples import sample_images

BOXES = datasets.List(datasets.List(datasets.Value("float32")))  # DataComp's face_bboxes: a list of [x0, y0, x1, y1] per row


def png(name) -> bytes:
    return encode(sample_images()[name].convert("RGB"))


def dataset(images, boxes, feature=BOXES) -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {"image": [{"bytes": b, "path": None} for b in images], "face_bboxes": boxes, "n": list(range(len(images)))},
        features=datasets.Features({"image": datasets.Image(decode=False), "face_bboxes": feature, "n": datasets.Value("int64")}),
    )


def run(ds, **settings):
    transform = Unsafe2Safe(regions_column="face_bboxes", **settings)
    return ds.map(transform, batched=True, batch_size=8, with_indices=True, load_from_cache_file=False)


def pixels(value) -> np.ndarray:
    data = value["bytes"] if isinstance(value, dict) else value
    if not isinstance(data, bytes):
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        data = buffer.getvalue()
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def changed(a, b) -> np.ndarray:
    return np.abs(a - b).max(axis=2) > 0


def edited_exactly_in(original, safe, boxes, transform=None):
    """Every pixel outside the boxes' feathered masks is the input's; most inside the boxes changed."""
    settings = (transform or Unsafe2Safe()).config.edit
    mask = region_mask(original.shape[1::-1], boxes, settings.region_margin, settings.feather)
    diff = changed(original, safe)
    assert not diff[mask == 0].any(), f"{diff[mask == 0].sum()} pixels changed outside the regions"
    for x0, y0, x1, y1 in boxes:
        assert diff[y0:y1, x0:x1].mean() > 0.8, (x0, y0, x1, y1)


def test_datacomp_relative_boxes_are_blurred_exactly_there():
    coffee = png("coffee")  # 600x400, nothing private of its own
    ds = dataset([coffee, coffee], [[[0.25, 0.125, 0.5, 0.5]], []])
    out = run(ds, regions_mode="only")
    first, second = out[0], out[1]
    assert first["u2s_status"] == "edited"
    assert first["privacy_regions"] == [{"category": "people_faces", "box": [150.0, 50.0, 300.0, 200.0], "score": 1.0}]
    assert first["privacy_categories"] == ["people_faces"]
    assert first["public_caption"] == "a photo with 1 person whose face is blurred"
    edited_exactly_in(pixels(ds[0]["image"]), pixels(first["safe_image"]), [(150, 50, 300, 200)])
    # No boxes: passed through, the very input bytes (a PNG without metadata stays as it was).
    assert second["u2s_status"] == "passthrough" and second["privacy_regions"] == []
    assert out.cast_column("safe_image", datasets.Image(decode=False))[1]["safe_image"]["bytes"] == coffee
    # The input's columns come back as they were.
    assert out["face_bboxes"] == ds["face_bboxes"] and out["n"] == [0, 1]


def test_pixel_boxes_and_the_format_setting():
    coffee = png("coffee")
    boxes = [[[10, 20, 100, 120]], [[0, 0, 1, 1]]]
    auto = run(dataset([coffee] * 2, boxes), regions_mode="only")
    assert auto[0]["u2s_status"] == "edited"
    assert auto[0]["privacy_regions"][0]["box"] == [10.0, 20.0, 100.0, 120.0]
    edited_exactly_in(pixels(coffee), pixels(auto[0]["safe_image"]), [(10, 20, 100, 120)])
    # A box of 0s and 1s is a one-pixel box or the whole image: "auto" will not guess.
    assert auto[1]["u2s_status"].startswith("error: regions_column 'face_bboxes': boxes of only 0 and 1 can be pixels or relative")
    told = run(dataset([coffee] * 2, boxes), regions_mode="only", regions_format="pixels")
    assert told[1]["u2s_status"] == "edited" and told[1]["privacy_regions"][0]["box"] == [0.0, 0.0, 1.0, 1.0]
    # The same numbers read as relative cover the whole photo.
    whole = run(dataset([coffee], [[[0, 0, 1, 1]]]), regions_mode="only", regions_format="relative")
    assert whole[0]["privacy_regions"][0]["box"] == [0.0, 0.0, 600.0, 400.0]


def test_column_boxes_are_added_to_what_the_detectors_find():
    astronaut = png("astronaut")  # 512x512, one face the detectors find
    extra = [0.75, 0.75, 0.875, 0.9375]  # the suit, far from the face: (384, 384, 448, 480)
    alone = Unsafe2Safe()
    plain = datasets.Dataset.from_dict({"image": [{"bytes": astronaut, "path": None}]},
                                       features=datasets.Features({"image": datasets.Image(decode=False)}))
    detected = plain.map(alone, batched=True)[0]
    (face,) = detected["privacy_regions"]
    assert face["category"] == "people_faces"
    merged = run(dataset([astronaut], [[extra]]))[0]
    assert merged["u2s_status"] == "edited"
    assert merged["privacy_regions"] == [face, {"category": "people_faces", "box": [384.0, 384.0, 448.0, 480.0], "score": 1.0}]
    assert merged["private_caption"] == "a photo with 1 face and 1 more face"
    # Everything the column box's mask does not reach is the detectors-only output, pixel for pixel;
    # inside its box the photo changed.
    settings = alone.config.edit
    mask = region_mask((512, 512), [(384, 384, 448, 480)], settings.region_margin, settings.feather)
    before, after, original = pixels(detected["safe_image"]), pixels(merged["safe_image"]), pixels(astronaut)
    assert not changed(before, after)[mask == 0].any()
    assert changed(original, after)[384:480, 384:448].mean() > 0.8
    edited_exactly_in(original, after, [tuple(int(v) for v in face["box"]), (384, 384, 448, 480)])
    # A column box on the face the detectors found is the same finding: captions do not count it twice.
    same = run(dataset([astronaut], [[[v / 512 for v in face["box"]]]]))[0]
    assert same["private_caption"] == detected["private_caption"] == "a photo with 1 face"
    assert len(same["privacy_regions"]) == 2


def test_boxes_as_dicts_keep_their_category():
    coffee = png("coffee")
    feature = datasets.List({"category": datasets.Value("string"), "box": datasets.List(datasets.Value("float32"))})
    boxes = [{"category": "licence_plates", "box": [0.25, 0.5, 0.5, 0.625]}, {"category": None, "box": [0.0, 0.0, 0.125, 0.25]}]
    ds = dataset([coffee], [boxes], feature=feature)
    row = run(ds, regions_mode="only")[0]
    assert [r["category"] for r in row["privacy_regions"]] == ["licence_plates", "people_faces"]
    assert row["privacy_categories"] == ["text_symbols", "licence_plates", "people_faces"]
    assert row["public_caption"] == "a photo with a blurred licence plate and 1 person whose face is blurred"


MALFORMED = [
    ([[0.5, 0.2, 0.3, 0.4]], "box 0 [0.5, 0.2, 0.3, 0.4] is empty: x1 must exceed x0 and y1 must exceed y0"),
    ([[0.1, 0.2, 0.3]], "box 0 is [0.1, 0.2, 0.3], not four finite numbers [x0, y0, x1, y1]"),
    ([[0.1, float("nan"), 0.3, 0.4]], "box 0 is [0.1, nan, 0.3, 0.4], not four finite numbers"),
    ([[0.1, 0.2, 0.3, 0.4], [10, 20, 30, 40]], "this row mixes relative boxes (within 0..1) with pixel boxes"),
    ([[700, 500, 800, 600]], "box 0 [700.0, 500.0, 800.0, 600.0] lies outside the 600x400 image"),
]


def test_a_malformed_box_fails_its_row_closed_and_says_why():
    coffee = png("coffee")
    ds = dataset([coffee] * (len(MALFORMED) + 1), [[[0.25, 0.25, 0.5, 0.5]]] + [boxes for boxes, _ in MALFORMED])
    out = run(ds, regions_mode="only")
    assert out[0]["u2s_status"] == "edited"  # the good row is not held back by the bad ones
    for row, (_, problem) in zip(list(out)[1:], MALFORMED):
        assert row["u2s_status"].startswith("error: regions_column 'face_bboxes': "), row["u2s_status"]
        assert problem in row["u2s_status"], (problem, row["u2s_status"])
        assert row["is_private"] is True and row["privacy_regions"] == []
        assert not pixels(row["safe_image"]).any()  # fully redacted: never the original pixels
    with pytest.raises(ValueError, match=r"Row 2 of the dataset: regions_column 'face_bboxes': box 0 is \[0.1, 0.2, 0.3\]"):
        run(ds.select([0, 0, 2]), regions_mode="only", on_error="raise")
    assert run(ds, regions_mode="only", on_error="drop")["n"] == [0]


def test_relative_boxes_out_of_range_unknown_categories_and_missing_values():
    coffee = png("coffee")
    relative = run(dataset([coffee], [[[0.5, 0.5, 1.5, 0.75]]]), regions_mode="only", regions_format="relative")[0]
    assert relative["u2s_status"].endswith("box 0 [0.5, 0.5, 1.5, 0.75]: relative coordinates must lie within 0..1")
    feature = datasets.List({"category": datasets.Value("string"), "box": datasets.List(datasets.Value("float32"))})
    unknown = run(dataset([coffee], [[{"category": "pets", "box": [0.1, 0.1, 0.2, 0.2]}]], feature), regions_mode="only")[0]
    assert "box 0: unknown category 'pets'" in unknown["u2s_status"]
    # None is not "no boxes": with nothing else looking, the row fails closed; beside the detectors it is their call.
    missing = dataset([coffee], [None])
    assert run(missing, regions_mode="only")[0]["u2s_status"].startswith("error: regions_column 'face_bboxes' is missing (None)")
    assert run(missing)[0]["u2s_status"] == "passthrough"
    with pytest.raises(KeyError, match="regions_column 'boxes' not found"):
        dataset([coffee], [[]]).map(Unsafe2Safe(regions_column="boxes"), batched=True)
    with pytest.raises(ValueError, match="regions_mode='everything' is not one of 'merge', 'only'"):
        Unsafe2Safe(regions_column="face_bboxes", regions_mode="everything")
