"""Fine-tuning tiny random InstructPix2Pix pipelines on pairs the transform made from real photos."""

import io
import json
import os
import subprocess
import sys

import datasets
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from u2s_datasets import Unsafe2Safe
from u2s_datasets import columns as C
from u2s_datasets.config import resolve_config
from u2s_datasets.edit.dual_prompt import DUAL_PROMPT_FOLDER
from u2s_datasets.edit.ip2p import InstructPix2PixEditor
from u2s_datasets.samples import sample_images
from u2s_datasets.train import build_pairs, finetune
from u2s_datasets.train.loop import LOG_FILE

from train_data import SIDE, one_thread, paths  # noqa: F401  (fixtures)

FAST = dict(resolution=32, batch_size=4, checkpoint_every=1000)


@pytest.fixture(scope="module")
def pairs(paths):
    return build_pairs(datasets.load_from_disk(paths["anonymized"]), clip_model=paths["clip"], split=(0.9, 0.1, 0.0))


def _log(folder) -> list:
    with open(os.path.join(folder, LOG_FILE)) as f:
        return [json.loads(line) for line in f]


def _losses(folder) -> np.ndarray:
    return np.array([r["loss"] for r in _log(folder)])


def _held_out() -> datasets.Dataset:
    # The whole astronaut photo: its variants trained, this framing did not.
    image = sample_images()["astronaut"].convert("RGB").resize((SIDE, SIDE))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return datasets.Dataset.from_dict({"image": [{"bytes": buffer.getvalue(), "path": None}]},
                                      features=datasets.Features({"image": datasets.Image(decode=False)}))


def _edit(model) -> np.ndarray:
    transform = Unsafe2Safe(editor="ip2p", editor_model=model, detect_text=False, edit_resolution=64, num_inference_steps=2)
    row = _held_out().map(transform, batched=True, features=transform.features(_held_out().features), load_from_cache_file=False)[0]
    assert row[C.STATUS].startswith(C.STATUS_EDITED)
    return np.asarray(row[C.SAFE_IMAGE].convert("RGB"))


def test_full_finetune_with_safe_attention_learns_and_loads_as_an_editor(paths, pairs, tmp_path):
    out = str(tmp_path / "full")
    finetune(pairs, out, base_model=paths["ip2p"], dual_prompt="paper", learning_rate=5e-4, max_steps=40, **FAST)
    losses = _losses(out)
    assert len(losses) == 40 and [r["step"] for r in _log(out)] == list(range(1, 41))
    assert losses[-8:].mean() < 0.75 * losses[:8].mean(), f"no clear drop: {losses[:8].mean():.3f} -> {losses[-8:].mean():.3f}"

    editor = InstructPix2PixEditor(resolve_config(editor="ip2p", editor_model=out, edit_resolution=64, num_inference_steps=2))
    assert editor.dual and editor.dual_mode == "paper"
    assert not np.array_equal(_edit(out), _edit(paths["ip2p"])), "the fine-tuned editor must edit differently"
    card = open(os.path.join(out, "README.md")).read()
    assert paths["ip2p"] in card and f"training pairs: {len(pairs['train'])}" in card and "data fingerprint: " in card
    assert "learning_rate: 0.0005" in card and "dual-prompt-paper" in card and "clip_threshold: 0.7" in card


def test_lora_finetune_learns_and_merges_into_the_unet(paths, pairs, tmp_path):
    out = str(tmp_path / "lora")
    finetune(pairs, out, base_model=paths["ip2p"], dual_prompt="none", lora=8, learning_rate=1e-2, max_steps=40, **FAST)
    losses = _losses(out)
    assert losses[-8:].mean() < 0.75 * losses[:8].mean(), f"no clear drop: {losses[:8].mean():.3f} -> {losses[-8:].mean():.3f}"
    trained = load_file(os.path.join(out, "unet", "diffusion_pytorch_model.safetensors"))
    base = load_file(os.path.join(paths["ip2p"], "unet", "diffusion_pytorch_model.safetensors"))
    assert trained.keys() == base.keys(), "LoRA weights are merged: the UNet keeps its own parameter names"
    changed = [k for k in base if not torch.equal(trained[k], base[k])]
    assert any(".attn2.to_k." in k for k in changed) and any(".resnets.0.conv1." in k for k in changed)
    assert not any("conv_in" in k or "time_embedding" in k or "norm" in k for k in changed), "only LoRA targets change"
    assert not os.path.exists(os.path.join(out, DUAL_PROMPT_FOLDER))


def test_resumed_run_equals_the_uninterrupted_one(paths, pairs, tmp_path):
    settings = dict(base_model=paths["ip2p"], dual_prompt="paper", learning_rate=5e-4, resolution=32, batch_size=8, checkpoint_every=2,
                    cpu=True)  # bit-exact on the CPU
    whole, parts = str(tmp_path / "whole"), str(tmp_path / "parts")
    finetune(pairs, whole, max_steps=4, **settings)  # 19 pairs: 3 batches an epoch, so the resumed run crosses an epoch
    finetune(pairs, parts, max_steps=2, **settings)
    finetune(pairs, parts, max_steps=4, resume=True, **settings)
    assert [r["step"] for r in _log(parts)] == [1, 2, 3, 4]
    np.testing.assert_allclose(_losses(parts), _losses(whole), rtol=1e-5)
    a = load_file(os.path.join(whole, DUAL_PROMPT_FOLDER, "dual_prompt.safetensors"))
    b = load_file(os.path.join(parts, DUAL_PROMPT_FOLDER, "dual_prompt.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_two_processes_through_accelerate_launch(paths, tmp_path):
    out = str(tmp_path / "ddp")
    # The multi-GPU launcher (torchrun) with no GPU visible: two CPU processes talking over gloo.
    # The anonymized folder itself: each process builds the pairs (the main one first).
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--main_process_port", "0", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "u2s_datasets.cli", "finetune", paths["anonymized"], out, "--clip-model", paths["clip"],
               "--base-model", paths["ip2p"], "--resolution", "32", "--batch-size", "2", "--max-steps", "2", "--checkpoint-every", "2"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1",
           "CUDA_VISIBLE_DEVICES": "", "ACCELERATE_USE_CPU": "true"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [r["step"] for r in _log(out)] == [1, 2]
    card = open(os.path.join(out, "README.md")).read()
    assert "- processes: 2" in card and f"- clip_model: {paths['clip']}" in card, "pairs built on the fly, filter recorded"
    assert os.path.isfile(os.path.join(out, "checkpoints", "step-2", "random_states_1.pkl"))
    InstructPix2PixEditor(resolve_config(editor="ip2p", editor_model=out, edit_resolution=64, num_inference_steps=2))


def test_empty_training_split_is_a_clear_error(paths, pairs, tmp_path):
    empty = datasets.DatasetDict({"train": pairs["train"].select([]), "validation": pairs["validation"]})
    with pytest.raises(ValueError, match="training split .* is empty"):
        finetune(empty, str(tmp_path / "none"), base_model=paths["ip2p"], max_steps=1)
