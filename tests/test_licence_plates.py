"""Licence plates as their own category: a plate drawn into a real photo and read by the real PP-OCR is
labelled ``licence_plates`` (and counts as ``text_symbols``, its taxonomy category), the other text
stays ``text_symbols``, captions name the plate, and counts see it."""

import io
import random
import re

import datasets
import numpy as np
import pytest

from u2s_datasets import CATEGORY_IDS, Unsafe2Safe
from u2s_datasets.hub.provenance import split_counts
from u2s_datasets.inspect.plates import plate_shape, plate_text
from u2s_datasets.records import Region
from u2s_datasets.samples import sample_images
from u2s_datasets.taxonomy import REGION_CATEGORY_IDS, get_category, parent_category
from u2s_datasets.testing.recall_set import FONTS, draw_strings
from u2s_datasets.inspect.verify import _areas


@pytest.mark.parametrize("text", ["AB12 CDE", "AB12CDE", "B MW 1234", "AB-123-CD", "7ABC123", "KR 1AB23", "ABCD 123", "12-ABC-3"])
def test_plate_characters(text):
    assert plate_text(text)


@pytest.mark.parametrize("text", ["Pharmacy 24", "PHARMACY 24", "EXIT", "123456", "A1", "AB12 CDE FG 12 34", "M. Okonkwo",
                                  "AB12  CDE", "AB12/CDE", ""])
def test_not_plate_characters(text):
    assert not plate_text(text)


def test_plate_shape():
    assert plate_shape((0, 0, 100, 25)) and plate_shape((0, 0, 40, 20))
    assert not plate_shape((0, 0, 20, 20)) and not plate_shape((0, 0, 300, 20)) and not plate_shape((0, 0, 25, 100))


def test_the_taxonomy_keeps_its_nine_categories():
    assert len(CATEGORY_IDS) == 9 and "licence_plates" not in CATEGORY_IDS
    assert "licence plates" in get_category("text_symbols").description  # where the paper puts plates
    assert "licence_plates" in REGION_CATEGORY_IDS and parent_category("licence_plates") == "text_symbols"
    assert get_category("licence_plates").name == "Licence plates"


@pytest.fixture(scope="module")
def scene():
    """The coffee photo with a plate, a name tag and a sign drawn on it."""
    specs = [("plate", 24, 0, FONTS[1]), ("name_tag", 20, 0, FONTS[0]), ("plain", 20, 0, FONTS[0])]
    drawn = draw_strings(sample_images()["coffee"].convert("RGB"), specs, random.Random(3), "coffee")
    assert [s.style for s in drawn.strings] == ["plate", "name_tag", "plain"]
    return drawn


@pytest.fixture(scope="module")
def anonymized(scene):
    buffer = io.BytesIO()
    scene.image.save(buffer, format="PNG")
    ds = datasets.Dataset.from_dict({"image": [{"bytes": buffer.getvalue(), "path": None}]},
                                    features=datasets.Features({"image": datasets.Image(decode=False)}))
    return ds.map(Unsafe2Safe(), batched=True)


def _alnum(text):
    return re.sub(r"[^A-Z0-9]", "", text.upper())


def _inside(box, quad, slack=6):
    (qx0, qy0), (qx1, qy1) = quad.min(axis=0), quad.max(axis=0)
    return box[0] >= qx0 - slack and box[1] >= qy0 - slack and box[2] <= qx1 + slack and box[3] <= qy1 + slack


def test_a_drawn_plate_is_labelled_licence_plates(scene, anonymized):
    row = anonymized[0]
    plate, tag, sign = scene.strings
    regions = row["privacy_regions"]
    plates = [r for r in regions if r["category"] == "licence_plates"]
    assert len(plates) == 1 and _inside(plates[0]["box"], plate.quad), (plates, plate.quad)
    text = [r for r in regions if r["category"] == "text_symbols"]
    assert len(text) == 2 and all(any(_inside(r["box"], s.quad) for r in text) for s in (tag, sign)), text
    assert row["privacy_categories"] == ["text_symbols", "licence_plates"]
    assert _alnum(plate.text) in _alnum(row["private_caption"])
    assert "the licence plate '" in row["private_caption"]
    assert row["public_caption"] == "a photo with a blurred licence plate and blurred text"
    assert row["edit_instruction"].startswith("Blur all text and every licence plate")
    assert row["u2s_status"] == "edited"
    # The plate's pixels were edited.
    x0, y0, x1, y1 = (int(v) for v in plates[0]["box"])
    before, after = np.asarray(scene.image).astype(int), np.asarray(row["safe_image"].convert("RGB")).astype(int)
    assert (np.abs(before - after)[y0:y1, x0:x1].max(axis=2) > 0).mean() > 0.8


def test_counts_and_the_verifier_see_plates(anonymized):
    counts = split_counts(anonymized, 0, {})
    assert counts["per_category"] == {"licence_plates": 1, "text_symbols": 1}
    # After editing, a plate region is searched for text again, as any text region is, and not for faces.
    plate = Region("licence_plates", (100, 100, 200, 130), 0.9, "AB12CDE")
    assert _areas([plate], "text", (600, 400)) and not _areas([plate], "faces", (600, 400))
