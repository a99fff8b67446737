"""OminiControl on FLUX.1: the source image as a condition branch of the transformer's sequence.

OminiControl (Tan et al., 2024; the paper's FLUX editor) runs FLUX.1 over three branches of
tokens: the prompt, the image being denoised, and the condition image's VAE tokens. As its
``transformer_forward`` does, and built on diffusers' ``FluxTransformer2DModel`` modules:

- the condition tokens carry position ids of their own, the latent grid's ``(0, row, col)``
  plus a position delta (``(0, 0)`` in the paper's subject runs: aligned with the image);
- the condition branch is modulated with timestep 0, the prompt and image with the current one;
- a LoRA adapter acts on the condition branch only: the prompt's and image's projections stay
  FLUX's own, except the transformer's last ``proj_out``, whose adapter (a target of the same
  name list) acts on the image output as it does in OminiControl;
- in the single-stream blocks every branch computes its own modulation and gates;
- attention is joint over the three branches (OminiControl's group mask, for one condition, is full).

``OminiTransformer`` wraps a transformer with this forward (an ``nn.Module``, so distributed
training sees it); ``FluxOminiEditor`` samples with it (the ``flux-omini`` editor).
"""

import contextlib
import json
import logging
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .diffusion import DiffusionEditor
from .errors import EditorModelError

logger = logging.getLogger(__name__)

# The paper's subject LoRA targets (OminiControl's config, as a peft target list).
LORA_MODULES = ["x_embedder", "norm1.linear", "attn.to_k", "attn.to_q", "attn.to_v", "attn.to_out.0", "ff.net.2", "proj_mlp", "proj_out"]
OMINI_FILE = "omini.json"
LORA_FOLDER = "omini_lora"
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
ADAPTER = "subject"


def lora_layers(module) -> list:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in module.modules() if isinstance(m, BaseTunerLayer)]


@contextlib.contextmanager
def adapters(layers: list, on: bool):
    """The LoRA adapters of ``layers`` at their full scale (``on``) or at zero, restored to full on leaving."""
    for layer in layers:
        for name in layer.scaling:
            layer.set_scale(name, 1.0 if on else 0.0)
    try:
        yield
    finally:
        for layer in layers:
            for name in layer.scaling:
                layer.set_scale(name, 1.0)


def _heads(x, attn):
    return x.unflatten(-1, (-1, attn.head_dim))


def _attention(query, key, value, rotary):
    from diffusers.models.embeddings import apply_rotary_emb

    query, key = apply_rotary_emb(query, rotary, sequence_dim=1), apply_rotary_emb(key, rotary, sequence_dim=1)
    out = F.scaled_dot_product_attention(query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2))
    return out.transpose(1, 2).flatten(2, 3).to(query.dtype)


def _clip16(x):
    return x.clip(-65504, 65504) if x.dtype == torch.float16 else x


def dual_block(block, layers, text, image, condition, temb, temb_condition, rotary):
    """One double-stream block over the three branches; LoRA on the condition's modules only."""
    attn = block.attn
    with adapters(layers, False):
        text_n, t_gate, t_shift, t_scale, t_gate_mlp = block.norm1_context(text, emb=temb)
        image_n, i_gate, i_shift, i_scale, i_gate_mlp = block.norm1(image, emb=temb)
        t_q, t_k, t_v = (_heads(p(text_n), attn) for p in (attn.add_q_proj, attn.add_k_proj, attn.add_v_proj))
        i_q, i_k, i_v = (_heads(p(image_n), attn) for p in (attn.to_q, attn.to_k, attn.to_v))
    with adapters(layers, True):
        cond_n, c_gate, c_shift, c_scale, c_gate_mlp = block.norm1(condition, emb=temb_condition)
        c_q, c_k, c_v = (_heads(p(cond_n), attn) for p in (attn.to_q, attn.to_k, attn.to_v))
    query = torch.cat([attn.norm_added_q(t_q), attn.norm_q(i_q), attn.norm_q(c_q)], dim=1)
    key = torch.cat([attn.norm_added_k(t_k), attn.norm_k(i_k), attn.norm_k(c_k)], dim=1)
    out = _attention(query, key, torch.cat([t_v, i_v, c_v], dim=1), rotary)
    t_out, i_out, c_out = out.split([text.shape[1], image.shape[1], condition.shape[1]], dim=1)

    def feed_forward(x, attn_out, gate, shift, scale, gate_mlp, norm, ff):
        x = x + gate.unsqueeze(1) * attn_out
        return _clip16(x + gate_mlp.unsqueeze(1) * ff(norm(x) * (1 + scale[:, None]) + shift[:, None]))

    with adapters(layers, False):
        text = feed_forward(text, attn.to_add_out(t_out), t_gate, t_shift, t_scale, t_gate_mlp, block.norm2_context, block.ff_context)
        image = feed_forward(image, attn.to_out[0](i_out), i_gate, i_shift, i_scale, i_gate_mlp, block.norm2, block.ff)
    with adapters(layers, True):
        condition = feed_forward(condition, attn.to_out[0](c_out), c_gate, c_shift, c_scale, c_gate_mlp, block.norm2, block.ff)
    return text, image, condition


