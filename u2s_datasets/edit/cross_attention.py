"""diffusers' cross-attention plumbing that both dual-prompt processors share: the preamble that
splits the text into its two prompts, the epilogue, head reshaping and finding a UNet's cross-attentions."""


def open_cross_attention(attn, hidden_states, encoder_hidden_states, attention_mask, temb, instruction_tokens, who):
    """diffusers' attention preamble for a dual-prompt processor, with the text split into its two prompts.

    Returns ``(residual, shape, hidden_states, instruction, public, attention_mask, batch_size)``;
    ``shape`` is the 4-D input shape to restore, or None.
    """
    residual = hidden_states
    if attn.spatial_norm is not None:
        hidden_states = attn.spatial_norm(hidden_states, temb)
    shape = tuple(hidden_states.shape) if hidden_states.ndim == 4 else None
    if shape is not None:
        hidden_states = hidden_states.view(shape[0], shape[1], shape[2] * shape[3]).transpose(1, 2)
    if encoder_hidden_states is None:
        raise ValueError(f"{who} is for cross-attention; it got no encoder_hidden_states")
    batch_size = encoder_hidden_states.shape[0]
    instruction = encoder_hidden_states[:, :instruction_tokens]
    public = encoder_hidden_states[:, instruction_tokens:]
    if attention_mask is not None:
        attention_mask = attn.prepare_attention_mask(attention_mask, instruction.shape[1], batch_size)
        attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])
    if attn.group_norm is not None:
        hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
    if attn.norm_cross:
        instruction = attn.norm_encoder_hidden_states(instruction)
        public = attn.norm_encoder_hidden_states(public) if public.shape[1] else public
    return residual, shape, hidden_states, instruction, public, attention_mask, batch_size


def close_cross_attention(attn, hidden_states, residual, shape):
    """diffusers' attention epilogue: output projection, 4-D shape back, residual, rescale."""
    hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
    if shape is not None:
        hidden_states = hidden_states.transpose(-1, -2).reshape(*shape)
    if attn.residual_connection:
        hidden_states = hidden_states + residual
    return hidden_states / attn.rescale_output_factor


def heads(x, batch_size, heads, head_dim):
    return x.view(batch_size, -1, heads, head_dim).transpose(1, 2)


def cross_attentions(unet) -> dict:
    from diffusers.models.attention_processor import Attention

    return {name: m for name, m in unet.named_modules() if isinstance(m, Attention) and m.is_cross_attention}
