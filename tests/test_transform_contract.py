"""The transform's contract with datasets: bad rows, policies, input forms, metadata, fingerprints, workers."""

import io
import pickle
import subprocess
import sys
import textwrap

import datasets
import numpy as np
import pytest
from conftest import encode, rgb
from PIL import Image

from u2s_datasets import Unsafe2Safe


@pytest.fixture(scope="module")
def astronaut(photo_bytes):
    return photo_bytes["astronaut"]


def bad_rows(photo_bytes):
    truncated = photo_bytes["astronaut"][: len(photo_bytes["astronaut"]) // 2]
    zero = np.zeros((0, 16, 3), dtype=np.uint8)
    return {
        "none": None,
        "corrupt": {"bytes": b"not an image at all", "path": None},
        "truncated": {"bytes": truncated, "path": None},
        "zero_pixels": zero,
        "missing_file": {"bytes": None, "path": "/nonexistent/photo.jpg"},
    }


def test_bad_rows_get_error_status_and_never_original_pixels(photo_bytes):
    rows = bad_rows(photo_bytes)
    values = [photo_bytes["coffee"], *rows.values(), photo_bytes["astronaut"]]
    out = Unsafe2Safe()({"image": values})
    statuses = dict(zip(["coffee", *rows, "astronaut"], out["u2s_status"]))
    assert statuses["coffee"] == "passthrough" and statuses["astronaut"] == "edited"  # good rows survive
    assert statuses["none"] == "error: image is missing (None)"
    assert statuses["corrupt"].startswith("error: not a readable image")
    assert statuses["truncated"].startswith("error: corrupt or truncated image data")
    assert statuses["zero_pixels"].startswith("error: image array is empty")
    assert statuses["missing_file"].startswith("error: cannot read image file 'photo.jpg'")
    by_name = dict(zip(["coffee", *rows, "astronaut"], out["safe_image"]))
    # The truncated JPEG's size is known from its header: a fully black image of that size.
    redacted = np.asarray(by_name["truncated"].convert("RGB"))
    assert by_name["truncated"].size == (512, 512) and redacted.max() == 0
    assert by_name["none"] is None and by_name["corrupt"] is None
    for name in rows:
        index = list(statuses).index(name)
        assert out["is_private"][index] is True  # fail closed


def test_decompression_limit(photo_bytes):
    out = Unsafe2Safe(max_image_pixels=100_000)({"image": [photo_bytes["astronaut"]]})
    assert out["u2s_status"][0] == "error: image of 512x512 pixels is over the decompression limit of 100000 pixels"
    assert out["safe_image"][0] is None


def test_on_error_drop_keeps_other_columns_aligned(photo_bytes):
    ds = datasets.Dataset.from_dict(
        {"image": [photo_bytes["coffee"], b"junk", photo_bytes["astronaut"]], "id": [10, 11, 12]},
    )
    out = ds.map(Unsafe2Safe(on_error="drop"), batched=True)
    assert out["id"] == [10, 12]
    assert out["u2s_status"] == ["passthrough", "edited"]


def test_on_error_raise_names_the_row(photo_bytes):
    with pytest.raises(ValueError, match=r"Row 1 of the batch: cannot read image file 'nope.png'"):
        Unsafe2Safe(on_error="raise")({"image": [photo_bytes["coffee"], "/nope.png"]})


def test_missing_image_column_raises_before_any_work():
    ds = datasets.Dataset.from_dict({"picture": [b"x"], "label": [1]})
    with pytest.raises(KeyError, match="Image column 'image' not found; the dataset has: picture, label"):
        ds.map(Unsafe2Safe(), batched=True)
    with pytest.raises(KeyError, match="picture, label"):
        Unsafe2Safe().features(ds.features)


def test_unknown_setting_is_a_clear_error():
    with pytest.raises(TypeError, match="Unknown setting 'edtor'"):
        Unsafe2Safe(edtor="blur")
    with pytest.raises(ValueError, match="editor='pixelat' is not one of .* Did you mean 'pixelate'"):
        Unsafe2Safe(editor="pixelat")


def test_every_input_form_gives_the_same_result(photo_bytes, tmp_path):
    data = photo_bytes["camera"]  # PNG: lossless, so every form decodes to the same pixels
    path = tmp_path / "camera.png"
    path.write_bytes(data)
    forms = [data, {"bytes": data, "path": None}, {"bytes": None, "path": str(path)}, str(path),
             Image.open(io.BytesIO(data)), rgb(data)[:, :, 0]]
    out = Unsafe2Safe()({"image": forms})
    assert set(out["u2s_status"]) == {"edited"}
    reference = np.asarray(out["safe_image"][0])
    for image in out["safe_image"][1:]:
        assert np.array_equal(np.asarray(image.convert(out["safe_image"][0].mode)), reference)


def _exif_with_gps() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}  # GPS IFD
    return exif


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_metadata_is_stripped(photo_bytes, name, fmt):
    image = Image.open(io.BytesIO(photo_bytes[name])).convert("RGB")
    params = {"exif": _exif_with_gps().tobytes()}
    if fmt == "PNG":
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        info.add_text("Author", "Jane Secret")
        info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>GPS 48.85</x:xmpmeta>")
        params["pnginfo"] = info
    else:
        params["comment"] = b"Jane Secret"
    data = encode(image, fmt, **params)
    assert b"SecretCam" in data
    transform = Unsafe2Safe()
    ds = datasets.Dataset.from_dict({"image": [{"bytes": data, "path": None}]}, features=datasets.Features({"image": datasets.Image(decode=False)}))
    row = ds.map(transform, batched=True, features=transform.features(ds.features)).cast_column("safe_image", datasets.Image(decode=False))[0]
    out = row["safe_image"]["bytes"]
    for secret in (b"SecretCam", b"Jane Secret", b"Exif", b"xmpmeta", b"GPS"):
        assert secret not in out, secret
    decoded = Image.open(io.BytesIO(out))
    assert len(decoded.getexif()) == 0 and not {"exif", "xmp", "comment", "Author"} & set(decoded.info)
    if name == "coffee":  # passthrough: exact pixels
        assert row["u2s_status"] == "passthrough"
        assert np.array_equal(np.asarray(decoded.convert("RGB")), np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))


