"""InternVL2.5 as published (remote code, InternLM2 with packed wqkv) converted to transformers' native InternVL.

The tiny checkpoint below has the original layout: config.json with the original architecture and
key names, safetensors with random weights under the original names, and InternLM2's tokenizer
files (a SentencePiece model with remote-code tokenizer settings). The references are written
here in plain torch from the packed weights, the way InternLM2 and InternViT compute.
"""

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from PIL import Image
from safetensors.torch import save_file

from u2s_datasets import Unsafe2Safe
from u2s_datasets.models.chat import _apply_template
from u2s_datasets.models.internvl_convert import ConversionError, convert_internvl

spm = pytest.importorskip("sentencepiece")

HEADS, KV_HEADS, HIDDEN, LAYERS = 4, 2, 32, 2
V_HIDDEN, V_HEADS, IMAGE, PATCH = 32, 2, 32, 8
ADDED = ["<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>"]
CORPUS = ["A photo of a person holding a sign that says HELLO 123.", "The quick brown fox jumps over the lazy dog.",
          "Describe the image in one JSON object with captions.\nHi there", '{"is_private": true, "categories": []}']


def _tokenizer_files(folder) -> int:
    """InternLM2's tokenizer files: a SentencePiece BPE model (ChatML markers inside it) and InternVL's added tokens."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 20), model_writer=model, vocab_size=360, model_type="bpe", byte_fallback=True,
        add_dummy_prefix=False, remove_extra_whitespaces=False, normalization_rule_name="identity",
        user_defined_symbols=["<|im_start|>", "<|im_end|>"], character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        minloglevel=2,
    )
    (folder / "tokenizer.model").write_bytes(model.getvalue())
    size = spm.SentencePieceProcessor(model_proto=model.getvalue()).get_piece_size()
    added = {str(size + i): {"content": t, "special": True, "lstrip": False, "rstrip": False, "normalized": False,
                             "single_word": False} for i, t in enumerate(ADDED)}
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "InternLM2Tokenizer",
        "auto_map": {"AutoTokenizer": ["tokenization_internlm2.InternLM2Tokenizer", None]},
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "</s>",
        "add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": added,
    }))
    return size + len(ADDED)


def _remote_config(vocab_size) -> dict:
    return {
        "architectures": ["InternVLChatModel"], "model_type": "internvl_chat",
        "auto_map": {"AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
                     "AutoModel": "modeling_internvl_chat.InternVLChatModel"},
        "downsample_ratio": 0.5, "force_image_size": IMAGE, "select_layer": -1, "ps_version": "v2",
        "template": "internvl2_5", "dynamic_image_size": False, "use_thumbnail": True, "max_dynamic_patch": 12,
        "vision_config": {
            "architectures": ["InternVisionModel"], "model_type": "intern_vit_6b", "hidden_size": V_HIDDEN,
            "num_attention_heads": V_HEADS, "intermediate_size": 64, "num_hidden_layers": 2, "qkv_bias": True,
            "qk_normalization": False, "norm_type": "layer_norm", "layer_norm_eps": 1e-6, "image_size": IMAGE,
            "patch_size": PATCH, "hidden_act": "gelu", "num_channels": 3, "attention_dropout": 0.0, "dropout": 0.0,
            "drop_path_rate": 0.0, "use_flash_attn": False,
        },
        "llm_config": {
            "architectures": ["InternLM2ForCausalLM"], "model_type": "internlm2",
            "auto_map": {"AutoModelForCausalLM": "modeling_internlm2.InternLM2ForCausalLM"},
            "vocab_size": vocab_size, "hidden_size": HIDDEN, "intermediate_size": 64, "num_hidden_layers": LAYERS,
            "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "hidden_act": "silu",
            "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 1000000,
            "rope_scaling": {"type": "dynamic", "factor": 2.0}, "bias": False, "tie_word_embeddings": False,
            "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2, "attn_implementation": "eager",
        },
    }


def _random_weights(vocab_size) -> dict:
    g = torch.Generator().manual_seed(0)

    def rand(*shape, scale=0.2):
        return torch.randn(*shape, generator=g) * scale

    head_dim = HIDDEN // HEADS
    w = {"vision_model.embeddings.class_embedding": rand(1, 1, V_HIDDEN),
         "vision_model.embeddings.position_embedding": rand(1, (IMAGE // PATCH) ** 2 + 1, V_HIDDEN),
         "vision_model.embeddings.patch_embedding.weight": rand(V_HIDDEN, 3, PATCH, PATCH, scale=0.05),
         "vision_model.embeddings.patch_embedding.bias": rand(V_HIDDEN)}
    for i in range(2):
        p = f"vision_model.encoder.layers.{i}."
        w.update({p + "attn.qkv.weight": rand(3 * V_HIDDEN, V_HIDDEN), p + "attn.qkv.bias": rand(3 * V_HIDDEN),
                  p + "attn.proj.weight": rand(V_HIDDEN, V_HIDDEN), p + "attn.proj.bias": rand(V_HIDDEN),
                  p + "mlp.fc1.weight": rand(64, V_HIDDEN), p + "mlp.fc1.bias": rand(64),
                  p + "mlp.fc2.weight": rand(V_HIDDEN, 64), p + "mlp.fc2.bias": rand(V_HIDDEN),
                  p + "norm1.weight": 1 + rand(V_HIDDEN), p + "norm1.bias": rand(V_HIDDEN),
                  p + "norm2.weight": 1 + rand(V_HIDDEN), p + "norm2.bias": rand(V_HIDDEN),
                  p + "ls1": rand(V_HIDDEN, scale=1.0), p + "ls2": rand(V_HIDDEN, scale=1.0)})
    w.update({"mlp1.0.weight": 1 + rand(4 * V_HIDDEN), "mlp1.0.bias": rand(4 * V_HIDDEN),
              "mlp1.1.weight": rand(HIDDEN, 4 * V_HIDDEN), "mlp1.1.bias": rand(HIDDEN),
              "mlp1.3.weight": rand(HIDDEN, HIDDEN), "mlp1.3.bias": rand(HIDDEN)})
    w["language_model.model.tok_embeddings.weight"] = rand(vocab_size, HIDDEN, scale=1.0)
    for i in range(LAYERS):
        p = f"language_model.model.layers.{i}."
        w.update({p + "attention.wqkv.weight": rand((HEADS + 2 * KV_HEADS) * head_dim, HIDDEN),
                  p + "attention.wo.weight": rand(HIDDEN, HIDDEN),
                  p + "feed_forward.w1.weight": rand(64, HIDDEN), p + "feed_forward.w3.weight": rand(64, HIDDEN),
                  p + "feed_forward.w2.weight": rand(HIDDEN, 64),
                  p + "attention_norm.weight": 1 + rand(HIDDEN), p + "ffn_norm.weight": 1 + rand(HIDDEN)})
    w["language_model.model.norm.weight"] = 1 + rand(HIDDEN)
    w["language_model.output.weight"] = rand(vocab_size, HIDDEN)
    return w


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    folder = tmp_path_factory.mktemp("internvl2_5_remote")
    vocab_size = _tokenizer_files(folder)
    (folder / "config.json").write_text(json.dumps(_remote_config(vocab_size)))
    weights = _random_weights(vocab_size)
    names = sorted(weights)
    half = len(names) // 2  # sharded, as the published checkpoint is
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    for shard, keys in shards.items():
        save_file({k: weights[k].contiguous() for k in keys}, str(folder / shard))
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: shard for shard, keys in shards.items() for k in keys}}))
    return folder, weights


@pytest.fixture(scope="module")
def converted(remote, tmp_path_factory):
    return Path(convert_internvl(remote[0], tmp_path_factory.mktemp("internvl2_5_hf")))


# --- references, from the original weights -------------------------------------------------------

def _rms(x, weight, eps=1e-5):
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _rotate(x, positions, theta=1000000.0):
    d = x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float32) / d)
    angles = torch.cat([torch.outer(positions.float(), inv)] * 2, dim=-1)[:, None, :]  # (T, 1, d)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * angles.cos() + torch.cat([-x2, x1], dim=-1) * angles.sin()


def internlm2_logits(w, ids):
    """InternLM2's forward: wqkv packed as (kv head, [its query heads..., key, value], head_dim)."""
    group, head_dim, t = HEADS // KV_HEADS, HIDDEN // HEADS, len(ids)
    x = w["language_model.model.tok_embeddings.weight"][ids]
    positions = torch.arange(t)
    causal = torch.full((t, t), float("-inf")).triu(1)
    for i in range(LAYERS):
        p = f"language_model.model.layers.{i}."
        h = _rms(x, w[p + "attention_norm.weight"])
        qkv = (h @ w[p + "attention.wqkv.weight"].T).view(t, KV_HEADS, group + 2, head_dim)
        q = _rotate(qkv[:, :, :group].reshape(t, HEADS, head_dim), positions)
        k = _rotate(qkv[:, :, group], positions).repeat_interleave(group, dim=1)
        v = qkv[:, :, group + 1].repeat_interleave(group, dim=1)
        scores = torch.einsum("thd,shd->hts", q, k) / head_dim ** 0.5 + causal
        out = torch.einsum("hts,shd->thd", scores.softmax(-1), v).reshape(t, HIDDEN)
        x = x + out @ w[p + "attention.wo.weight"].T
        h = _rms(x, w[p + "ffn_norm.weight"])
        x = x + (F.silu(h @ w[p + "feed_forward.w1.weight"].T) * (h @ w[p + "feed_forward.w3.weight"].T)) @ w[p + "feed_forward.w2.weight"].T
    return _rms(x, w["language_model.model.norm.weight"]) @ w["language_model.output.weight"].T


