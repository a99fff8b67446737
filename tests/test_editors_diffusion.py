"""Diffusion editors through ``ds.map`` on real photos, with tiny random-weight pipelines loaded from disk.

The pipelines are built from configs, saved with ``save_pretrained`` and loaded back by
the editors' own ``from_pretrained`` path. Faces come from the real local detectors.
"""

import io

import datasets
import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from u2s_datasets.samples import sample_images
from u2s_datasets import Unsafe2Safe, registry
from u2s_datasets.config import resolve_config
from u2s_datasets.edit.diffusion import EditorModelError, grid_size
from u2s_datasets.edit.dual_prompt import (DUAL_PROMPT_FOLDER, dual_prompt_parameters, dual_prompt_state_dict,
                                           install_dual_prompt, load_dual_prompt, save_dual_prompt)
from u2s_datasets.edit.ip2p import InstructPix2PixEditor
from u2s_datasets.edit.masks import region_mask
from u2s_datasets.testing.pipelines import random_flux_kontext_pipeline, random_sd_editing_pipeline
from u2s_datasets.records import EditRequest, Inspection, Instruction, Region

FACES = ("astronaut", "grace_hopper", "camera")
CLEAN = ("coffee", "chelsea")
FAST = dict(detect_text=False, edit_resolution=64, num_inference_steps=2)


def _png(image) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG") if isinstance(image, np.ndarray) else image.save(buffer, format="PNG")
    return buffer.getvalue()


def rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture(scope="session")
def photo_bytes():
    # PNG throughout: lossless output, so pixel identity can be checked in the written files.
    return {
        "astronaut": _png(skimage.data.astronaut()),
        "coffee": _png(skimage.data.coffee()),
        "grace_hopper": _png(sample_images()["grace_hopper"]),
        "camera": _png(skimage.data.camera()),
        "chelsea": _png(skimage.data.chelsea()),
    }


@pytest.fixture(scope="session")
def photos(photo_bytes):
    names = list(photo_bytes)
    return datasets.Dataset.from_dict(
        {"image": [{"bytes": photo_bytes[n], "path": None} for n in names], "name": names},
        features=datasets.Features({"image": datasets.Image(decode=False), "name": datasets.Value("string")}),
    )


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("editors")
    folders = {}
    for kind in ("ip2p", "inpaint"):
        folders[kind] = str(root / kind)
        random_sd_editing_pipeline(kind).save_pretrained(folders[kind])
    folders["kontext"] = str(root / "kontext")
    random_flux_kontext_pipeline().save_pretrained(folders["kontext"])
    return folders


def run(ds, batch_size=3, num_proc=None, **overrides):
    transform = Unsafe2Safe(**{**FAST, **overrides})
    out = ds.map(transform, batched=True, batch_size=batch_size, num_proc=num_proc, with_rank=num_proc is not None,
                 features=transform.features(ds.features), load_from_cache_file=False)
    return {row["name"]: row for row in out.cast_column("safe_image", datasets.Image(decode=False))}


def safe_pixels(rows) -> dict:
    return {name: rgb(row["safe_image"]["bytes"]) for name, row in rows.items()}


@pytest.fixture(scope="module")
def ip2p_rows(photos, models):
    return run(photos, batch_size=5, editor="ip2p", editor_model=models["ip2p"])


@pytest.mark.parametrize("editor,model", [("ip2p", "ip2p"), ("sd-inpaint", "inpaint"), ("flux-kontext", "kontext")])
def test_region_true_editing_keeps_size_and_every_pixel_away_from_faces(photos, photo_bytes, models, editor, model):
    rows = run(photos, editor=editor, editor_model=models[model])
    settings = resolve_config().edit
    for name in FACES:
        row = rows[name]
        # A random tiny editor may leave a name tag readable: the verifier then fills it (escalated).
        assert row["u2s_status"].split(";")[0] in ("edited", "escalated") and row["is_private"], name
        before, after = rgb(photo_bytes[name]), rgb(row["safe_image"]["bytes"])
        assert after.shape == before.shape, name
        mask = region_mask((before.shape[1], before.shape[0]), [r["box"] for r in row["privacy_regions"]], settings.region_margin, settings.feather)
        outside, inside = mask == 0, mask == 1
        assert np.array_equal(after[outside], before[outside]), f"{editor} changed pixels away from the face in {name}"
        assert np.abs(after[inside].astype(int) - before[inside]).mean() > 10, f"{editor} left the face of {name} as it was"
    for name in CLEAN:
        assert rows[name]["u2s_status"] == "passthrough" and np.array_equal(rgb(rows[name]["safe_image"]["bytes"]), rgb(photo_bytes[name]))


