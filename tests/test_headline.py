"""The README's headline call on realistic data: clean rows first, decoded columns, every dataset kind."""

import io
import os

import datasets
import numpy as np
import pytest
from PIL import Image

from u2s_datasets import Unsafe2Safe, anonymize
from u2s_datasets.inspect.detectors import CenterFaceDetector

from conftest import encode, rgb

ORDER = ["coffee", "chelsea", "coffee", "astronaut", "page", "grace_hopper"]  # clean rows first


def decoded_dataset(photo_bytes, names=ORDER):
    return datasets.Dataset.from_dict(
        {"image": [{"bytes": photo_bytes[n], "path": None} for n in names], "label": [int(n in ("coffee", "chelsea")) for n in names]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["scene", "object"])}),
    )


def raw(ds, column):
    return [v["bytes"] for v in ds.cast_column(column, datasets.Image(decode=False))[column]]


@pytest.fixture(scope="module")
def clean_first(photo_bytes):
    return decoded_dataset(photo_bytes)


@pytest.mark.parametrize("batch_size", [1, 4, 8])
def test_clean_rows_first_give_the_exact_schema_without_features(clean_first, batch_size):
    u2s = Unsafe2Safe()
    out = clean_first.map(u2s, batched=True, batch_size=batch_size)
    assert out.features == u2s.features(clean_first.features)
    assert out["u2s_status"][:3] == ["passthrough"] * 3 and out["is_private"][3:] == [True] * 3
    with_features = clean_first.map(u2s, batched=True, batch_size=batch_size, features=u2s.features(clean_first.features))
    assert with_features.features == out.features
    assert raw(with_features, "safe_image") == raw(out, "safe_image")


def test_decoded_columns_stay_byte_identical(clean_first, photo_bytes):
    out = clean_first.map(Unsafe2Safe(), batched=True, batch_size=2)
    assert raw(out, "image") == [photo_bytes[n] for n in ORDER]  # the user's originals, not re-encoded
    safe = raw(out, "safe_image")
    assert safe[0] == photo_bytes["coffee"] and safe[1] == photo_bytes["chelsea"]  # passthrough: the input's bytes


@pytest.mark.parametrize("fmt,params", [("JPEG", {"quality": 87}), ("PNG", {}), ("WEBP", {"lossless": True}), ("WEBP", {"quality": 80})])
def test_passthrough_is_the_input_from_every_form(tmp_path, fmt, params):
    data = encode(Image.open(io.BytesIO(encode(np.asarray(Image.new("RGB", (64, 48), (30, 120, 200)))))), fmt, **params)
    path = tmp_path / f"clean.{fmt.lower()}"
    path.write_bytes(data)
    features = datasets.Features({"image": datasets.Image()})
    from_bytes = datasets.Dataset.from_dict({"image": [{"bytes": data, "path": None}]}, features=features)
    from_path = datasets.Dataset.from_dict({"image": [str(path)]}, features=features)
    from_path.save_to_disk(str(tmp_path / "saved"))
    reloaded = datasets.load_from_disk(str(tmp_path / "saved"))
    folder = datasets.load_dataset("imagefolder", data_dir=str(tmp_path), split="train")
    for ds in (from_bytes, from_path, reloaded, folder):
        out = ds.map(Unsafe2Safe(), batched=True)
        assert out["u2s_status"] == ["passthrough"]
        assert raw(out, "safe_image") == [data]
    # Direct calls with decoded PIL images (IterableDataset.map hands those) find the same bytes.
    assert Unsafe2Safe()({"image": [Image.open(io.BytesIO(data))]})["u2s_status"] == ["passthrough"]
    image = Image.open(path)
    image.load()
    out = Unsafe2Safe()({"image": [image]})
    assert out["safe_image"][0].format == fmt
    buffer = io.BytesIO()
    out["safe_image"][0].save(buffer, format=fmt)
    assert buffer.getvalue() == data


