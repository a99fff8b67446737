"""SafeAttention: the paper's dual-prompt cross-attention (``dual_prompt="paper"``).

Every cross-attention layer attends twice with the same image features: once to the edit
instruction with the layer's own projections, once to the public caption with its own
query/key/value projections (copies of the layer's at the start). The two attention maps
are concatenated along the token axis and passed, one query row at a time, through a
small fusion net (Conv1d 1->16, GELU, Conv1d 16->1, kernel 3); the public part of the
result is normalised again with a softmax:

    A_e = softmax(Q_e K_e^T / sqrt(d))           A_p = softmax(Q_p K_p^T / sqrt(d))
    A_p' = softmax(fuse([A_e | A_p])[public tokens])
    out = to_out(A_e V_e + A_p' V_p)

Unlike the zero-gated processor (``"gated"``), this one changes the output before training:
the public branch is open from the start, and fine-tuning on triplets teaches the UNet and
the fusion to use it.
"""

import copy

import torch
from torch import nn

from .cross_attention import close_cross_attention, open_cross_attention


class SafeAttnProcessor(nn.Module):
    """Cross-attention over ``[instruction tokens | public-caption tokens]`` with a learned fusion of the two attention maps.

    Args:
        query_dim: the image feature width (``attn.to_q.in_features``).
        hidden_size: the attention's inner dimension (``attn.to_k.out_features``).
        cross_attention_dim: the text embedding width (``attn.to_k.in_features``).
        instruction_tokens: how many leading tokens of ``encoder_hidden_states`` are the
            instruction's; the rest are the public caption's. With no more tokens than this,
            the processor is plain cross-attention.
        bias: whether the public projections carry a bias (as the layer's own do).
        fusion_channels, kernel_size: the fusion net's width and kernel.
    """

    mode = "paper"

    def __init__(self, query_dim: int, hidden_size: int, cross_attention_dim: int, instruction_tokens: int = 77,
                 bias: bool = False, fusion_channels: int = 16, kernel_size: int = 3):
        super().__init__()
        self.instruction_tokens = instruction_tokens
        self.to_q_public = nn.Linear(query_dim, hidden_size, bias=bias)
        self.to_k_public = nn.Linear(cross_attention_dim, hidden_size, bias=bias)
        self.to_v_public = nn.Linear(cross_attention_dim, hidden_size, bias=bias)
        padding = kernel_size // 2
        self.fusion = nn.Sequential(
            nn.Conv1d(1, fusion_channels, kernel_size, padding=padding),
            nn.GELU(),
            nn.Conv1d(fusion_channels, 1, kernel_size, padding=padding),
        )

    @classmethod
    def from_attention(cls, attn, instruction_tokens: int) -> "SafeAttnProcessor":
        """A processor for ``attn`` whose public projections start as copies of its own."""
        processor = cls(attn.to_q.in_features, attn.to_k.out_features, attn.to_k.in_features, instruction_tokens,
                        bias=attn.to_k.bias is not None)
        processor.to_q_public = copy.deepcopy(attn.to_q)
        processor.to_k_public = copy.deepcopy(attn.to_k)
        processor.to_v_public = copy.deepcopy(attn.to_v)
        return processor.to(device=attn.to_k.weight.device, dtype=attn.to_k.weight.dtype)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
        residual, shape, hidden_states, instruction, public, attention_mask, batch_size = open_cross_attention(
            attn, hidden_states, encoder_hidden_states, attention_mask, temb, self.instruction_tokens, type(self).__name__
        )
        head_dim = attn.to_k.out_features // attn.heads
        split = lambda x: x.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)  # noqa: E731
        query, key, value = split(attn.to_q(hidden_states)), split(attn.to_k(instruction)), split(attn.to_v(instruction))
        if attn.norm_q is not None:
            query, key = attn.norm_q(query), attn.norm_k(key)
        attn_edit = _attention_map(query, key, attn.scale, attention_mask)
        out = attn_edit @ value
        if public.shape[1]:
            query_p, key_p = split(self.to_q_public(hidden_states)), split(self.to_k_public(public))
            value_p = split(self.to_v_public(public))
            if attn.norm_q is not None:
                query_p, key_p = attn.norm_q(query_p), attn.norm_k(key_p)
            attn_public = _attention_map(query_p, key_p, attn.scale, None)
            out = out + self.fuse(attn_edit, attn_public) @ value_p

        hidden_states = out.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim).to(query.dtype)
        return close_cross_attention(attn, hidden_states, residual, shape)

    def fuse(self, attn_edit: torch.Tensor, attn_public: torch.Tensor) -> torch.Tensor:
        """The public attention map after the fusion net: ``softmax(fuse([A_e | A_p])[..., public])``."""
        *lead, edit_tokens = attn_edit.shape
        both = torch.cat([attn_edit, attn_public], dim=-1)
        fused = self.fusion(both.reshape(-1, 1, both.shape[-1]).to(self.fusion[0].weight.dtype))
        fused = fused.reshape(*lead, both.shape[-1])[..., edit_tokens:]
        return fused.float().softmax(dim=-1).to(attn_public.dtype)


def _attention_map(query, key, scale, attention_mask):
    # Softmax in fp32: bf16 logits over 77 tokens lose the small weights the fusion reads.
    scores = (query @ key.transpose(-1, -2)).float() * scale
    if attention_mask is not None:
        scores = scores + attention_mask.float()
    return scores.softmax(dim=-1).to(query.dtype)
