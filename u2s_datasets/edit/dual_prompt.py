"""Dual-prompt cross-attention: the edit instruction and the public caption, fused.

The UNet's cross-attention (``attn2``) receives the text tokens of both prompts,
concatenated along the token axis: ``[instruction tokens | public-caption tokens]``.
``DualPromptAttnProcessor`` attends to the instruction tokens exactly as diffusers'
``AttnProcessor2_0`` does, attends to the public-caption tokens in a second branch with
its own key/value projections, and adds that branch through a per-channel tanh gate:

    out = to_out(attn(q, K(instr), V(instr)) + tanh(gate) * attn(q, K'(public), V'(public)))

The gate starts at zero, so an untrained processor gives plain InstructPix2Pix bit for
bit; the public key/value projections start as copies of the layer's own, so the branch
is meaningful from the first training step (the gate's gradient is the public branch
itself). These gates and projections are what the fine-tuning step trains:
``dual_prompt_parameters(unet)``.

Two modes: ``"gated"`` (this processor, exactly plain InstructPix2Pix until trained) and
``"paper"`` (``safe_attention.SafeAttnProcessor``, the paper's SafeAttention with a fusion
of the two attention maps).

Weights live in ``<pipeline folder>/dual_prompt/dual_prompt.safetensors`` with the mode
and token split in ``dual_prompt/config.json``; ``save_dual_prompt(pipe, folder)`` writes
the whole pipeline plus those files, and ``load_dual_prompt(pipe, folder)`` installs the
processors of the saved mode and loads them.
"""

import copy
import json
import logging
import os
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .cross_attention import close_cross_attention, cross_attentions, heads, open_cross_attention
from .safe_attention import SafeAttnProcessor

logger = logging.getLogger(__name__)

DUAL_PROMPT_FOLDER = "dual_prompt"
DUAL_PROMPT_WEIGHTS = "dual_prompt.safetensors"


class DualPromptAttnProcessor(nn.Module):
    """Cross-attention over instruction tokens plus a gated branch over public-caption tokens.

    Args:
        hidden_size: the attention's inner dimension (``attn.to_k.out_features``).
        cross_attention_dim: the text embedding width (``attn.to_k.in_features``).
        instruction_tokens: how many leading tokens of ``encoder_hidden_states`` are the
            instruction's; the rest are the public caption's. With no more tokens than this,
            the processor is plain cross-attention.
        bias: whether the public key/value projections carry a bias (as the layer's own do).
    """

    mode = "gated"

    def __init__(self, hidden_size: int, cross_attention_dim: int, instruction_tokens: int = 77, bias: bool = False):
        super().__init__()
        self.instruction_tokens = instruction_tokens
        self.to_k_public = nn.Linear(cross_attention_dim, hidden_size, bias=bias)
        self.to_v_public = nn.Linear(cross_attention_dim, hidden_size, bias=bias)
        self.gate = nn.Parameter(torch.zeros(hidden_size))

    @classmethod
    def from_attention(cls, attn, instruction_tokens: int) -> "DualPromptAttnProcessor":
        """A processor for ``attn`` whose public projections start as copies of its own."""
        processor = cls(attn.to_k.out_features, attn.to_k.in_features, instruction_tokens, bias=attn.to_k.bias is not None)
        processor.to_k_public = copy.deepcopy(attn.to_k)
        processor.to_v_public = copy.deepcopy(attn.to_v)
        return processor.to(device=attn.to_k.weight.device, dtype=attn.to_k.weight.dtype)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
        residual, shape, hidden_states, instruction, public, attention_mask, batch_size = open_cross_attention(
            attn, hidden_states, encoder_hidden_states, attention_mask, temb, self.instruction_tokens, type(self).__name__
        )
        head_dim = attn.to_k.out_features // attn.heads
        query = heads(attn.to_q(hidden_states), batch_size, attn.heads, head_dim)
        if attn.norm_q is not None:
            query = attn.norm_q(query)

        hidden_states = self._attend(attn, query, attn.to_k(instruction), attn.to_v(instruction), attention_mask, batch_size, head_dim)
        if public.shape[1]:
            public_states = self._attend(attn, query, self.to_k_public(public), self.to_v_public(public), None, batch_size, head_dim)
            hidden_states = hidden_states + torch.tanh(self.gate).to(hidden_states.dtype) * public_states
        return close_cross_attention(attn, hidden_states, residual, shape)

    @staticmethod
    def _attend(attn, query, key, value, attention_mask, batch_size, head_dim):
        key = heads(key, batch_size, attn.heads, head_dim)
        value = heads(value, batch_size, attn.heads, head_dim)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False)
        return out.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim).to(query.dtype)


def processor_class(mode: str):
    """The processor class of a dual-prompt mode: ``"gated"`` or ``"paper"``."""
    classes = {"gated": DualPromptAttnProcessor, "paper": SafeAttnProcessor}
    if mode not in classes:
        raise ValueError(f"dual-prompt mode {mode!r} is not one of {tuple(classes)}")
    return classes[mode]


def install_dual_prompt(unet, instruction_tokens: int, mode: str = "gated") -> dict:
    """Put fresh processors of ``mode`` on every cross-attention of ``unet``; returns them by layer name."""
    cls = processor_class(mode)
    processors = {}
    for name, attn in cross_attentions(unet).items():
        processors[name] = cls.from_attention(attn, instruction_tokens)
        attn.set_processor(processors[name])
    if not processors:
        raise ValueError("This UNet has no cross-attention layers to give dual prompts to")
    return processors