def test_dataset_dict_with_an_all_clean_split_has_one_schema(photo_bytes, tmp_path):
    dd = datasets.DatasetDict(
        {"train": decoded_dataset(photo_bytes, ["coffee", "chelsea"]), "test": decoded_dataset(photo_bytes, ["astronaut", "coffee"])}
    )
    u2s = Unsafe2Safe()
    out = dd.map(u2s, batched=True, batch_size=2)
    assert out["train"].features == out["test"].features == u2s.features(dd["train"].features)
    out.save_to_disk(str(tmp_path / "dd"))
    assert datasets.load_from_disk(str(tmp_path / "dd"))["test"]["u2s_status"][0] == "edited"


def test_several_workers_give_the_same_rows(clean_first):
    import torch

    if torch.cuda.is_available():
        import multiprocess

        multiprocess.set_start_method("spawn", force=True)
    u2s = Unsafe2Safe()
    one = clean_first.map(u2s, batched=True, batch_size=2)
    two = clean_first.map(u2s, batched=True, batch_size=2, num_proc=2, with_rank=True)
    assert two.features == one.features
    assert raw(two, "safe_image") == raw(one, "safe_image") and two["u2s_status"] == one["u2s_status"]


def test_class_names_come_from_the_class_label(clean_first):
    out = clean_first.select([0, 3]).map(Unsafe2Safe(), batched=True)
    assert out["public_caption"][0] == "a photo of an object"
    assert out["public_caption"][1].startswith("a photo of a scene")


def test_unbatched_map_says_to_add_batched(clean_first):
    with pytest.raises(TypeError, match="batched=True"):
        clean_first.select([0]).map(Unsafe2Safe())


def test_errors_name_the_dataset_row(photo_bytes):
    ds = datasets.Dataset.from_dict({"image": [photo_bytes["coffee"]] * 5 + [b"junk"]})
    with pytest.raises(ValueError, match="Row 5 of the dataset: not a readable image"):
        anonymize(ds, on_error="raise", batch_size=2)


def test_anonymize_summarises_and_leaves_the_input_folder_alone(clean_first, tmp_path):
    clean_first.save_to_disk(str(tmp_path / "input"))
    before = sorted(os.listdir(tmp_path / "input"))
    safe, summary = anonymize(datasets.load_from_disk(str(tmp_path / "input")), batch_size=4)
    assert sorted(os.listdir(tmp_path / "input")) == before  # no cache file beside the user's data
    assert (summary.rows, summary.flagged, summary.passthrough) == (6, 3, 3)
    assert summary.edited + summary.escalated == 3 and summary.errors == 0
    assert summary.categories == {"people_faces": 2, "text_symbols": 1} or summary.categories["people_faces"] >= 2
    assert safe.features == Unsafe2Safe().features(clean_first.cast_column("image", datasets.Image(decode=False)).features)


def test_anonymize_streams_an_iterable_dataset(clean_first):
    stream = clean_first.to_iterable_dataset()
    safe, summary = anonymize(stream, batch_size=4)
    rows = list(safe)
    assert [r["u2s_status"] for r in rows][:3] == ["passthrough"] * 3
    assert isinstance(rows[3]["safe_image"], Image.Image) and summary.rows == 6 and summary.flagged == 3


# -- editors that misbehave fail closed
class OnePixelEditor:
    uses_seed = False

    def __init__(self, config, rank=None, **shared):
        pass

    def edit(self, requests):
        out = []
        for request in requests:
            array = np.array(request.image)
            x0, y0, _, _ = request.inspection.regions[0].box
            array[int(y0) + 1, int(x0) + 1] ^= 255
            out.append(Image.fromarray(array))
        return out


class NoneEditor(OnePixelEditor):
    def edit(self, requests):
        return [None for _ in requests]


class StalledEditor(OnePixelEditor):
    def edit(self, requests):
        import time

        time.sleep(30)
        return [r.image for r in requests]


