"""SafeAttention (``dual_prompt="paper"``): the formula, gradients, and saving with the mode detected on load."""

import json

import numpy as np
import pytest
import torch

from u2s_datasets.config import resolve_config
from u2s_datasets.edit.dual_prompt import (DUAL_PROMPT_FOLDER, dual_prompt_mode, dual_prompt_parameters, dual_prompt_processors,
                                           install_dual_prompt, save_dual_prompt)
from u2s_datasets.edit.ip2p import InstructPix2PixEditor
from u2s_datasets.edit.safe_attention import SafeAttnProcessor
from u2s_datasets.testing.pipelines import random_sd_editing_pipeline
from u2s_datasets.records import EditRequest, Inspection, Instruction
from u2s_datasets.samples import sample_images

from train_data import one_thread  # noqa: F401  (autouse)

TOKENS = 77


def _perturb(module, seed=1):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator))


def _reference(attn, proc, x, instruction, public):
    """SafeAttention written out with plain tensor ops, head by head."""
    heads = attn.heads
    d = attn.to_k.out_features // heads

    def split(t):  # B, T, H*d -> B, H, T, d
        return t.view(t.shape[0], t.shape[1], heads, d).permute(0, 2, 1, 3)

    def attention(q, k):
        return torch.softmax(torch.einsum("bhnd,bhtd->bhnt", q, k) / d ** 0.5, dim=-1)

    a_e = attention(split(attn.to_q(x)), split(attn.to_k(instruction)))
    a_p = attention(split(proc.to_q_public(x)), split(proc.to_k_public(public)))
    both = torch.cat([a_e, a_p], dim=-1)
    conv1, conv2 = proc.fusion[0], proc.fusion[2]
    rows = both.reshape(-1, 1, both.shape[-1])
    hidden = torch.nn.functional.gelu(torch.nn.functional.conv1d(rows, conv1.weight, conv1.bias, padding=1))
    fused = torch.nn.functional.conv1d(hidden, conv2.weight, conv2.bias, padding=1).reshape(both.shape)
    a_pf = torch.softmax(fused[..., a_e.shape[-1]:], dim=-1)
    out = torch.einsum("bhnt,bhtd->bhnd", a_e, split(attn.to_v(instruction))) + torch.einsum(
        "bhnt,bhtd->bhnd", a_pf, split(proc.to_v_public(public)))
    out = out.permute(0, 2, 1, 3).reshape(x.shape[0], x.shape[1], heads * d)
    return attn.to_out[0](out)


@pytest.fixture(scope="module")
def pipe():
    return random_sd_editing_pipeline("ip2p")


def test_safe_attention_matches_the_formula():
    unet = random_sd_editing_pipeline("ip2p").unet
    processors = install_dual_prompt(unet, TOKENS, "paper")
    name, proc = next(iter(processors.items()))
    attn = dict(unet.named_modules())[name]
    assert isinstance(proc, SafeAttnProcessor)
    # Public projections start as copies of the layer's own.
    assert torch.equal(proc.to_q_public.weight, attn.to_q.weight) and torch.equal(proc.to_v_public.weight, attn.to_v.weight)
    _perturb(proc)
    torch.manual_seed(0)
    x = torch.randn(2, 16, attn.to_q.in_features)
    instruction, public = torch.randn(2, TOKENS, attn.to_k.in_features), torch.randn(2, TOKENS, attn.to_k.in_features)
    with torch.no_grad():
        got = attn(x, encoder_hidden_states=torch.cat([instruction, public], dim=1))
        want = _reference(attn, proc, x, instruction, public)
        plain = attn(x, encoder_hidden_states=instruction)  # no public tokens: the edit branch alone
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert (got - plain).abs().max() > 1e-3, "the public branch must contribute"


def test_fusion_and_public_projections_receive_gradients():
    unet = random_sd_editing_pipeline("ip2p").unet
    install_dual_prompt(unet, TOKENS, "paper")
    torch.manual_seed(0)
    out = unet(torch.randn(1, 8, 8, 8), 10, encoder_hidden_states=torch.randn(1, 2 * TOKENS, 32)).sample
    out.square().mean().backward()
    for proc in dual_prompt_processors(unet).values():
        for part in (proc.fusion[0].weight, proc.fusion[2].weight, proc.to_q_public.weight, proc.to_v_public.weight):
            assert part.grad is not None and part.grad.abs().sum() > 0


def test_paper_weights_save_beside_the_pipeline_and_the_mode_is_detected(pipe, tmp_path):
    install_dual_prompt(pipe.unet, TOKENS, "paper")
    for proc in dual_prompt_processors(pipe.unet).values():
        _perturb(proc.fusion)
    folder = str(tmp_path / "paper")
    save_dual_prompt(pipe, folder)
    with open(f"{folder}/{DUAL_PROMPT_FOLDER}/config.json") as f:
        assert json.load(f) == {"mode": "paper", "instruction_tokens": TOKENS}

    fast = dict(edit_resolution=64, num_inference_steps=2)
    editor = InstructPix2PixEditor(resolve_config(editor="ip2p", editor_model=folder, **fast))
    assert editor.dual and editor.dual_mode == "paper" and dual_prompt_mode(editor.pipe.unet) == "paper"
    saved = dict(enumerate(dual_prompt_parameters(pipe.unet)))
    loaded = dict(enumerate(dual_prompt_parameters(editor.pipe.unet)))
    assert all(torch.equal(saved[i], loaded[i]) for i in saved)
    with pytest.raises(ValueError, match="ships 'paper'"):
        InstructPix2PixEditor(resolve_config(editor="ip2p", editor_model=folder, dual_prompt="gated", **fast))


def test_untrained_paper_mode_opens_the_public_branch(tmp_path):
    folder = str(tmp_path / "plain")
    random_sd_editing_pipeline("ip2p").save_pretrained(folder)
    inspection = Inspection(True, ["people_faces"], "a photo of Grace Hopper", "a photo of a person in uniform")
    request = EditRequest(sample_images()["grace_hopper"].convert("RGB").resize((64, 80)), inspection,
                          Instruction("Replace the face with a generic face", inspection.public_caption), None, 3)
    fast = dict(edit_resolution=64, num_inference_steps=2)
    outputs = {}
    for mode in (False, "gated", "paper"):
        editor = InstructPix2PixEditor(resolve_config(editor="ip2p", editor_model=folder, dual_prompt=mode, **fast))
        assert editor.dual_mode == (mode or None)
        outputs[mode] = np.asarray(editor.edit([request])[0])
    assert np.array_equal(outputs["gated"], outputs[False]), "closed gates: plain InstructPix2Pix"
    assert not np.array_equal(outputs["paper"], outputs[False]), "SafeAttention reads the public caption from the start"
    with pytest.raises(ValueError, match="dual_prompt='fused'"):
        InstructPix2PixEditor(resolve_config(editor="ip2p", editor_model=folder, dual_prompt="fused", **fast))