def remove_dual_prompt(unet) -> None:
    """Back to plain SDPA cross-attention (the dual-prompt weights are dropped)."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    for attn in cross_attentions(unet).values():
        if _is_dual(attn.processor):
            attn.set_processor(AttnProcessor2_0())


def _is_dual(processor) -> bool:
    return getattr(processor, "mode", None) in ("gated", "paper") and hasattr(processor, "instruction_tokens")


def dual_prompt_processors(unet) -> dict:
    return {name: attn.processor for name, attn in cross_attentions(unet).items() if _is_dual(attn.processor)}


def dual_prompt_mode(unet) -> Optional[str]:
    """``"gated"``, ``"paper"``, or None when ``unet`` has no dual-prompt processors."""
    modes = {p.mode for p in dual_prompt_processors(unet).values()}
    if len(modes) > 1:
        raise ValueError(f"this UNet mixes dual-prompt modes {sorted(modes)}")
    return modes.pop() if modes else None


def dual_prompt_parameters(unet) -> list:
    """The parameters of the dual-prompt branches (public projections, and the gates or the fusion nets)."""
    return [p for processor in dual_prompt_processors(unet).values() for p in processor.parameters()]


def dual_prompt_state_dict(unet) -> dict:
    return {f"{name}.{key}": value for name, processor in dual_prompt_processors(unet).items() for key, value in processor.state_dict().items()}


def save_dual_prompt(pipe, folder: str) -> None:
    """Save ``pipe`` to ``folder`` with its dual-prompt weights in ``folder/dual_prompt/``.

    The pipeline's own files stay those of a plain pipeline (the processors are swapped out
    while it is written), so any diffusers code still loads it.
    """
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in dual_prompt_state_dict(pipe.unet).items()}
    if not state:
        raise ValueError("This pipeline has no dual-prompt processors to save; call install_dual_prompt(pipe.unet, ...) first")
    processors = dual_prompt_processors(pipe.unet)
    instruction_tokens = next(iter(processors.values())).instruction_tokens
    mode = dual_prompt_mode(pipe.unet)
    remove_dual_prompt(pipe.unet)
    try:
        pipe.save_pretrained(folder, safe_serialization=True)
    finally:
        attentions = cross_attentions(pipe.unet)
        for name, processor in processors.items():
            attentions[name].set_processor(processor)
    target = os.path.join(folder, DUAL_PROMPT_FOLDER)
    os.makedirs(target, exist_ok=True)
    save_file(state, os.path.join(target, DUAL_PROMPT_WEIGHTS))
    with open(os.path.join(target, "config.json"), "w") as f:
        json.dump({"mode": mode, "instruction_tokens": instruction_tokens}, f, indent=2)


def find_dual_prompt(model: str, revision: Optional[str] = None, local_files_only: bool = False) -> Optional[str]:
    """The dual-prompt weights file that ships with ``model`` (local folder or hub id), or None."""
    if os.path.isdir(model):
        path = os.path.join(model, DUAL_PROMPT_FOLDER, DUAL_PROMPT_WEIGHTS)
        return path if os.path.isfile(path) else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        weights = hf_hub_download(model, f"{DUAL_PROMPT_FOLDER}/{DUAL_PROMPT_WEIGHTS}", revision=revision, local_files_only=local_files_only)
    except (EntryNotFoundError, OSError) as e:
        logger.info("No dual-prompt weights found for %s (%s)", model, e)
        return None
    try:  # the mode and token split, beside the weights in the same snapshot
        hf_hub_download(model, f"{DUAL_PROMPT_FOLDER}/config.json", revision=revision, local_files_only=local_files_only)
    except (EntryNotFoundError, OSError) as e:
        logger.info("No dual-prompt config for %s (%s); gated weights assumed", model, e)
    return weights


def saved_dual_prompt_config(weights: str) -> dict:
    """The ``config.json`` beside a dual-prompt weights file: mode (``"gated"`` when absent) and token split."""
    config_path = os.path.join(os.path.dirname(weights), "config.json")
    config = {}
    if os.path.isfile(config_path):
        with open(config_path) as f:
            config = json.load(f)
    config.setdefault("mode", "gated")  # weights written before modes existed are gated ones
    return config


def load_dual_prompt(pipe, weights: str, instruction_tokens: Optional[int] = None) -> dict:
    """Install dual-prompt processors of the saved mode on ``pipe.unet`` and load ``weights`` (a file, or a pipeline folder)."""
    from safetensors.torch import load_file

    if os.path.isdir(weights):
        weights = os.path.join(weights, DUAL_PROMPT_FOLDER, DUAL_PROMPT_WEIGHTS)
    saved = saved_dual_prompt_config(weights)
    if instruction_tokens is None:
        instruction_tokens = saved.get("instruction_tokens", pipe.tokenizer.model_max_length)
    processors = install_dual_prompt(pipe.unet, instruction_tokens, saved["mode"])
    state = load_file(weights)
    for name, processor in processors.items():
        prefix = name + "."
        own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if not own:
            raise ValueError(f"{weights} has no dual-prompt weights for layer {name}; it was saved for another UNet")
        processor.load_state_dict(own, strict=True)
    unused = set(state) - {f"{n}.{k}" for n, p in processors.items() for k in p.state_dict()}
    if unused:
        raise ValueError(f"{weights} holds weights for layers this UNet lacks (e.g. {sorted(unused)[0]})")
    return processors