@pytest.fixture
def editors(monkeypatch):
    from u2s_datasets import registry

    for name, cls in (("one-pixel", "OnePixelEditor"), ("none", "NoneEditor"), ("stalled", "StalledEditor")):
        monkeypatch.setitem(registry.EDITORS, name, f"test_headline:{cls}")


def test_a_weak_edit_is_caught_and_escalated(photo_bytes, editors):
    out = Unsafe2Safe(editor="one-pixel", detect_text=False)({"image": [photo_bytes["astronaut"]]})
    assert out["u2s_status"][0].startswith("escalated; filled: face near")
    assert CenterFaceDetector()(np.asarray(out["safe_image"][0].convert("RGB"))) == []


def test_editors_that_return_nothing_or_stall_fail_closed(photo_bytes, editors):
    out = Unsafe2Safe(editor="none", detect_text=False)({"image": [photo_bytes["astronaut"], photo_bytes["coffee"]]})
    assert out["u2s_status"][0].startswith("redacted_fallback; editor failed") and out["u2s_status"][1] == "passthrough"
    assert np.asarray(out["safe_image"][0]).max() == 0
    out = Unsafe2Safe(editor="stalled", detect_text=False, edit_timeout=0.5)({"image": [photo_bytes["astronaut"]]})
    assert out["u2s_status"][0].startswith("redacted_fallback; editor failed (TimeoutError")
    assert np.asarray(out["safe_image"][0]).max() == 0


def test_settings_that_cannot_anonymize_are_refused():
    for bad in (dict(pixel_blocks=40), dict(blur_strength=0), dict(region_margin=-0.1), dict(face_threshold=0.99), dict(feather=-1),
                dict(face_turned_proposal_threshold=0.0), dict(face_small_proposal_threshold=1.0)):
        with pytest.raises(ValueError, match="out of range"):
            Unsafe2Safe(**bad)
    with pytest.raises(TypeError, match="must be float"):
        Unsafe2Safe(blur_strength="strong")
    for bad in (dict(face_min_size=2), dict(face_turned_min_size=-16)):
        with pytest.raises(ValueError, match="0 \\(off\\) or at least 8 pixels"):
            Unsafe2Safe(**bad)


def test_another_editor_drops_the_presets_editor_model():
    assert Unsafe2Safe(preset="paper", editor="sd-inpaint").config.edit.editor_model is None
    assert Unsafe2Safe(preset="paper").config.edit.editor_model is not None


def test_a_large_batch_is_worked_through_in_parts(photo_bytes):
    whole = Unsafe2Safe()({"image": [photo_bytes[n] for n in ORDER]})
    parts = Unsafe2Safe(batch_pixel_budget=1)({"image": [photo_bytes[n] for n in ORDER]})  # one image at a time
    assert parts["u2s_status"] == whole["u2s_status"]
    assert [np.asarray(a).tobytes() == np.asarray(b).tobytes() for a, b in zip(parts["safe_image"], whole["safe_image"])] == [True] * 6


def test_text_in_the_alpha_channel_is_found():
    from PIL import ImageDraw, ImageFont

    font = ImageFont.truetype(os.path.join(os.path.dirname(__import__("matplotlib").__file__), "mpl-data/fonts/ttf/DejaVuSans-Bold.ttf"), 40)
    alpha = Image.new("L", (480, 160), 0)
    ImageDraw.Draw(alpha).text((20, 50), "JOHN SMITH", fill=255, font=font)
    hidden = Image.merge("RGBA", (*Image.new("RGB", (480, 160), (0, 0, 0)).split(), alpha))  # black text on transparency
    out = Unsafe2Safe(editor="fill")({"image": [encode(hidden)]})
    assert out["is_private"] == [True] and "text_symbols" in out["privacy_categories"][0]
    assert rgb(encode(Image.open(io.BytesIO(encode(hidden))))).shape == (160, 480, 3)
