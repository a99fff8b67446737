"""OminiControl (the ``flux-omini`` editor): its LoRA, optimizer, dropout and objective, trained and edited with on a tiny random FLUX.1."""

import io
import json
import os

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from u2s_datasets import Unsafe2Safe
from u2s_datasets.cli import main as cli
from u2s_datasets.config import resolve_config
from u2s_datasets.edit.diffusion import EditorModelError
from u2s_datasets.edit.masks import region_mask
from u2s_datasets.edit.omini import LORA_FOLDER, LORA_WEIGHTS, OMINI_FILE, FluxOminiEditor, OminiTransformer, lora_layers
from u2s_datasets.testing.pipelines import random_flux_pipeline
from u2s_datasets.train import build_pairs
from u2s_datasets.train.loop import LOG_FILE
from u2s_datasets.train.omini import OminiFinetuneConfig, OminiObjective, add_omini_lora, finetune_omini, prodigy

from train_data import FACES, folders, one_thread  # noqa: F401  (one_thread: autouse)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("flux") / "flux")
    random_flux_pipeline().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def trained(base, tmp_path_factory):
    pairs = build_pairs(datasets.load_from_disk(folders()["anonymized"]), clip_model=None, split=(1.0, 0.0, 0.0))
    out = str(tmp_path_factory.mktemp("omini") / "tuned")
    # The CLI path, at a size that runs here; everything else is the paper's recipe.
    assert cli(["finetune", folders()["anonymized"], out, "--editor", "flux-omini", "--base-model", base, "--recipe", "paper",
                "--resolution", "32", "--max-steps", "6", "--max-sequence-length", "32", "--clip-model", "none", "--cpu"]) == 0
    return out, pairs


def test_lora_sits_on_exactly_the_named_layers_with_gaussian_init(base):
    from diffusers import FluxTransformer2DModel

    transformer = FluxTransformer2DModel.from_pretrained(base, subfolder="transformer")
    trainable = add_omini_lora(transformer, 16)
    wrapped = {name for name, module in transformer.named_modules() if module in lora_layers(transformer)}
    assert wrapped == {"x_embedder", "proj_out",  # the top-level input and output projections
                       "transformer_blocks.0.norm1.linear", "transformer_blocks.0.attn.to_q", "transformer_blocks.0.attn.to_k",
                       "transformer_blocks.0.attn.to_v", "transformer_blocks.0.attn.to_out.0", "transformer_blocks.0.ff.net.2",
                       "single_transformer_blocks.0.attn.to_q", "single_transformer_blocks.0.attn.to_k",
                       "single_transformer_blocks.0.attn.to_v", "single_transformer_blocks.0.proj_mlp",
                       "single_transformer_blocks.0.proj_out"}
    names = {id(p): n for n, p in transformer.named_parameters()}
    assert all("lora_" in names[id(p)] for p in trainable) and len(trainable) == 2 * len(wrapped)
    for layer in lora_layers(transformer):
        a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
        assert a.shape[0] == 16 and b.shape[1] == 16 and layer.scaling["default"] == 1.0  # rank 16, alpha 16
        assert not b.any(), "B starts at zero: the adapter starts as the identity"
    a = torch.cat([layer.lora_A["default"].weight.flatten() for layer in lora_layers(transformer)])
    assert a.std().item() == pytest.approx(1 / 16, rel=0.15), "peft's Gaussian init: A ~ N(0, 1/r)"


def test_prodigy_with_the_papers_settings():
    from prodigyopt import Prodigy

    config = OminiFinetuneConfig(base_model="x")
    optimizer = prodigy([torch.nn.Parameter(torch.zeros(2))], config)
    group = optimizer.param_groups[0]
    assert isinstance(optimizer, Prodigy) and group["lr"] == 1.0 and group["weight_decay"] == 0.01
    assert group["use_bias_correction"] and group["safeguard_warmup"]
    assert (config.lora, config.batch_size, config.max_steps, config.resolution) == (16, 4, 12000, 512)
    assert (config.text_dropout, config.image_dropout, config.max_grad_norm, config.ema) == (0.1, 0.1, 0.5, False)


def _tiny_pipe(base):
    from diffusers import FluxPipeline

    return FluxPipeline.from_pretrained(base)


def test_dropout_empties_prompts_and_blackens_conditions_independently(base):
    objective = OminiObjective(_tiny_pipe(base), OminiFinetuneConfig(base_model=base))
    n = 4000
    batch = {"source": torch.rand(n, 3, 2, 2) * 2 - 1, "instruction": ["blur the face"] * n}
    prompts, condition = objective.dropped(batch, torch.Generator().manual_seed(0))
    no_text = np.array([p == "" for p in prompts])
    black = (condition == -1).flatten(1).all(dim=1).numpy()
    kept = ~black
    assert abs(no_text.mean() - 0.1) < 0.02 and abs(black.mean() - 0.1) < 0.02
    assert abs((no_text & black).mean() - 0.01) < 0.006, "the two dropouts are drawn independently"
    assert torch.equal(condition[kept], batch["source"][kept]) and set(prompts) == {"", "blur the face"}
    long = " ".join(["word"] * 200)
    assert len(objective.pipe.tokenizer(objective.cut(long))["input_ids"]) <= 73 + 2


