"""LoRA fine-tuning of a tiny random FLUX.1 Kontext pipeline on pairs the transform made from real photos."""

import json
import os

import datasets
import numpy as np
import torch
from safetensors.torch import load_file

from u2s_datasets.config import resolve_config
from u2s_datasets.edit.flow_editors import FluxKontextEditor
from u2s_datasets.testing.pipelines import random_flux_kontext_pipeline
from u2s_datasets.train import build_pairs
from u2s_datasets.train.kontext import finetune_kontext
from u2s_datasets.train.loop import LOG_FILE

from train_data import folders, one_thread  # noqa: F401  (one_thread: autouse)


def test_kontext_lora_learns_and_loads_as_the_flux_kontext_editor(tmp_path):
    paths = folders()
    base = str(tmp_path / "kontext")
    random_flux_kontext_pipeline().save_pretrained(base)
    pairs = build_pairs(datasets.load_from_disk(paths["anonymized"]), clip_model=None, split=(1.0, 0.0, 0.0))
    out = str(tmp_path / "tuned")
    finetune_kontext(pairs, out, base_model=base, resolution=32, batch_size=4, learning_rate=1e-2, max_steps=40,
                     checkpoint_every=1000, max_sequence_length=32, cpu=True)
    with open(os.path.join(out, LOG_FILE)) as f:
        losses = np.array([json.loads(line)["loss"] for line in f])
    assert len(losses) == 40
    # The velocity target of a random tiny VAE is large and noisy per sigma: the drop is smaller than the UNet's, but steady.
    first, last = losses[:10].mean(), losses[-10:].mean()
    assert last < 0.93 * first, f"no clear drop: {first:.3f} -> {last:.3f}"
    assert np.polyfit(np.arange(40), losses, 1)[0] < 0, "the loss must trend down"

    trained = load_file(os.path.join(out, "transformer", "diffusion_pytorch_model.safetensors"))
    original = load_file(os.path.join(base, "transformer", "diffusion_pytorch_model.safetensors"))
    assert trained.keys() == original.keys(), "the adapters are merged: the transformer keeps its own parameter names"
    changed = {k for k in original if not torch.equal(trained[k], original[k])}
    assert any(".attn.to_q." in k for k in changed) and any("proj_mlp" in k for k in changed)
    assert not any("norm" in k or "x_embedder" in k for k in changed), "only LoRA targets change"
    adapter = load_file(os.path.join(out, "lora", "pytorch_lora_weights.safetensors"))
    assert any("lora_A" in k for k in adapter) and {v.shape[0] for k, v in adapter.items() if "lora_A" in k} == {16}
    editor = FluxKontextEditor(resolve_config(editor="flux-kontext", editor_model=out, edit_resolution=32, num_inference_steps=2))
    assert editor.pipe.transformer is not None
