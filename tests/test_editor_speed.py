"""The faster editing paths give the output of the slow ones: fewer UNet passes, few-step LoRAs, fixed batch shapes.

Tiny random-weight pipelines in fp32, saved and loaded back through the editors' own loading path.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from u2s_datasets.config import resolve_config
from u2s_datasets.edit.ip2p import InstructPix2PixEditor
from u2s_datasets.edit.ip2p_sampler import guidance_passes, sample_ip2p
from u2s_datasets.testing.pipelines import random_sd_editing_pipeline
from u2s_datasets.testing.lora import save_random_lcm_lora
from u2s_datasets.records import EditRequest, Inspection, Instruction

STEPS = 3


@pytest.fixture(scope="module")
def pipe():
    pipe = random_sd_editing_pipeline("ip2p")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def folders(pipe, tmp_path_factory):
    root = tmp_path_factory.mktemp("speed")
    pipe.save_pretrained(root / "ip2p")
    save_random_lcm_lora(pipe.unet, str(root / "lcm-lora"))
    return {"model": str(root / "ip2p"), "lora": str(root / "lcm-lora")}


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(2)]


def embeddings(pipe, texts):
    tokens = pipe.tokenizer(texts, padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True, return_tensors="pt")
    with torch.no_grad():
        return pipe.text_encoder(tokens.input_ids)[0]


def generators(seeds=(1, 2)):
    return [torch.Generator().manual_seed(s) for s in seeds]


class UNetCalls:
    """Counts the UNet's forward calls and the batch size of each."""

    def __init__(self, unet):
        self.batches = []
        self.handle = unet.register_forward_pre_hook(lambda module, args: self.batches.append(args[0].shape[0]))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def test_three_passes_are_the_diffusers_pipeline_and_fewer_passes_equal_them(pipe, images):
    cond, uncond = embeddings(pipe, ["make every face generic"] * 2), embeddings(pipe, [""] * 2)
    reference = pipe(image=images, prompt_embeds=cond, negative_prompt_embeds=uncond, num_inference_steps=STEPS, guidance_scale=7.5,
                     image_guidance_scale=1.5, generator=generators(), output_type="np").images
    ours = sample_ip2p(pipe, images, cond, uncond, generators(), STEPS, 7.5, 1.5)
    np.testing.assert_array_equal(ours, reference)

    for guidance, image_guidance in ((7.5, 1.0), (1.5, 1.5)):
        three = sample_ip2p(pipe, images, cond, uncond, generators(), STEPS, guidance, image_guidance, passes=("text", "image", "uncond"))
        with UNetCalls(pipe.unet) as calls:
            two = sample_ip2p(pipe, images, cond, uncond, generators(), STEPS, guidance, image_guidance)
        assert calls.batches == [2 * len(images)] * STEPS  # two passes per step, not three
        np.testing.assert_allclose(two, three, atol=1e-5)
        assert np.abs(three - reference).max() > 1e-2  # the guidance setting did matter: the comparison is not vacuous
    assert guidance_passes(7.5, 1.5) == ("text", "image", "uncond") and guidance_passes(1.0, 1.0) == ("text",)


def test_editor_runs_two_passes_at_image_guidance_one(pipe, folders, images):
    editor = InstructPix2PixEditor(resolve_config(editor="ip2p", editor_model=folders["model"], edit_resolution=64,
                                                  num_inference_steps=STEPS, image_guidance_scale=1.0, local_files_only=True))
    inspection = Inspection(True, ["people_faces"], public_caption="a person")
    requests = [EditRequest(image, inspection, Instruction("make every face generic"), None, seed) for image, seed in zip(images, (1, 2))]
    with UNetCalls(editor.pipe.unet) as calls:
        edited = editor.edit(requests)
    assert calls.batches == [4] * STEPS
    cond, uncond = embeddings(pipe, ["make every face generic"] * 2), embeddings(pipe, [""] * 2)
    three = pipe(image=images, prompt_embeds=cond, negative_prompt_embeds=uncond, num_inference_steps=STEPS, guidance_scale=7.5,
                 image_guidance_scale=1.0, generator=generators(), output_type="np").images
    for out, ref in zip(edited, three):
        assert np.abs(np.asarray(out, dtype=int) - np.rint(ref * 255).astype(int)).max() <= 1


