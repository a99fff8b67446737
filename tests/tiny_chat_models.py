"""Tiny random-weight chat models saved like real checkpoints, for stage-1 tests and benchmarks.

A LLaVA (CLIP vision tower + Llama language model) and an Idefics3 (the SmolVLM
architecture) with their processors, and a Llama causal LM with its tokenizer. The tokenizer is character-level, built in-process; both
carry a chat template, so they load through the same ``from_pretrained`` path as hub models.
"""

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    CLIPVisionConfig,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3Processor,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)
from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil
from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

SPECIAL = ["<unk>", "<pad>", "<s>", "</s>", "<image>", "<|user|>", "<|assistant|>", "<|system|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>"
    "{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}"
    "{% endif %}</s>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def char_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {token: i for i, token in enumerate(SPECIAL + [chr(i) for i in range(32, 127)] + ["\n"])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>",
        additional_special_tokens=SPECIAL[4:],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _llama(vocab_size) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=4096, pad_token_id=1, bos_token_id=2, eos_token_id=3,
    )


def save_tiny_vlm(folder, seed: int = 0) -> str:
    tokenizer = char_tokenizer()
    image_processor = LlavaImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=8, vision_feature_select_strategy="full",
        num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE,
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8
        ),
        text_config=_llama(len(tokenizer)),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)


def save_tiny_lm(folder, seed: int = 1) -> str:
    tokenizer = char_tokenizer()
    torch.manual_seed(seed)
    LlamaForCausalLM(_llama(len(tokenizer))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def save_tiny_idefics3(folder, seed: int = 0) -> str:
    tokenizer = char_tokenizer()
    tokenizer.add_special_tokens(
        {"additional_special_tokens": SPECIAL[4:] + ["<fake_token_around_image>", "<global-img>", "<end_of_utterance>"]}
    )
    image_processor = Idefics3ImageProcessorPil(size={"longest_edge": 64}, max_image_size={"longest_edge": 32}, do_image_splitting=False)
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=4, chat_template=CHAT_TEMPLATE)
    config = Idefics3Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8),
        text_config=_llama(len(tokenizer)).to_dict(),
        scale_factor=2,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=1,
    )
    torch.manual_seed(seed)
    Idefics3ForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)


def save_tiny_internvl(folder, seed: int = 0) -> str:
    """transformers' native InternVL architecture (the paper's inspector and judge), tiny and random."""
    from transformers import InternVLConfig, InternVLForConditionalGeneration
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    from u2s_datasets.models.internvl import InternVLImageProcessor

    base = char_tokenizer()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=base.backend_tokenizer, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>",
        extra_special_tokens={"start_image_token": "<img>", "end_image_token": "</img>",
                              "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"},
    )
    template = CHAT_TEMPLATE.replace("<image>", "<IMG_CONTEXT>")
    tokenizer.chat_template = template
    processor = InternVLImageProcessor(
        image_processor=GotOcr2ImageProcessorPil(size={"height": 32, "width": 32}, crop_to_patches=False),
        tokenizer=tokenizer, image_seq_length=4, chat_template=template,
    )
    config = InternVLConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=[32, 32], patch_size=[8, 8]),
        text_config=_llama(len(tokenizer)).to_dict(),
        image_token_id=tokenizer.context_image_token_id,
        downsample_ratio=0.5,
    )
    torch.manual_seed(seed)
    InternVLForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)
