"""``editor="flowedit"``: SD3 FlowEdit with a tiny random SD3 pipeline saved to disk and loaded back.

Checked: the sampler against the published FlowEdit loop written out here step by step, one
output per row whatever its batch, regions-only compositing through ``ds.map`` on real photos
(every pixel away from the faces as it was), and the reconstruction property: with the same
prompt and guidance on both sides the velocity difference is zero, so the output is the VAE's
decode(encode(input)).
"""

import io

import datasets
import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from u2s_datasets import Unsafe2Safe
from u2s_datasets.config import resolve_config
from u2s_datasets.edit.flowedit import FlowEditEditor, encode_images, source_prompt, target_prompt
from u2s_datasets.edit.flowedit_sampler import encode_prompts, flowedit
from u2s_datasets.edit.masks import region_mask
from u2s_datasets.testing.pipelines import random_sd3_pipeline
from u2s_datasets.records import EditRequest, Inspection, Instruction
from train_data import one_thread  # noqa: F401  (autouse)

FACES = ("astronaut", "camera")
CLEAN = ("coffee",)
QUICK = dict(num_inference_steps=6, flowedit_n_max=4)


@pytest.fixture(scope="module")
def sd3(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("sd3") / "pipeline")
    random_sd3_pipeline().save_pretrained(folder)
    return folder


def editor(folder, **settings) -> FlowEditEditor:
    return FlowEditEditor(resolve_config(editor="flowedit", editor_model=folder, **{**QUICK, **settings}))


def photo(size=(64, 48)) -> Image.Image:
    return Image.fromarray(skimage.data.astronaut()).resize(size, Image.LANCZOS)


def request(seed, private="an astronaut woman smiling", public="a person in a space suit", instruction="give her a generic face",
            target="", image=None) -> EditRequest:
    inspection = Inspection(True, ["people_faces"], private, public)
    return EditRequest(image or photo(), inspection, Instruction(instruction, target), None, seed)


def test_defaults_are_the_papers_settings(sd3):
    e = FlowEditEditor(resolve_config(editor="flowedit", editor_model=sd3))
    assert FlowEditEditor.default_model == "stabilityai/stable-diffusion-3-medium-diffusers"
    assert (e.steps, e.source_guidance, e.guidance, e.n_max, e.n_min, e.n_avg) == (50, 3.5, 13.5, 33, 0, 1)
    assert e.grid == 16  # 8x VAE, 2x2 patches


def test_prompts_go_from_the_private_caption_to_the_public_one_with_the_edit():
    r = request(0, target="")
    assert source_prompt(r) == "an astronaut woman smiling"
    assert target_prompt(r) == "a person in a space suit give her a generic face"
    # A combined caption from the instructor is the target as it stands.
    assert target_prompt(request(0, target="a person with a generic face in a space suit")) == "a person with a generic face in a space suit"
    assert target_prompt(request(0, target="a person in a space suit")) == "a person in a space suit give her a generic face"