def test_a_training_step_changes_only_the_lora_weights(base):
    pipe = _tiny_pipe(base)
    trainable = add_omini_lora(pipe.transformer, 16)
    config = OminiFinetuneConfig(base_model=base, resolution=32, max_sequence_length=32)
    before = {k: v.clone() for k, v in pipe.transformer.state_dict().items()}
    model, optimizer = OminiTransformer(pipe.transformer).train(), prodigy(trainable, config)
    generator = torch.Generator().manual_seed(0)
    batch = {"source": torch.rand(2, 3, 32, 32) * 2 - 1, "target": torch.rand(2, 3, 32, 32) * 2 - 1, "instruction": ["a", "b"]}
    for _ in range(2):  # Prodigy's first step only estimates its step size
        OminiObjective(pipe, config).loss(model, batch, generator).backward()
        optimizer.step()
        optimizer.zero_grad()
    after = pipe.transformer.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("lora_" in k for k in changed), sorted(k for k in changed if "lora_" not in k)
    assert any("lora_B" in k for k in changed)


def test_the_condition_reaches_the_image_tokens(base):
    pipe = _tiny_pipe(base)
    add_omini_lora(pipe.transformer, 16)
    model = OminiTransformer(pipe.transformer).eval()
    from u2s_datasets.edit.omini import condition_ids, encode_tokens

    x, ids = encode_tokens(pipe, torch.rand(1, 3, 32, 32) * 2 - 1)
    c1, _ = encode_tokens(pipe, torch.rand(1, 3, 32, 32) * 2 - 1)
    c2, _ = encode_tokens(pipe, torch.rand(1, 3, 32, 32) * 2 - 1)
    embeds, pooled, text_ids = pipe.encode_prompt(prompt=["a"], prompt_2=None, max_sequence_length=8)
    sigma = torch.tensor([0.5])
    with torch.no_grad():
        one = model(x, ids, c1, condition_ids(ids), embeds, pooled, text_ids, sigma)
        two = model(x, ids, c2, condition_ids(ids), embeds, pooled, text_ids, sigma)
        shifted = model(x, ids, c1, condition_ids(ids, (0, 4)), embeds, pooled, text_ids, sigma)
    assert one.shape == x.shape and not torch.allclose(one, two), "joint attention: the condition changes the prediction"
    assert not torch.allclose(one, shifted), "the condition's position ids are its own"


def test_training_writes_the_adapter_and_the_editor_composites_regions_only(trained, base):
    out, _ = trained
    with open(os.path.join(out, LOG_FILE)) as f:
        assert [json.loads(line)["step"] for line in f] == list(range(1, 7))
    with open(os.path.join(out, OMINI_FILE)) as f:
        omini = json.load(f)
    assert omini["base_model"] == os.path.abspath(base) and omini["position_delta"] == [0, 0] and omini["lora_rank"] == 16
    saved = load_file(os.path.join(out, LORA_FOLDER, LORA_WEIGHTS))
    assert any(v.abs().sum() > 0 for k, v in saved.items() if "lora_B" in k), "training moved the adapter off zero"
    assert "flux-omini" in open(os.path.join(out, "README.md")).read()

    editor = FluxOminiEditor(resolve_config(editor="flux-omini", editor_model=out, edit_resolution=32, num_inference_steps=2))
    loaded = {n: p for n, p in editor.pipe.transformer.named_parameters() if "lora_B" in n}
    key = next(k for k in saved if "lora_B" in k and saved[k].abs().sum() > 0)
    match = [p for n, p in loaded.items() if n.replace(".lora_B.subject.", ".lora_B.") == key.removeprefix("transformer.")]
    assert match and torch.allclose(match[0].float(), saved[key]), "the editor runs the saved adapter"

    photos = datasets.load_from_disk(folders()["anonymized"]).select(range(0, 24, 8))  # one variant of each face photo
    photos = photos.select_columns(["image", "name"])
    transform = Unsafe2Safe(editor="flux-omini", editor_model=out, detect_text=False, edit_resolution=32, num_inference_steps=2)
    rows = photos.map(transform, batched=True, features=transform.features(photos.features), load_from_cache_file=False)
    rows = rows.cast_column("safe_image", datasets.Image(decode=False)).cast_column("image", datasets.Image(decode=False))
    settings = resolve_config().edit
    edited = 0
    for row in rows:
        before = np.asarray(Image.open(io.BytesIO(row["image"]["bytes"])).convert("RGB"))
        after = np.asarray(Image.open(io.BytesIO(row["safe_image"]["bytes"])).convert("RGB"))
        assert after.shape == before.shape
        if not row["privacy_regions"]:
            continue
        mask = region_mask((before.shape[1], before.shape[0]), [r["box"] for r in row["privacy_regions"]], settings.region_margin, settings.feather)
        assert np.array_equal(after[mask == 0], before[mask == 0]), f"pixels away from the regions changed in {row['name']}"
        assert np.abs(after[mask == 1].astype(int) - before[mask == 1]).mean() > 5
        edited += 1
    assert edited >= 2


def test_a_folder_without_the_adapter_is_a_clear_error(base):
    with pytest.raises(EditorModelError, match="not an OminiControl editor"):
        FluxOminiEditor(resolve_config(editor="flux-omini", editor_model=base))