def test_global_scope_keeps_the_editors_whole_output(photos, photo_bytes, models):
    rows = run(photos, editor="ip2p", editor_model=models["ip2p"], edit_scope="global")
    for name in FACES:
        before, after = rgb(photo_bytes[name]), rgb(rows[name]["safe_image"]["bytes"])
        assert after.shape == before.shape
        corner = (slice(0, 20), slice(0, 20))  # far from every face in these photos
        assert not np.array_equal(after[corner], before[corner]), name


def test_a_row_gets_the_same_output_whatever_its_batch_or_worker(photos, models, ip2p_rows):
    # One image per pipeline call: bit-identical across batch sizes and workers.
    alone = dict(editor="ip2p", editor_model=models["ip2p"], edit_batch_size=1)
    reference = safe_pixels(run(photos, batch_size=1, **alone))
    for other in (run(photos, batch_size=3, **alone), run(photos, batch_size=5, **alone), run(photos, batch_size=3, num_proc=2, **alone)):
        for name, pixels in safe_pixels(other).items():
            assert np.array_equal(pixels, reference[name]), name
    # Batched pipeline calls (astronaut and camera share one at batch_size=5) draw the same noise
    # per row; only the float rounding of batched kernels may differ.
    batched = dict(editor="ip2p", editor_model=models["ip2p"])
    for other in (ip2p_rows, run(photos, batch_size=3, num_proc=2, **batched)):
        for name, pixels in safe_pixels(other).items():
            difference = np.abs(pixels.astype(int) - reference[name])
            assert difference.max() <= 2 and (difference > 0).mean() < 0.01, name


def test_seed_setting_changes_the_edit(photos, models, ip2p_rows):
    other = safe_pixels(run(photos, editor="ip2p", editor_model=models["ip2p"], seed=1))
    assert not np.array_equal(other["astronaut"], safe_pixels(ip2p_rows)["astronaut"])


class CountingEditor(InstructPix2PixEditor):
    """``ip2p`` that keeps every image it is asked to edit."""

    seen = []

    def edit(self, requests):
        CountingEditor.seen.extend(np.asarray(r.image).copy() for r in requests)
        return super().edit(requests)


def test_only_private_rows_reach_the_editor(photos, photo_bytes, models, monkeypatch):
    monkeypatch.setitem(registry.EDITORS, "ip2p-counting", f"{__name__}:CountingEditor")
    CountingEditor.seen = []
    run(photos, editor="ip2p-counting", editor_model=models["ip2p"])
    seen = CountingEditor.seen
    assert len(seen) == len(FACES)
    for name in FACES:
        assert sum(np.array_equal(image, rgb(photo_bytes[name])) for image in seen) == 1, name
    for name in CLEAN:
        assert not any(image.shape == rgb(photo_bytes[name]).shape and np.array_equal(image, rgb(photo_bytes[name])) for image in seen)


# -- dual prompts


def _requests(photo_bytes):
    inspection = Inspection(True, ["people_faces"], "a photo of one face", "a photo of a person whose face is not recognisable",
                            [Region("people_faces", (181, 58, 270, 178))])
    instruction = Instruction("Replace every face with a different, generic face", inspection.public_caption)
    return [EditRequest(Image.open(io.BytesIO(photo_bytes["astronaut"])).convert("RGB"), inspection, instruction, None, 7)]


