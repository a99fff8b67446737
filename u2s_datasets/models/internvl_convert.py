"""InternVL checkpoints in their published remote-code format, converted to transformers' native architecture.

The original releases (``OpenGVLab/InternVL2_5-8B`` and its siblings, ``model_type`` ``internvl_chat``)
hold an InternViT vision tower (``vision_model``), a pixel-shuffle MLP projector (``mlp1``) and a
language model (``language_model``): InternLM2 in the 8B model, Qwen2 or Llama in others.
transformers runs the same network natively as ``InternVLForConditionalGeneration``; InternLM2 is a
Llama whose query, key and value projections are packed into one ``wqkv`` matrix, head group by head
group. :func:`convert_internvl` renames and splits the weights, writes the native config, a tokenizer
without remote code (InternLM2's SentencePiece model becomes a ``LlamaTokenizer``), the image-only
processor of :mod:`.internvl` and the generation config. No code from the checkpoint runs.
"""

import json
import logging
import os
import re
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

IMAGE_CONTEXT, IMAGE_START, IMAGE_END = "<IMG_CONTEXT>", "<img>", "</img>"
END_OF_TURN = "<|im_end|>"
# InternVL2.5's own conversation template ("internvl2_5") opens every chat with this system message.
DEFAULT_SYSTEM_MESSAGE = "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"

# (pattern, replacement) applied in order to each original key; one match per key is enough.
_VISION_RENAMES = [
    (r"^vision_model\.embeddings\.class_embedding$", "model.vision_tower.embeddings.cls_token"),
    (r"^vision_model\.embeddings\.position_embedding$", "model.vision_tower.embeddings.position_embeddings"),
    (r"^vision_model\.embeddings\.patch_embedding\.", "model.vision_tower.embeddings.patch_embeddings.projection."),
    (r"^vision_model\.encoder\.layers\.(\d+)\.ls(\d)$", r"model.vision_tower.encoder.layer.\1.lambda_\2"),
    (r"^vision_model\.encoder\.layers\.(\d+)\.attn\.proj\.", r"model.vision_tower.encoder.layer.\1.attention.projection_layer."),
    (r"^vision_model\.encoder\.layers\.(\d+)\.attn\.", r"model.vision_tower.encoder.layer.\1.attention."),
    (r"^vision_model\.encoder\.layers\.(\d+)\.norm1\.", r"model.vision_tower.encoder.layer.\1.layernorm_before."),
    (r"^vision_model\.encoder\.layers\.(\d+)\.norm2\.", r"model.vision_tower.encoder.layer.\1.layernorm_after."),
    (r"^vision_model\.encoder\.layers\.(\d+)\.mlp\.", r"model.vision_tower.encoder.layer.\1.mlp."),
    (r"^mlp1\.0\.", "model.multi_modal_projector.layer_norm."),
    (r"^mlp1\.1\.", "model.multi_modal_projector.linear_1."),
    (r"^mlp1\.3\.", "model.multi_modal_projector.linear_2."),
]
_INTERNLM2_RENAMES = [
    (r"^language_model\.model\.tok_embeddings\.", "model.language_model.embed_tokens."),
    (r"^language_model\.model\.norm\.", "model.language_model.norm."),
    (r"^language_model\.output\.", "lm_head."),
    (r"^language_model\.model\.layers\.(\d+)\.attention\.wqkv\.", r"model.language_model.layers.\1.self_attn.wqkv."),
    (r"^language_model\.model\.layers\.(\d+)\.attention\.wo\.", r"model.language_model.layers.\1.self_attn.o_proj."),
    (r"^language_model\.model\.layers\.(\d+)\.feed_forward\.w1\.", r"model.language_model.layers.\1.mlp.gate_proj."),
    (r"^language_model\.model\.layers\.(\d+)\.feed_forward\.w3\.", r"model.language_model.layers.\1.mlp.up_proj."),
    (r"^language_model\.model\.layers\.(\d+)\.feed_forward\.w2\.", r"model.language_model.layers.\1.mlp.down_proj."),
    (r"^language_model\.model\.layers\.(\d+)\.attention_norm\.", r"model.language_model.layers.\1.input_layernorm."),
    (r"^language_model\.model\.layers\.(\d+)\.ffn_norm\.", r"model.language_model.layers.\1.post_attention_layernorm."),
]
# Qwen2 and Llama language models already carry transformers' names.
_NATIVE_LM_RENAMES = [
    (r"^language_model\.model\.", "model.language_model."),
    (r"^language_model\.lm_head\.", "lm_head."),
]
_LM_TYPES = {"internlm2": "llama", "llama": "llama", "qwen2": "qwen2"}