def single_block(block, layers, branches, tembs, lora_on, rotary):
    """One single-stream block; each branch has its own modulation and gates, attention is joint."""
    attn = block.attn
    normed, gates, mlps, qkv = [], [], [], []
    for x, temb, on in zip(branches, tembs, lora_on):
        with adapters(layers, on):
            x_n, gate = block.norm(x, emb=temb)
            mlps.append(block.act_mlp(block.proj_mlp(x_n)))
            q, k, v = (_heads(p(x_n), attn) for p in (attn.to_q, attn.to_k, attn.to_v))
        normed.append(x_n)
        gates.append(gate)
        qkv.append((attn.norm_q(q), attn.norm_k(k), v))
    out = _attention(*(torch.cat(parts, dim=1) for parts in zip(*qkv)), rotary)
    outs = out.split([x.shape[1] for x in branches], dim=1)
    result = []
    for x, attn_out, mlp, gate, on in zip(branches, outs, mlps, gates, lora_on):
        with adapters(layers, on):
            result.append(_clip16(x + gate.unsqueeze(1) * block.proj_out(torch.cat([attn_out, mlp], dim=2))))
    return result


class OminiTransformer(nn.Module):
    """A ``FluxTransformer2DModel`` run the OminiControl way; returns the velocity of the image tokens."""

    def __init__(self, transformer):
        super().__init__()
        self.transformer = transformer
        self.gradient_checkpointing = False
        self._layers = None

    def block_layers(self) -> list:
        if self._layers is None:  # the LoRA layers of each block, found once
            t = self.transformer
            self._layers = [lora_layers(b) for b in (*t.transformer_blocks, *t.single_transformer_blocks)]
        return self._layers

    def _temb(self, timestep, guidance, pooled):
        t = self.transformer
        timestep = timestep.to(pooled.dtype) * 1000
        if t.config.guidance_embeds:
            return t.time_text_embed(timestep, guidance.to(pooled.dtype) * 1000, pooled)
        return t.time_text_embed(timestep, pooled)

    def _run(self, fn, *args):
        if self.training and self.gradient_checkpointing and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def forward(self, latents, latent_ids, condition, condition_ids, prompt_embeds, pooled, text_ids, timestep, guidance=None,
                condition_guidance=None):
        t = self.transformer
        top = lora_layers(t.x_embedder)
        with adapters(top, False):
            image = t.x_embedder(latents)
        with adapters(top, True):
            condition = t.x_embedder(condition)
        text = t.context_embedder(prompt_embeds)
        guidance = guidance if guidance is not None else torch.ones_like(timestep)
        condition_guidance = condition_guidance if condition_guidance is not None else torch.ones_like(timestep)
        temb = self._temb(timestep, guidance, pooled)
        temb_condition = self._temb(torch.zeros_like(timestep), condition_guidance, pooled)
        rotary = t.pos_embed(torch.cat([text_ids, latent_ids, condition_ids], dim=0))
        layers = self.block_layers()
        for block, block_lora in zip(t.transformer_blocks, layers):
            text, image, condition = self._run(dual_block, block, block_lora, text, image, condition, temb, temb_condition, rotary)
        branches = [text, image, condition]
        for block, block_lora in zip(t.single_transformer_blocks, layers[len(t.transformer_blocks):]):
            branches = self._run(single_block, block, block_lora, branches, [temb, temb, temb_condition], [False, False, True], rotary)
        image = t.norm_out(branches[1], temb)
        return t.proj_out(image)  # its adapter acts here, as in OminiControl


