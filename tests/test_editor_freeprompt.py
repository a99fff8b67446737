"""The FreePrompt baseline editor on a tiny random Stable Diffusion pipeline, loaded from disk."""

import io

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from u2s_datasets import Unsafe2Safe
from u2s_datasets.config import resolve_config
from u2s_datasets.edit.freeprompt import FreePromptAttnProcessor, FreePromptControl, FreePromptEditor
from u2s_datasets.edit.masks import region_mask
from u2s_datasets.testing.pipelines import random_sd_editing_pipeline
from u2s_datasets.records import EditRequest, Inspection, Instruction
from u2s_datasets.samples import sample_images

FAST = dict(detect_text=False, edit_resolution=64, num_inference_steps=5)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("sd") / "sd")
    random_sd_editing_pipeline("sd").save_pretrained(folder)
    return folder


def test_processor_gives_targets_their_sources_self_attention_map():
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(0)
    attn = Attention(query_dim=8, heads=2, dim_head=4)
    control = FreePromptControl()
    attn.set_processor(FreePromptAttnProcessor(control))
    x = torch.randn(8, 5, 8)  # two rows: [uncond src | uncond tgt | cond src | cond tgt], two each
    plain = attn(x)
    control.enabled, control.rows, control.until, control.step = True, 2, 2, 0
    replaced = attn(x)
    assert torch.allclose(replaced[:6], plain[:6], atol=1e-6), "sources and the unconditional pass are untouched"
    q, k, v = (attn.head_to_batch_dim(p(x)) for p in (attn.to_q, attn.to_k, attn.to_v))
    probs = (q @ k.transpose(1, 2) * attn.scale).softmax(-1).view(4, 2, 2, 5, 5)
    expected = attn.to_out[0](attn.batch_to_head_dim((probs[2] @ v.view(4, 2, 2, 5, 4)[3]).reshape(4, 5, 4)))
    assert torch.allclose(replaced[6:], expected, atol=1e-5), "target: the source's map over the target's own values"
    assert not torch.allclose(replaced[6:], plain[6:])
    control.step = 2  # past the replaced steps
    assert torch.allclose(attn(x), plain, atol=1e-6)
    assert torch.allclose(attn(x[:, :3], encoder_hidden_states=x[:, 3:]), attn.processor.plain(attn, x[:, :3], x[:, 3:]))


def _request(image, public, seed=0):
    return EditRequest(image=image, inspection=Inspection(is_private=True, public_caption=public),
                       instruction=Instruction(instruction="anonymize the face"), seed=seed)


def test_edit_is_deterministic_follows_the_public_caption_and_uses_the_replacement(model):
    editor = FreePromptEditor(resolve_config(editor="freeprompt", editor_model=model, edit_resolution=64, num_inference_steps=5))
    assert editor.steps == 5 and editor.guidance == 7.5 and type(editor.pipe.scheduler).__name__ == "DDIMScheduler"
    photo = sample_images()["astronaut"].convert("RGB").resize((64, 64))
    a, b = editor.edit([_request(photo, "a person in a suit"), _request(photo, "a red bicycle")])
    alone = editor.edit([_request(photo, "a red bicycle", seed=7)])[0]
    assert np.array_equal(np.asarray(alone), np.asarray(editor.edit([_request(photo, "a red bicycle", seed=3)])[0])), "no randomness"
    # In a batch of two the kernels' rounding differs a little, nothing more.
    assert np.abs(np.asarray(alone, dtype=int) - np.asarray(b, dtype=int)).max() <= 2
    assert not np.array_equal(np.asarray(a), np.asarray(b)), "the public caption is the target prompt"
    editor.self_replace = 0.0
    unreplaced = editor.edit([_request(photo, "a red bicycle")])[0]
    assert not np.array_equal(np.asarray(b), np.asarray(unreplaced)), "the self-attention replacement shapes the edit"


def test_regions_only_compositing_keeps_every_pixel_outside(model):
    photos = sample_images()
    names = ("astronaut", "coffee")
    buffers = []
    for name in names:
        buffer = io.BytesIO()
        photos[name].convert("RGB").save(buffer, format="PNG")
        buffers.append({"bytes": buffer.getvalue(), "path": None})
    ds = datasets.Dataset.from_dict({"image": buffers, "name": list(names)},
                                    features=datasets.Features({"image": datasets.Image(decode=False), "name": datasets.Value("string")}))
    transform = Unsafe2Safe(editor="freeprompt", editor_model=model, **FAST)
    rows = ds.map(transform, batched=True, features=transform.features(ds.features), load_from_cache_file=False)
    rows = rows.cast_column("safe_image", datasets.Image(decode=False))
    settings = resolve_config().edit
    face = rows[0]
    before = np.asarray(photos["astronaut"].convert("RGB"))
    after = np.asarray(Image.open(io.BytesIO(face["safe_image"]["bytes"])).convert("RGB"))
    mask = region_mask((before.shape[1], before.shape[0]), [r["box"] for r in face["privacy_regions"]], settings.region_margin, settings.feather)
    assert face["is_private"] and np.array_equal(after[mask == 0], before[mask == 0])
    assert np.abs(after[mask == 1].astype(int) - before[mask == 1]).mean() > 5
    assert rows[1]["u2s_status"] == "passthrough"