def _reference_flowedit(pipe, x_src, src_prompt, tar_prompt, generator, steps, src_guidance, tar_guidance, n_max, n_min):
    """The published FlowEdit SD3 loop for one image, written out as the paper's code runs it (t / 1000 as sigma)."""
    from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import retrieve_timesteps

    timesteps, steps = retrieve_timesteps(pipe.scheduler, steps, x_src.device)
    src = pipe.encode_prompt(prompt=src_prompt, prompt_2=None, prompt_3=None, negative_prompt="", do_classifier_free_guidance=True)
    tar = pipe.encode_prompt(prompt=tar_prompt, prompt_2=None, prompt_3=None, negative_prompt="", do_classifier_free_guidance=True)
    embeds = torch.cat([src[1], src[0], tar[1], tar[0]])
    pooled = torch.cat([src[3], src[2], tar[3], tar[2]])

    def velocities(z_src, z_tar, t):
        out = pipe.transformer(hidden_states=torch.cat([z_src, z_src, z_tar, z_tar]), timestep=t.expand(4), encoder_hidden_states=embeds,
                               pooled_projections=pooled, return_dict=False)[0]
        su, sc, tu, tc = out.chunk(4)
        return su + src_guidance * (sc - su), tu + tar_guidance * (tc - tu)

    z_edit = x_src.clone()
    for i, t in enumerate(timesteps):
        if steps - i > n_max:
            continue
        t_i = t / 1000
        t_next = timesteps[i + 1] / 1000 if i + 1 < len(timesteps) else torch.zeros_like(t_i)
        if steps - i > n_min:
            noise = torch.randn(x_src.shape[1:], generator=generator)[None]
            z_src = (1 - t_i) * x_src + t_i * noise
            z_tar = z_edit + z_src - x_src
            v_src, v_tar = velocities(z_src, z_tar, t)
            z_edit = z_edit + (t_next - t_i) * (v_tar - v_src)
        else:
            if i == steps - n_min:
                noise = torch.randn(x_src.shape[1:], generator=generator)[None]
                x_tar = z_edit + (t_i * noise + (1 - t_i) * x_src) - x_src
            _, v_tar = velocities(x_tar, x_tar, t)
            x_tar = x_tar + (t_next - t_i) * v_tar
    return z_edit if n_min == 0 else x_tar


@pytest.mark.parametrize("n_min", [0, 2])
def test_sampler_is_the_published_flowedit_loop(sd3, n_min):
    from diffusers import StableDiffusion3Pipeline

    pipe = StableDiffusion3Pipeline.from_pretrained(sd3, use_safetensors=True)
    with torch.inference_mode():
        x_src = encode_images(pipe, [photo()], (64, 48))
        ours = flowedit(pipe, x_src, encode_prompts(pipe, ["a woman"]), encode_prompts(pipe, ["a robot"]), [torch.Generator().manual_seed(5)],
                        steps=8, source_guidance=3.5, target_guidance=13.5, n_max=6, n_min=n_min)
        theirs = _reference_flowedit(pipe, x_src, "a woman", "a robot", torch.Generator().manual_seed(5), 8, 3.5, 13.5, 6, n_min)
        again = flowedit(pipe, x_src, encode_prompts(pipe, ["a woman"]), encode_prompts(pipe, ["a robot"]), [torch.Generator().manual_seed(5)],
                             steps=8, n_max=6, n_min=n_min, source_guidance=3.5, target_guidance=13.5)
    assert (ours - x_src).abs().max() > 0.1, "the edit must move the latent"
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    assert torch.equal(ours, again)  # the scheduler's state does not leak from one call into the next


def test_a_row_gets_the_same_output_whatever_its_batch(sd3):
    rows = [request(seed) for seed in (11, 12, 13)]
    batched = editor(sd3, edit_batch_size=3).edit(rows)
    alone = editor(sd3, edit_batch_size=1).edit(rows[1:2])[0]
    # The same noise per row; only the rounding of batched float kernels may differ.
    difference = np.abs(np.asarray(batched[1]).astype(int) - np.asarray(alone))
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01
    assert not np.array_equal(np.asarray(batched[0]), np.asarray(batched[1])), "each row draws its own noise"
    # Deterministic mode pads every call to the same shape: bit-identical.
    fixed = editor(sd3, edit_batch_size=3, deterministic=True)
    assert np.array_equal(np.asarray(fixed.edit(rows)[1]), np.asarray(fixed.edit(rows[1:2])[0]))