class ConversionError(ValueError):
    """A checkpoint that is not an InternVL remote-code checkpoint this converter knows."""


def read_remote_config(source) -> dict:
    path = Path(source) / "config.json"
    if not path.is_file():
        raise ConversionError(f"{source} has no config.json: pass the folder of an InternVL checkpoint (e.g. `hf download OpenGVLab/InternVL2_5-8B --local-dir ./internvl2_5-8b`).")
    config = json.loads(path.read_text())
    if config.get("model_type") != "internvl_chat":
        raise ConversionError(f"{source} is {config.get('model_type')!r}, not InternVL's remote-code format ('internvl_chat'); nothing to convert.")
    lm_type = config["llm_config"].get("model_type")
    if lm_type not in _LM_TYPES:
        raise ConversionError(f"{source}: its language model {lm_type!r} has no native conversion (known: {', '.join(_LM_TYPES)}).")
    if config.get("ps_version", "v2") != "v2":
        raise ConversionError(f"{source}: pixel shuffle {config['ps_version']!r}; the native architecture runs 'v2' only.")
    return config


def text_config(llm: dict):
    """The native text config: InternLM2 as Llama (same network, split projections), Qwen2 and Llama as they are."""
    from transformers import LlamaConfig, Qwen2Config

    rope = dict(llm.get("rope_scaling") or {"type": "default"})
    rope_parameters = {"rope_type": rope.pop("type", rope.pop("rope_type", "default")), "rope_theta": llm.get("rope_theta", 10000.0), **rope}
    shared = {key: llm[key] for key in (
        "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
        "hidden_act", "max_position_embeddings", "rms_norm_eps", "bos_token_id", "eos_token_id", "pad_token_id",
    ) if key in llm}
    shared.update(tie_word_embeddings=bool(llm.get("tie_word_embeddings", False)), rope_parameters=rope_parameters, use_cache=True)
    if llm["model_type"] == "qwen2":
        extra = {key: llm[key] for key in ("use_sliding_window", "sliding_window", "max_window_layers") if key in llm}
        return Qwen2Config(**shared, **extra)
    bias = bool(llm.get("bias", llm.get("attention_bias", False)))  # InternLM2's `bias` covers wqkv and wo
    return LlamaConfig(**shared, attention_bias=bias, mlp_bias=bool(llm.get("mlp_bias", False)),
                       head_dim=llm["hidden_size"] // llm["num_attention_heads"])


def vision_config(vision: dict, image_size: int):
    from transformers import InternVLVisionConfig

    dropout = float(vision.get("attention_dropout", 0.0))
    return InternVLVisionConfig(
        hidden_size=vision["hidden_size"], num_hidden_layers=vision["num_hidden_layers"],
        num_attention_heads=vision["num_attention_heads"], intermediate_size=vision["intermediate_size"],
        hidden_act=vision.get("hidden_act", "gelu"), norm_type=vision.get("norm_type", "rms_norm"),
        layer_norm_eps=vision.get("layer_norm_eps", 1e-6), attention_bias=bool(vision.get("qkv_bias", False)),
        use_qk_norm=bool(vision.get("qk_normalization", False)), image_size=image_size, patch_size=vision["patch_size"],
        num_channels=vision.get("num_channels", 3), attention_dropout=dropout, projection_dropout=dropout,
        hidden_dropout_prob=float(vision.get("dropout", 0.0)), use_absolute_position_embeddings=True, use_mean_pooling=True,
    )


def _rename(key: str, renames) -> str:
    for pattern, replacement in renames:
        new, count = re.subn(pattern, replacement, key)
        if count:
            return new
    raise ConversionError(f"unexpected weight {key!r} in the checkpoint")


def _split_vision_qkv(tensor: torch.Tensor) -> tuple:
    # InternViT's qkv output is [all query heads | all key heads | all value heads].
    return tuple(t.contiguous() for t in tensor.chunk(3, dim=0))


def _split_wqkv(tensor: torch.Tensor, num_heads: int, num_kv_heads: int, head_dim: int) -> tuple:
    """InternLM2's packed projection, per key/value head: its group of query heads, then the key, then the value."""
    group = num_heads // num_kv_heads
    packed = tensor.reshape(num_kv_heads, group + 2, head_dim, *tensor.shape[1:])
    query = packed[:, :group].reshape(num_heads * head_dim, *tensor.shape[1:])
    key = packed[:, group].reshape(num_kv_heads * head_dim, *tensor.shape[1:])
    value = packed[:, group + 1].reshape(num_kv_heads * head_dim, *tensor.shape[1:])
    return query.contiguous(), key.contiguous(), value.contiguous()


def convert_state_dict(original: dict, text, lm_type: str) -> dict:
    """Native InternVL weights from the original state dict (tensors are shared, not copied, where no split is needed)."""
    lm_renames = _INTERNLM2_RENAMES if lm_type == "internlm2" else _NATIVE_LM_RENAMES
    converted = {}
    for key, tensor in original.items():
        new = _rename(key, _VISION_RENAMES if not key.startswith("language_model.") else lm_renames)
        if ".attention.qkv." in new:
            for name, part in zip(("q_proj", "k_proj", "v_proj"), _split_vision_qkv(tensor)):
                converted[new.replace(".qkv.", f".{name}.")] = part
        elif ".self_attn.wqkv." in new:
            parts = _split_wqkv(tensor, text.num_attention_heads, text.num_key_value_heads, text.head_dim)
            for name, part in zip(("q_proj", "k_proj", "v_proj"), parts):
                converted[new.replace(".wqkv.", f".{name}.")] = part
        else:
            converted[new] = tensor
    return converted


def load_weights(source) -> dict:
    """Every tensor of the checkpoint's safetensors files (sharded or not)."""
    from safetensors.torch import load_file

    source = Path(source)
    index = source / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() else sorted(
        p.name for p in source.glob("*.safetensors"))
    if not files:
        raise ConversionError(f"{source} holds no .safetensors weights (only safetensors checkpoints are converted).")
    weights = {}
    for name in files:
        weights.update(load_file(str(source / name)))
    return weights


def load_tokenizer(source, lm_type: str, vocab_size: int):
    """The checkpoint's tokenizer without its remote code, with InternVL's image tokens named."""
    from transformers import AutoTokenizer, LlamaTokenizer

    # Named, not added: every one is already in InternVL's vocabulary (checked below).
    special = {"start_image_token": IMAGE_START, "end_image_token": IMAGE_END, "context_image_token": IMAGE_CONTEXT}
    settings = json.loads((Path(source) / "tokenizer_config.json").read_text())
    if "InternLM2" in str(settings.get("tokenizer_class", "")):
        # The same SentencePiece model, read by transformers' own Llama tokenizer.
        tokenizer = LlamaTokenizer.from_pretrained(
            str(source), add_prefix_space=_adds_dummy_prefix(Path(source) / "tokenizer.model"), legacy=False,
            extra_special_tokens=special,
        )
    else:
        tokenizer = AutoTokenizer.from_pretrained(str(source), trust_remote_code=False, extra_special_tokens=special)
    tokenizer.init_kwargs.pop("auto_map", None)  # the remote tokenizer classes stay behind
    vocab = tokenizer.get_vocab()
    missing = [t for t in (IMAGE_START, IMAGE_END, IMAGE_CONTEXT, END_OF_TURN) if vocab.get(t, vocab_size) >= vocab_size]
    if missing:
        raise ConversionError(f"{source}: InternVL's tokens {missing} have no embedding among the language model's {vocab_size}")
    if len(tokenizer) > vocab_size:
        logger.warning("%s: the tokenizer has %d tokens for %d embeddings; the last ones cannot be used",
                       source, len(tokenizer), vocab_size)
    tokenizer.chat_template = chat_template(bos=lm_type != "qwen2")
    return tokenizer


def _adds_dummy_prefix(model_file: Path) -> bool:
    try:
        from sentencepiece import sentencepiece_model_pb2
    except ImportError as e:
        raise ConversionError("InternLM2's tokenizer is a SentencePiece model: `pip install sentencepiece` to convert it.") from e
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model_file.read_bytes())
    normalizer = proto.normalizer_spec
    if normalizer.name not in ("", "identity") or normalizer.remove_extra_whitespaces:
        # transformers' Llama tokenizer keeps text as it is; this model would normalise it first.
        logger.warning("%s normalises text (%s%s): converted token ids may differ from SentencePiece's on such text",
                       model_file, normalizer.name, ", collapses whitespace" if normalizer.remove_extra_whitespaces else "")
    return bool(normalizer.add_dummy_prefix)