def internvl_image_features(w, pixels):
    """InternViT (pre-norm blocks with layer scale, qkv packed as [q | k | v]) + pixel shuffle v2 + mlp1."""
    b, head_dim = pixels.shape[0], V_HIDDEN // V_HEADS
    x = F.conv2d(pixels, w["vision_model.embeddings.patch_embedding.weight"], w["vision_model.embeddings.patch_embedding.bias"],
                 stride=PATCH).flatten(2).transpose(1, 2)
    x = torch.cat([w["vision_model.embeddings.class_embedding"].expand(b, -1, -1), x], 1) + w["vision_model.embeddings.position_embedding"]
    n = x.shape[1]
    for i in range(2):
        p = f"vision_model.encoder.layers.{i}."
        h = F.layer_norm(x, (V_HIDDEN,), w[p + "norm1.weight"], w[p + "norm1.bias"], 1e-6)
        q, k, v = F.linear(h, w[p + "attn.qkv.weight"], w[p + "attn.qkv.bias"]).view(b, n, 3, V_HEADS, head_dim).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-1, -2)) * head_dim ** -0.5).softmax(-1) @ v
        x = x + w[p + "ls1"] * F.linear(attn.transpose(1, 2).reshape(b, n, V_HIDDEN), w[p + "attn.proj.weight"], w[p + "attn.proj.bias"])
        h = F.layer_norm(x, (V_HIDDEN,), w[p + "norm2.weight"], w[p + "norm2.bias"], 1e-6)
        x = x + w[p + "ls2"] * F.linear(F.gelu(F.linear(h, w[p + "mlp.fc1.weight"], w[p + "mlp.fc1.bias"])), w[p + "mlp.fc2.weight"], w[p + "mlp.fc2.bias"])
    x = x[:, 1:]
    side = int((n - 1) ** 0.5)
    x = x.reshape(b, side, side, V_HIDDEN).reshape(b, side, side // 2, V_HIDDEN * 2).permute(0, 2, 1, 3)
    x = x.reshape(b, side // 2, side // 2, V_HIDDEN * 4).permute(0, 2, 1, 3).reshape(b, -1, V_HIDDEN * 4)
    x = F.layer_norm(x, (V_HIDDEN * 4,), w["mlp1.0.weight"], w["mlp1.0.bias"], 1e-5)
    return F.linear(F.gelu(F.linear(x, w["mlp1.1.weight"], w["mlp1.1.bias"])), w["mlp1.3.weight"], w["mlp1.3.bias"])


def _sentencepiece_ids(folder, text):
    """What InternLM2's own tokenizer produces: BOS, added tokens split out first, the rest through SentencePiece."""
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    ids = [1]
    for part in re.split("(" + "|".join(map(re.escape, ADDED)) + ")", text):
        ids += [sp.get_piece_size() + ADDED.index(part)] if part in ADDED else sp.encode(part) if part else []
    return ids


# --- tests -----------------------------------------------------------------------------------------

def test_converted_language_model_computes_internlm2(remote, converted):
    from transformers import InternVLForConditionalGeneration

    folder, weights = remote
    model = InternVLForConditionalGeneration.from_pretrained(converted, dtype=torch.float32).eval()
    assert model.config.text_config.model_type == "llama"
    ids = torch.tensor([1, 17, 250, 33, 301, 5, 96, 120, 7])
    with torch.no_grad():
        logits = model(input_ids=ids[None]).logits[0]
    reference = internlm2_logits(weights, ids)
    assert logits.shape == reference.shape
    torch.testing.assert_close(logits, reference, atol=1e-5, rtol=1e-5)


def test_converted_vision_tower_and_projector_compute_internvit(remote, converted):
    from transformers import InternVLForConditionalGeneration

    _, weights = remote
    model = InternVLForConditionalGeneration.from_pretrained(converted, dtype=torch.float32).eval()
    pixels = torch.randn(2, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        features = model.get_image_features(pixel_values=pixels).pooler_output
    reference = internvl_image_features(weights, pixels)
    assert features.shape == (2, model.config.image_seq_length, HIDDEN)
    torch.testing.assert_close(features, reference, atol=1e-5, rtol=1e-5)


def test_converted_tokenizer_and_template_match_internvl_without_remote_code(remote, converted):
    from transformers import AutoTokenizer

    from u2s_datasets.models.internvl import InternVLImageProcessor

    folder, _ = remote
    config = json.loads((converted / "config.json").read_text())
    assert config["model_type"] == "internvl"
    for name in ("config.json", "tokenizer_config.json", "processor_config.json"):
        assert "auto_map" not in json.loads((converted / name).read_text()), name  # nothing points at remote code
    assert not list(converted.glob("*.py"))
    tokenizer = AutoTokenizer.from_pretrained(converted, trust_remote_code=False)
    for text in CORPUS + ["x<|im_start|>user\n<img><IMG_CONTEXT></img>\n  two  spaces\tü 42<|im_end|>\n"]:
        assert tokenizer(text).input_ids == _sentencepiece_ids(folder, text), text
    assert config["image_token_id"] == tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>") == 362
    assert len(tokenizer) == config["text_config"]["vocab_size"]  # every token has an embedding
    processor = InternVLImageProcessor.from_pretrained(converted)
    conversation = [{"role": "user", "content": [{"type": "image", "image": Image.new("RGB", (40, 30), "red")},
                                                 {"type": "text", "text": "Describe."}]}]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<s><|im_start|>system\n") and text.endswith("<|im_start|>user\n<IMG_CONTEXT>\nDescribe.<|im_end|>\n<|im_start|>assistant\n")
    inputs = _apply_template(processor, [conversation], {"crop_to_patches": False})  # as the inspector sends it
    assert inputs["pixel_values"].shape == (1, 3, IMAGE, IMAGE)  # one tile, as the paper runs InternVL
    assert (inputs["input_ids"] == config["image_token_id"]).sum() == config["image_seq_length"] == 4
    generation = json.loads((converted / "generation_config.json").read_text())
    assert generation["eos_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_converted_model_runs_as_the_paper_presets_inspector(converted):
    photo = Image.fromarray((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8))
    transform = Unsafe2Safe(preset="paper", vlm_model=str(converted), llm_model=str(converted), editor="blur",
                            max_new_tokens=12, local_files_only=True)
    row = Dataset.from_dict({"image": [photo]}).map(transform, batched=True)[0]
    # Random weights answer gibberish: the row fails closed, through the converted model's own generate().
    assert row["is_private"] and row["u2s_status"].startswith("error: inspection answer unusable")
    assert not np.array_equal(np.asarray(row["safe_image"].convert("RGB")), np.asarray(photo))


def test_cli_converts_and_refuses_what_is_not_internvl(remote, tmp_path):
    from u2s_datasets.cli import main

    from safetensors import safe_open

    assert main(["convert-internvl", str(remote[0]), str(tmp_path / "out"), "--dtype", "bf16"]) == 0
    with safe_open(str(tmp_path / "out" / "model.safetensors"), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}
    (tmp_path / "native").mkdir()
    (tmp_path / "native" / "config.json").write_text(json.dumps({"model_type": "internvl"}))
    with pytest.raises(ConversionError, match="not InternVL's remote-code format"):
        convert_internvl(tmp_path / "native", tmp_path / "never")
    assert main(["convert-internvl", str(tmp_path / "native"), str(tmp_path / "never")]) == 2


def test_qwen2_based_release_converts_with_tied_embeddings(remote, tmp_path):
    """InternVL2.5-1B and its Qwen2 siblings: the language model keeps its names; tied embeddings stay tied."""
    from tiny_chat_models import char_tokenizer
    from transformers import InternVLForConditionalGeneration, Qwen2Config, Qwen2ForCausalLM

    source = tmp_path / "internvl2_5_qwen2"
    source.mkdir()
    tokenizer = char_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<img>", "</img>", "<IMG_CONTEXT>", "<|im_start|>", "<|im_end|>"]})
    tokenizer.save_pretrained(source)
    llm = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": len(tokenizer), "hidden_size": HIDDEN,
           "intermediate_size": 64, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
           "hidden_act": "silu", "max_position_embeddings": 2048, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
           "rope_scaling": None, "tie_word_embeddings": True, "use_sliding_window": False, "bos_token_id": 2, "eos_token_id": 3}
    torch.manual_seed(1)
    language = Qwen2ForCausalLM(Qwen2Config(**{k: v for k, v in llm.items() if k not in ("architectures", "model_type")})).eval()
    weights = {k: v for k, v in remote[1].items() if not k.startswith("language_model.")}
    weights.update({f"language_model.{k}": v.clone() for k, v in language.state_dict().items()})
    config = _remote_config(len(tokenizer))
    config["llm_config"] = llm
    (source / "config.json").write_text(json.dumps(config))
    save_file(weights, str(source / "model.safetensors"))

    model = InternVLForConditionalGeneration.from_pretrained(convert_internvl(source, tmp_path / "hf"), dtype=torch.float32).eval()
    assert model.config.text_config.model_type == "qwen2" and model.config.image_token_id == tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    ids = torch.tensor([[2, 40, 41, 50, 60, 70, 9]])
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, language(input_ids=ids).logits, atol=1e-5, rtol=1e-5)