def test_untrained_dual_prompt_reproduces_the_plain_pipeline(photo_bytes, models):
    from diffusers import StableDiffusionInstructPix2PixPipeline

    requests = _requests(photo_bytes)
    config = resolve_config(editor="ip2p", editor_model=models["ip2p"], **FAST)
    dual = InstructPix2PixEditor(config.replace(dual_prompt=True))
    assert dual.dual and len(dual_prompt_parameters(dual.pipe.unet)) > 0
    edited = np.asarray(dual.edit(requests)[0])

    # The pipeline on its own, prompted with the instruction: what plain InstructPix2Pix gives.
    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(models["ip2p"], use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    size = grid_size(requests[0].image.size, 64, 8)
    plain = pipe(prompt=[requests[0].instruction.instruction], image=[requests[0].image.resize(size, Image.LANCZOS)],
                 num_inference_steps=2, generator=[torch.Generator().manual_seed(7)], output_type="pil").images[0]
    assert np.array_equal(edited, np.asarray(plain.resize(requests[0].image.size, Image.LANCZOS)))


def test_trained_dual_prompt_weights_change_the_edit_and_round_trip(photo_bytes, models, tmp_path):
    from diffusers import StableDiffusionInstructPix2PixPipeline
    from safetensors.torch import load_file

    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(models["ip2p"], use_safetensors=True)
    install_dual_prompt(pipe.unet, pipe.tokenizer.model_max_length)
    with torch.no_grad():
        for parameter in dual_prompt_parameters(pipe.unet):
            parameter.add_(torch.randn_like(parameter))  # stands in for training
    folder = str(tmp_path / "dual")
    save_dual_prompt(pipe, folder)

    # The pipeline's own files stay plain; the fusion lives beside them.
    unet_keys = load_file(f"{folder}/unet/diffusion_pytorch_model.safetensors")
    assert not any("processor" in k or "public" in k for k in unet_keys)
    fresh = StableDiffusionInstructPix2PixPipeline.from_pretrained(folder, use_safetensors=True)
    load_dual_prompt(fresh, folder)
    saved, loaded = dual_prompt_state_dict(pipe.unet), dual_prompt_state_dict(fresh.unet)
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[k], loaded[k]) for k in saved)

    # The editor finds the weights in the model folder on its own.
    requests = _requests(photo_bytes)
    plain = InstructPix2PixEditor(resolve_config(editor="ip2p", editor_model=folder, dual_prompt=False, **FAST))
    found = InstructPix2PixEditor(resolve_config(editor="ip2p", editor_model=folder, **FAST))
    assert found.dual and not plain.dual
    assert not np.array_equal(np.asarray(found.edit(requests)[0]), np.asarray(plain.edit(requests)[0]))
    assert (tmp_path / "dual" / DUAL_PROMPT_FOLDER / "dual_prompt.safetensors").is_file()


# -- failures


def test_missing_model_is_one_clear_error(photos, tmp_path):
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(EditorModelError, match="no-such-model.*\n.*hf download"):
        run(photos, editor="ip2p", editor_model=missing)


def test_non_finite_editor_output_fails_closed(photos, photo_bytes, tmp_path):
    pipe = random_sd_editing_pipeline("ip2p")
    with torch.no_grad():
        pipe.vae.decoder.conv_out.bias.fill_(float("nan"))  # broken weights: every decoded image is NaN
    folder = str(tmp_path / "broken")
    pipe.save_pretrained(folder)
    rows = run(photos, editor="ip2p", editor_model=folder)
    for name in FACES:
        assert rows[name]["u2s_status"].startswith("redacted_fallback; editor failed (EditorRunError: non-finite output")
        after = rgb(rows[name]["safe_image"]["bytes"])
        assert after.shape == rgb(photo_bytes[name]).shape and len(np.unique(after)) == 1, "a failed edit must not keep original pixels"
    for name in CLEAN:
        assert rows[name]["u2s_status"] == "passthrough"


def test_grid_keeps_aspect_and_rounds_to_the_grid():
    assert grid_size((600, 400), 512, 8) == (512, 344)
    assert grid_size((400, 600), 1024, 16) == (688, 1024)
    assert grid_size((32, 32), 512, 8) == (512, 512)
    assert grid_size((2000, 10), 512, 16) == (512, 16)


def _forked(batch, rank):
    from u2s_datasets.models.devices import in_forked_worker

    return {"forked": [in_forked_worker()] * len(batch["x"])}


def test_datasets_workers_are_recognised_as_forked():
    # CUDA cannot start there, and the OpenMP pool must be reset there: both rely on this.
    from u2s_datasets.models.devices import in_forked_worker

    ds = datasets.Dataset.from_dict({"x": list(range(4))})
    assert not in_forked_worker()
    assert all(ds.map(_forked, batched=True, batch_size=2, num_proc=2, with_rank=True)["forked"])


def test_scheduler_is_chosen_by_name(models):
    config = resolve_config(editor="ip2p", editor_model=models["ip2p"], **FAST)
    assert type(InstructPix2PixEditor(config.replace(scheduler="DDIMScheduler")).pipe.scheduler).__name__ == "DDIMScheduler"
    with pytest.raises(ValueError, match="NoSuchScheduler"):
        InstructPix2PixEditor(config.replace(scheduler="NoSuchScheduler"))
