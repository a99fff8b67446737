"""Random-weight evaluation models written to folders, for tests, ``u2s reproduce --tiny`` and notebooks.

Each builder saves a model of the real architecture (CLIP, MAE's ViT encoder, VGG16's features,
a LLaVA-shaped VLM, an antelopev2-shaped ONNX pack) with tiny shapes, so that the metrics load
it through their ordinary ``from_pretrained`` / onnxruntime code. Nothing downloads; the
figures they give only show that every step runs.
"""

import json
import os

import numpy as np
import torch

CHAT_TEMPLATE = (
    "{% for message in messages %}USER: {% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}\n{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def _byte_tokenizer(folder: str, extra_special=()):
    """A CLIP BPE tokenizer with a byte-level vocabulary and no merges (one token per character), saved files."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    symbols = sorted(ByteLevel.alphabet())
    vocab = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w") as f:
        json.dump({token: i for i, token in enumerate(vocab)}, f)
    with open(os.path.join(folder, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n")
    tokenizer = CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"), model_max_length=77)
    if extra_special:
        tokenizer.add_special_tokens({"additional_special_tokens": list(extra_special)})
    return tokenizer


def save_random_clip(folder: str, seed: int = 0) -> str:
    """A CLIP (32-px images, 32-wide towers) with its processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    torch.manual_seed(seed)
    tokenizer = _byte_tokenizer(os.path.join(folder, "_tok"))
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8),
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(folder, safe_serialization=True)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def save_random_mae(folder: str, seed: int = 0) -> str:
    """MAE's encoder (``ViTMAEModel``, 32-px images, 8-px patches) with a PIL image processor."""
    from transformers import ViTMAEConfig, ViTMAEModel
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    torch.manual_seed(seed)
    ViTMAEModel(ViTMAEConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                             image_size=32, patch_size=8)).save_pretrained(folder)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def save_random_vgg16(folder: str, seed: int = 0) -> str:
    """VGG16's feature layers, random, stored as timm's ``vgg16.tv_in1k`` stores them (the LPIPS backbone)."""
    from safetensors.torch import save_file

    from ..evaluation.lpips_vgg import vgg16_features

    torch.manual_seed(seed)
    os.makedirs(folder, exist_ok=True)
    save_file({f"features.{k}": v for k, v in vgg16_features().state_dict().items()}, os.path.join(folder, "model.safetensors"))
    return folder


def save_random_vlm(folder: str, seed: int = 0, short_answers: bool = True) -> str:
    """A LLaVA (CLIP vision tower + Llama, both tiny) with a processor and chat template: a judge that answers at random.

    ``short_answers``: its generation config ends an answer at any end-of-word token, so that random
    answers are a word or two instead of running to ``max_new_tokens`` (the paper's prompts allow 1024).
    """
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration,
                              LlavaProcessor)

    torch.manual_seed(seed)
    tokenizer = _byte_tokenizer(os.path.join(folder, "_tok"), extra_special=("<image>",))
    tokenizer.pad_token = "<|endoftext|>"
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                       num_key_value_heads=2, max_position_embeddings=4096, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                         vision_feature_layer=-1, vision_feature_select_strategy="default")
    model = LlavaForConditionalGeneration(config)
    if short_answers:
        ends = [i for token, i in tokenizer.get_vocab().items() if token.endswith("</w>")]
        model.generation_config.eos_token_id = [tokenizer.eos_token_id, *sorted(ends)]
    model.save_pretrained(folder, safe_serialization=True)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=8, vision_feature_select_strategy="default",
                   chat_template=CHAT_TEMPLATE, num_additional_image_tokens=1).save_pretrained(folder)
    return folder


def save_antelope_pack(folder: str, size: int = 512, seed: int = 0) -> str:
    """An antelopev2-shaped pack: ``scrfd_10g_bnkps.onnx`` with SCRFD's signature that reports one face at the
    centre of its ``size`` input (landmarks on ArcFace's template), and ``glintr100.onnx`` a random 512-D
    recogniser of the crop's mean colours on a 4x4 grid."""
    from onnx import TensorProto, helper, numpy_helper, save

    from ..evaluation.antelope import ARCFACE_TEMPLATE

    os.makedirs(folder, exist_ok=True)
    nodes, outputs, cell = [], [], size // 32 // 2
    for kind, width in (("score", 1), ("bbox", 4), ("kps", 10)):
        for stride in (8, 16, 32):
            value = np.zeros(((size // stride) ** 2 * 2, width), np.float32)
            if stride == 32:
                anchor = (cell * (size // 32) + cell) * 2
                value[anchor] = {"score": [0.9], "bbox": [4, 4, 4, 4], "kps": (ARCFACE_TEMPLATE.reshape(-1) - 56) / 16}[kind]
            name = f"{kind}_{stride}"
            nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name + "_v")))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    image = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, None, None])
    save(helper.make_model(helper.make_graph(nodes, "scrfd", [image], outputs), opset_imports=[helper.make_opsetid("", 13)]),
         os.path.join(folder, "scrfd_10g_bnkps.onnx"))
    grid = 4
    weights = np.random.default_rng(seed).standard_normal((3 * grid * grid, 512)).astype(np.float32)
    recogniser = [helper.make_node("AveragePool", ["data"], ["pooled"], kernel_shape=[112 // grid] * 2, strides=[112 // grid] * 2),
                  helper.make_node("Flatten", ["pooled"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["fc1"])]
    graph = helper.make_graph(recogniser, "arcface", [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 112, 112])],
                              [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 512])], [numpy_helper.from_array(weights, "w")])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), os.path.join(folder, "glintr100.onnx"))
    return folder