def chat_template(bos: bool) -> str:
    """InternVL2.5's conversation format: ChatML turns, its default system message, one image placeholder per image."""
    return (
        ("{{ bos_token }}" if bos else "")
        + "{% if messages[0]['role'] != 'system' %}<|im_start|>system\n" + DEFAULT_SYSTEM_MESSAGE + "<|im_end|>\n{% endif %}"
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
        "{% if message['content'] is string %}{{ message['content'] }}"
        "{% else %}{% for part in message['content'] %}"
        "{% if part['type'] == 'image' %}" + IMAGE_CONTEXT + "\n{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
        "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )


def native_config(config: dict, tokenizer):
    from transformers import InternVLConfig

    text = text_config(config["llm_config"])
    image_size = int(config.get("force_image_size") or config["vision_config"]["image_size"])
    vision = vision_config(config["vision_config"], image_size)
    ratio = float(config.get("downsample_ratio", 0.5))
    patches = (image_size // vision.patch_size[0]) * (image_size // vision.patch_size[1])
    return InternVLConfig(
        vision_config=vision, text_config=text, image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_CONTEXT),
        image_seq_length=int(patches * ratio * ratio), downsample_ratio=ratio, projector_hidden_act="gelu",
        vision_feature_layer=int(config.get("select_layer", -1)), vision_feature_select_strategy="default",
        tie_word_embeddings=text.tie_word_embeddings, architectures=["InternVLForConditionalGeneration"],
    )


def convert_internvl(source, destination, dtype=None) -> str:
    """Write ``source`` (an InternVL remote-code checkpoint folder) to ``destination`` in the native format.

    ``dtype`` (e.g. ``torch.bfloat16``) casts the weights; None keeps the checkpoint's. The result loads with
    ``InternVLForConditionalGeneration.from_pretrained`` and as ``vlm_model`` of the transformers backend.
    """
    from transformers import GenerationConfig, InternVLForConditionalGeneration
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    from .internvl import InternVLImageProcessor

    config = read_remote_config(source)
    lm_type = config["llm_config"]["model_type"]
    tokenizer = load_tokenizer(source, lm_type, int(config["llm_config"]["vocab_size"]))
    native = native_config(config, tokenizer)
    logger.info("converting %s (InternViT + %s) to %s", source, lm_type, destination)
    original = load_weights(source)
    state = convert_state_dict(original, native.text_config, lm_type)
    del original
    if dtype is not None:
        state = {k: v.to(dtype) for k, v in state.items()}
    if native.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    with torch.device("meta"):
        model = InternVLForConditionalGeneration(native)
    # strict: a weight the native architecture does not have, or lacks, is an error rather than a silent default.
    expected = set(model.state_dict()) - ({"lm_head.weight"} if native.tie_word_embeddings else set())
    if set(state) != expected:
        raise ConversionError(f"{source}: weights do not match the native architecture "
                              f"(missing {sorted(expected - set(state))[:5]}, unexpected {sorted(set(state) - expected)[:5]})")
    model.load_state_dict(state, strict=False, assign=True)
    if native.tie_word_embeddings:
        model.lm_head.weight = model.get_input_embeddings().weight
    model.config.dtype = next(iter(state.values())).dtype
    os.makedirs(destination, exist_ok=True)
    model.save_pretrained(destination)

    image_processor = GotOcr2ImageProcessorPil(
        size={"height": native.vision_config.image_size[0], "width": native.vision_config.image_size[1]},
        crop_to_patches=bool(config.get("dynamic_image_size", False)), min_patches=int(config.get("min_dynamic_patch", 1)),
        max_patches=int(config.get("max_dynamic_patch", 12)), image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    )
    processor = InternVLImageProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                       image_seq_length=native.image_seq_length, chat_template=tokenizer.chat_template)
    processor.save_pretrained(destination)
    # Generation ends at the end of the assistant's turn, as InternVL's own chat() stops.
    end = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=end,
                     pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end).save_pretrained(destination)
    return str(destination)