def test_exif_rotation_is_kept_in_the_pixels(photo_bytes):
    image = Image.open(io.BytesIO(photo_bytes["coffee"])).convert("RGB")  # 600x400
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees
    out = Unsafe2Safe()({"image": [encode(image, "JPEG", exif=exif.tobytes())]})
    assert out["safe_image"][0].size == (400, 600)


def test_pickling_keeps_config_only():
    transform = Unsafe2Safe(editor="pixelate")
    transform({"image": [np.zeros((32, 32, 3), np.uint8)]})  # loads the stages
    assert transform._stages is not None
    state = transform.__getstate__()
    assert set(state) == {"config", "image_column", "class_column", "class_names"}
    clone = pickle.loads(pickle.dumps(transform))
    assert clone._stages is None and clone.config == transform.config


FINGERPRINT_SCRIPT = textwrap.dedent(
    """
    import sys, datasets
    from u2s_datasets import Unsafe2Safe
    ds = datasets.load_from_disk(sys.argv[1])
    out = ds.map(Unsafe2Safe(editor=sys.argv[2]), batched=True)
    print(out._fingerprint, out.cache_files[0]["filename"])
    """
)


def test_fingerprint_is_stable_across_processes_and_tracks_settings(photo_dataset, tmp_path):
    folder = str(tmp_path / "ds")
    photo_dataset.select(range(2)).save_to_disk(folder)

    def fingerprint(editor):
        result = subprocess.run([sys.executable, "-c", FINGERPRINT_SCRIPT, folder, editor], capture_output=True, text=True, check=True)
        return result.stdout.split(), result.stderr

    (first, cache_file), _ = fingerprint("blur")
    (second, cache_again), log = fingerprint("blur")
    assert first == second and cache_file == cache_again
    assert "Map:" not in log  # the second process loaded the cache instead of recomputing
    (other, _), _ = fingerprint("pixelate")
    assert other != first


def test_num_proc_with_rank_matches_single_process(photo_dataset):
    transform = Unsafe2Safe()
    features = transform.features(photo_dataset.features)
    single = photo_dataset.map(transform, batched=True, batch_size=2, features=features)
    parallel = photo_dataset.map(transform, batched=True, batch_size=2, features=features, num_proc=2, with_rank=True)
    single, parallel = (d.cast_column("safe_image", datasets.Image(decode=False)) for d in (single, parallel))
    assert single["u2s_status"] == parallel["u2s_status"]
    assert [r["bytes"] for r in single["safe_image"]] == [r["bytes"] for r in parallel["safe_image"]]


@pytest.mark.parametrize("rotated", [False, True])
def test_metadata_is_stripped_from_decoded_pil_inputs(photo_bytes, rotated):
    exif = _exif_with_gps()
    if rotated:
        exif[0x0112] = 6
    image = Image.open(io.BytesIO(photo_bytes["coffee"])).convert("RGB")
    source = Image.open(io.BytesIO(encode(image, "JPEG", exif=exif.tobytes(), comment=b"Jane Secret")))
    safe = Unsafe2Safe()({"image": [source]})["safe_image"][0]
    buffer = io.BytesIO()
    safe.save(buffer, format=safe.format)  # what datasets stores
    for secret in (b"SecretCam", b"Jane Secret", b"Exif"):
        assert secret not in buffer.getvalue(), secret