def _vae_round_trip(folder, image: Image.Image) -> np.ndarray:
    """decode(encode(image)) with the VAE alone: pixels to [-1, 1], posterior mode, decoder, back to 8 bits."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", use_safetensors=True)
    x = torch.from_numpy(np.asarray(image, np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    with torch.no_grad():
        y = vae.decode(vae.encode(x).latent_dist.mode()).sample[0]
    return np.rint((y.permute(1, 2, 0).clamp(-1, 1).numpy() + 1) * 127.5).astype(np.uint8)


def test_equal_prompts_and_guidance_give_the_reconstruction(sd3):
    same = dict(private="an astronaut", public="an astronaut", instruction="", target="")
    rows = [request(seed, **same) for seed in (1, 2, 3)]
    assert source_prompt(rows[0]) == target_prompt(rows[0])
    expected = _vae_round_trip(sd3, photo())
    out = editor(sd3, guidance_scale=4.0, source_guidance_scale=4.0).edit(rows)
    for image in out:
        assert np.abs(np.asarray(image).astype(int) - expected).max() <= 1
    assert np.abs(expected.astype(int) - np.asarray(photo())).mean() > 20, "a random VAE does not give the input back"
    # Another target prompt moves the same rows away from it.
    moved = editor(sd3, guidance_scale=4.0, source_guidance_scale=4.0).edit([request(1, **{**same, "target": "a robot"})])[0]
    assert np.abs(np.asarray(moved).astype(int) - expected).mean() > 5


def test_images_keep_their_size_on_the_grid_and_are_never_scaled_up(sd3):
    e = editor(sd3)
    assert e._work_size((640, 427)) == (640, 416)
    assert e._work_size((40, 30)) == (32, 16)
    assert e._work_size((3000, 2000)) == (1536, 1024)
    assert editor(sd3, edit_resolution=64)._work_size((640, 427)) == (64, 32)
    out = e.edit([request(3, image=photo((70, 50)))])[0]
    assert out.size == (70, 50)


def test_bad_settings_are_clear_errors(sd3):
    with pytest.raises(ValueError, match="flowedit_n_min=5 is more than flowedit_n_max=4"):
        editor(sd3, flowedit_n_min=5)
    with pytest.raises(ValueError, match="flowedit_n_avg=0 is out of range"):
        resolve_config(editor="flowedit", flowedit_n_avg=0)
    with pytest.raises(ValueError, match="no few-step setting"):
        editor(sd3, fast=True)


# -- through the transform, on real photos with their faces found by the local detectors


def _png(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photos():
    arrays = {"astronaut": skimage.data.astronaut(), "camera": skimage.data.camera(), "coffee": skimage.data.coffee()}
    return datasets.Dataset.from_dict(
        {"image": [{"bytes": _png(a), "path": None} for a in arrays.values()], "name": list(arrays)},
        features=datasets.Features({"image": datasets.Image(decode=False), "name": datasets.Value("string")}),
    ), arrays


def _run(ds, **settings) -> dict:
    transform = Unsafe2Safe(editor="flowedit", detect_text=False, edit_resolution=64, **QUICK, **settings)
    out = ds.map(transform, batched=True, batch_size=3, features=transform.features(ds.features), load_from_cache_file=False)
    return {row["name"]: row for row in out.cast_column("safe_image", datasets.Image(decode=False))}


def _rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_regions_scope_keeps_every_pixel_away_from_the_faces(sd3, photos):
    ds, arrays = photos
    rows = _run(ds, editor_model=sd3)
    settings = resolve_config().edit
    for name in FACES:
        row = rows[name]
        assert row["u2s_status"].split(";")[0] in ("edited", "escalated") and row["is_private"], name
        before = np.asarray(Image.fromarray(arrays[name]).convert("RGB"))
        after = _rgb(row["safe_image"]["bytes"])
        mask = region_mask((before.shape[1], before.shape[0]), [r["box"] for r in row["privacy_regions"]], settings.region_margin, settings.feather)
        assert np.array_equal(after[mask == 0], before[mask == 0]), f"pixels away from the face of {name} changed"
        assert np.abs(after[mask == 1].astype(int) - before[mask == 1]).mean() > 10, f"the face of {name} is as it was"
    assert rows["coffee"]["u2s_status"] == "passthrough" and np.array_equal(_rgb(rows["coffee"]["safe_image"]["bytes"]), arrays["coffee"])
    # The whole output with edit_scope="global": the corners change too.
    whole = _run(ds, editor_model=sd3, edit_scope="global")
    corner = (slice(0, 20), slice(0, 20))
    assert not np.array_equal(_rgb(whole["astronaut"]["safe_image"]["bytes"])[corner], arrays["astronaut"][corner])