def test_fast_path_loads_an_lcm_lora_from_a_folder_and_edits_in_four_steps(pipe, folders, images):
    from diffusers import LCMScheduler, StableDiffusionInstructPix2PixPipeline

    config = resolve_config(editor="ip2p", editor_model=folders["model"], fast=True, fast_lora=folders["lora"], edit_resolution=64,
                            local_files_only=True)
    editor = InstructPix2PixEditor(config)
    assert isinstance(editor.pipe.scheduler, LCMScheduler) and editor.steps == 4
    inspection = Inspection(True, ["people_faces"], public_caption="a person")
    requests = [EditRequest(image, inspection, Instruction("make every face generic"), None, seed) for image, seed in zip(images, (1, 2))]
    with UNetCalls(editor.pipe.unet) as calls:
        edited = np.stack([np.asarray(image, dtype=int) for image in editor.edit(requests)])
    assert calls.batches == [4] * 4  # 4 steps, two passes each (text guidance = image guidance = 1.5)

    # The same edit written with diffusers alone: the LoRA loaded the documented way, three passes.
    reference = StableDiffusionInstructPix2PixPipeline.from_pretrained(folders["model"], use_safetensors=True)
    reference.set_progress_bar_config(disable=True)
    reference.scheduler = LCMScheduler.from_config(reference.scheduler.config)
    cond, uncond = embeddings(reference, ["make every face generic"] * 2), embeddings(reference, [""] * 2)

    def run():
        return np.rint(reference(image=images, prompt_embeds=cond, negative_prompt_embeds=uncond, num_inference_steps=4, guidance_scale=1.5,
                                 image_guidance_scale=1.5, generator=generators(), output_type="np").images * 255).astype(int)

    without_lora = run()
    reference.load_lora_weights(folders["lora"])
    with_lora = run()
    assert np.abs(edited - with_lora).max() <= 1
    assert np.abs(edited - without_lora).max() >= 4  # the adapter did change the edit


@pytest.fixture
def restore_kernel_settings():
    """Deterministic mode changes process-wide settings; the tests after this one get theirs back."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[2], saved[3]


def test_deterministic_mode_gives_identical_bytes_whatever_the_batch(folders, restore_kernel_settings):
    rng = np.random.default_rng(1)
    inspection = Inspection(True, ["people_faces"], public_caption="a person")
    requests = [EditRequest(Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)), inspection,
                            Instruction("make every face generic"), None, seed) for seed in range(3)]
    editor = InstructPix2PixEditor(resolve_config(editor="ip2p", editor_model=folders["model"], edit_resolution=64, num_inference_steps=2,
                                                  edit_batch_size=4, deterministic=True, local_files_only=True))
    alone = editor.edit(requests[:1])[0].tobytes()
    assert editor.edit(requests)[0].tobytes() == alone  # first of three
    assert editor.edit(requests[::-1])[2].tobytes() == alone  # last of three
    assert editor.edit(requests[1:] + requests[:1] * 2)[2].tobytes() == alone  # beside itself, a full batch
    assert editor.edit(requests[1:])[0].tobytes() != alone  # another row is another edit


def test_fp8_outside_an_fp8_gpu_is_a_clear_error(folders):
    if torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 9):
        pytest.skip("this GPU runs fp8")
    with pytest.raises(ValueError, match="fp8=True needs a GPU"):
        InstructPix2PixEditor(resolve_config(editor="ip2p", editor_model=folders["model"], fp8=True, local_files_only=True, device="cpu"))


def test_fast_on_an_editor_without_a_few_step_setting_is_a_clear_error(folders):
    from u2s_datasets.edit.sd_inpaint import StableDiffusionInpaintEditor

    with pytest.raises(ValueError, match="fast=True: the 'sd-inpaint' editor has no few-step setting"):
        StableDiffusionInpaintEditor(resolve_config(editor="sd-inpaint", editor_model=folders["model"], fast=True, local_files_only=True))