def _progressive_with_hidden_metadata(photo_bytes) -> bytes:
    image = Image.open(io.BytesIO(photo_bytes["coffee"])).convert("RGB")
    data = encode(image, "JPEG", quality=90, progressive=True)
    second_scan = data.index(b"\xff\xda", data.index(b"\xff\xda") + 2)
    comment = b"INTERSCAN-SECRET"
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    return data[:second_scan] + segment + data[second_scan:] + b"Exif\x00\x00GPS-SECRET-TRAILER"


def test_metadata_between_scans_and_after_the_end_is_stripped(photo_bytes):
    data = _progressive_with_hidden_metadata(photo_bytes)
    out = Unsafe2Safe()({"image": [data]})
    assert out["u2s_status"] == ["passthrough"]
    buffer = io.BytesIO()
    out["safe_image"][0].save(buffer, format="JPEG")
    cleaned = buffer.getvalue()
    assert b"INTERSCAN-SECRET" not in cleaned and b"GPS-SECRET-TRAILER" not in cleaned
    assert cleaned.endswith(b"\xff\xd9")
    assert np.array_equal(rgb(cleaned), rgb(data))  # the coded pixels are untouched


def test_a_jpeg_that_cannot_be_walked_is_reencoded_not_fatal(photo_bytes):
    data = encode(Image.open(io.BytesIO(photo_bytes["coffee"])).convert("RGB"), "JPEG", quality=90)
    app0_end = 4 + int.from_bytes(data[4:6], "big")
    junk = data[:app0_end] + b"\x00\x00" + data[app0_end:]  # Pillow skips stray bytes between markers
    out = Unsafe2Safe()({"image": [junk, photo_bytes["astronaut"]]})
    assert out["u2s_status"] == ["passthrough; re-encoded as JPEG", "edited"]  # the status says it was re-encoded
    assert np.abs(np.asarray(out["safe_image"][0].convert("RGB"), dtype=int) - rgb(data)).mean() < 2


def test_only_the_inspected_frame_of_an_animation_comes_out(photo_bytes):
    first = Image.open(io.BytesIO(photo_bytes["coffee"])).convert("RGB")
    second = Image.new("RGB", first.size, (255, 0, 0))
    buffer = io.BytesIO()
    first.save(buffer, format="PNG", save_all=True, append_images=[second])
    out = Unsafe2Safe()({"image": [buffer.getvalue()]})
    assert out["u2s_status"] == ["passthrough; first of 2 frames kept"]  # the status says what was dropped
    safe = out["safe_image"][0]
    assert getattr(safe, "n_frames", 1) == 1 and np.array_equal(np.asarray(safe.convert("RGB")), np.asarray(first))


class IdentityEditor:
    """An editor that changes nothing: its rows must not come out as edited."""

    def __init__(self, config, rank=None, **shared):
        pass

    def edit(self, requests):
        return [r.image for r in requests]


def test_an_editor_that_changes_nothing_is_redacted(photo_bytes, monkeypatch):
    from u2s_datasets import registry

    monkeypatch.setitem(registry.EDITORS, "identity", "test_transform_contract:IdentityEditor")
    out = Unsafe2Safe(editor="identity")({"image": [photo_bytes["astronaut"], photo_bytes["coffee"]]})
    assert out["u2s_status"] == ["redacted_fallback; editor changed nothing", "passthrough"]
    assert np.asarray(out["safe_image"][0]).max() == 0


def test_class_ids_missing_and_out_of_range(photo_bytes):
    transform = Unsafe2Safe(class_column="label", class_names=["cup"])
    out = transform({"image": [photo_bytes["coffee"]], "label": [-1]})
    assert out["public_caption"] == ["a photo"]
    with pytest.raises(ValueError, match="Row 0 of the batch: class id 3 is out of range for 1 class names"):
        transform({"image": [photo_bytes["coffee"]], "label": [3]})


def test_non_numeric_arrays_are_a_row_error():
    out = Unsafe2Safe()({"image": [np.array([["a", "b"]], dtype=object)]})
    assert out["u2s_status"] == ["error: image array has non-numeric dtype object"]


def test_image_folder_names_stay_inside_the_output(tmp_path):
    from u2s_datasets.run.folders import _inside

    assert _inside("people/a.jpg", 0) == "people/a.jpg"
    for bad in ("../escape.jpg", "/etc/passwd", "a/../../b.jpg"):
        with pytest.raises(ValueError, match="outside the output folder"):
            _inside(bad, 7)


def test_a_raised_pixel_limit_also_lifts_pillows_own(photo_bytes, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow alone would refuse the 600x400 photo
    assert Unsafe2Safe(max_image_pixels=10**6)({"image": [photo_bytes["coffee"]]})["u2s_status"] == ["passthrough"]