def encode_tokens(pipe, pixels, generator=None):
    """Packed VAE tokens of images in [-1, 1] and their ``(0, row, col)`` position ids."""
    vae = pipe.vae
    dist = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist
    latents = dist.sample(generator) if generator is not None else dist.mode()
    latents = (latents - vae.config.shift_factor) * vae.config.scaling_factor
    bsz, channels, height, width = latents.shape
    tokens = pipe._pack_latents(latents, bsz, channels, height, width)
    ids = pipe._prepare_latent_image_ids(bsz, height // 2, width // 2, latents.device, latents.dtype)
    return tokens, ids


def condition_ids(ids, delta=(0, 0)):
    shifted = ids.clone()
    shifted[:, 1] += delta[0]
    shifted[:, 2] += delta[1]
    return shifted


def read_omini_folder(model: str, revision=None, local_files_only: bool = False) -> dict:
    """``omini.json`` of a trained folder or hub repo, with the path of its adapter weights added."""
    from huggingface_hub import hf_hub_download

    def fetch(name):
        if os.path.isdir(model):
            path = os.path.join(model, name)
            if not os.path.isfile(path):
                raise FileNotFoundError(path)
            return path
        return hf_hub_download(model, name, revision=revision, local_files_only=local_files_only)

    try:
        with open(fetch(OMINI_FILE)) as f:
            settings = json.load(f)
        settings["lora_path"] = fetch(f"{LORA_FOLDER}/{LORA_WEIGHTS}")
    except Exception as e:  # a missing file, repo or network: one message saying what the folder must hold
        raise EditorModelError(
            f"{model!r} is not an OminiControl editor: it needs {OMINI_FILE} and {LORA_FOLDER}/{LORA_WEIGHTS} "
            f"(the output of `u2s finetune --editor flux-omini`): {e}") from e
    return settings


class FluxOminiEditor(DiffusionEditor):
    """The ``flux-omini`` editor: a trained OminiControl subject LoRA on its FLUX.1 base, the source image as condition.

    ``editor_model`` is the trained folder (or hub repo): ``omini.json`` names the base FLUX.1
    pipeline (and revision) and the position delta; the adapter is in ``omini_lora/``.
    Sampling follows OminiControl's: the FLUX flow schedule shifted for the image size,
    distilled guidance on the image branch and 1 on the condition branch; 8 steps and 512 px,
    as the paper's generation script.
    """

    pipeline_class = "FluxPipeline"
    default_model = ""
    denoiser = "transformer"
    grid = 16
    default_resolution = 512
    default_steps = 8
    default_guidance = 3.5

    def _load(self):
        if not self.model_id:
            raise EditorModelError("the flux-omini editor needs editor_model= a folder or hub repo from `u2s finetune --editor flux-omini`")
        self.omini = read_omini_folder(self.model_id, self.model_revision, self.model_settings.local_files_only)
        self.model_id, self.model_revision = self.omini["base_model"], self.omini.get("base_revision")
        pipe = super()._load()
        folder, weight_name = os.path.split(self.omini["lora_path"])
        pipe.load_lora_weights(folder, weight_name=weight_name, adapter_name=ADAPTER)
        self.omini_transformer = OminiTransformer(pipe.transformer).eval()
        return pipe

    def _run(self, requests, images, generators, size):
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift, retrieve_timesteps

        pipe, device = self.pipe, self.pipe._execution_device
        width, height = size
        prompts = [r.instruction.instruction for r in requests]
        prompt_embeds, pooled, text_ids = pipe.encode_prompt(prompt=prompts, prompt_2=None, device=device, max_sequence_length=512)
        pixels = pipe.image_processor.preprocess(images, height=height, width=width)
        condition, ids = encode_tokens(pipe, pixels)
        cond_ids = condition_ids(ids, self.omini.get("position_delta", (0, 0)))
        channels = pipe.transformer.config.in_channels // 4
        latents, latent_ids = pipe.prepare_latents(len(requests), channels, height, width, prompt_embeds.dtype, device, generators)
        sigmas = np.linspace(1.0, 1 / self.steps, self.steps)
        scheduler = pipe.scheduler
        mu = calculate_shift(latents.shape[1], scheduler.config.get("base_image_seq_len", 256), scheduler.config.get("max_image_seq_len", 4096),
                             scheduler.config.get("base_shift", 0.5), scheduler.config.get("max_shift", 1.15))
        timesteps, _ = retrieve_timesteps(scheduler, self.steps, device, sigmas=sigmas, mu=mu)
        guidance = torch.full((len(requests),), self.guidance, device=device)
        for t in timesteps:
            timestep = t.expand(len(requests)).to(latents.dtype) / 1000
            velocity = self.omini_transformer(latents, latent_ids, condition.to(latents.dtype), cond_ids, prompt_embeds, pooled, text_ids,
                                              timestep, guidance, torch.ones_like(guidance))
            latents = scheduler.step(velocity, t, latents, return_dict=False)[0]
        latents = pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor)
        latents = latents / pipe.vae.config.scaling_factor + pipe.vae.config.shift_factor
        decoded = pipe.vae.decode(latents.to(pipe.vae.dtype), return_dict=False)[0]
        return pipe.image_processor.postprocess(decoded, output_type="np")
