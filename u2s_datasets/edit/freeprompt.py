"""``freeprompt``: FreePrompt editing (Liu et al., CVPR 2024), the paper's training-free baseline, on Stable Diffusion.

The source image is inverted with deterministic DDIM under the source prompt (empty, as in
the paper's runs); then source and target (the public caption) are denoised side by side
from the inverted noise, the source branch held on the inversion trajectory. For the first
``self_replace`` fraction of the steps (0.4 in the paper), every UNet self-attention layer
with at most 32 x 32 keys gives the target the source's attention map (conditional pass
only; cross-attention untouched), which keeps the layout while the prompt changes the
content. FreePrompt's sampler: DDIM, scaled-linear betas 0.00085-0.012, no clipping,
``set_alpha_to_one=False``, 50 steps, text guidance 7.5, 512 px.

Installed with diffusers' attention-processor API (``unet.set_attn_processor``); no
randomness: a row's output depends on its image and captions alone.
"""

import torch

from .diffusion import DiffusionEditor

SELF_REPLACE = 0.4
MAX_REPLACED_KEYS = 32 * 32  # FreePrompt leaves the finest (64 x 64 at 512 px) self-attention layers alone


class FreePromptControl:
    """Which denoising step it is, and how many rows: the batch is [uncond src | uncond tgt | cond src | cond tgt]
    ([src | tgt] without guidance)."""

    def __init__(self):
        self.enabled, self.step, self.until, self.rows = False, 0, 0, 1

    def replaces(self, self_attention: bool, keys: int) -> bool:
        return self.enabled and self_attention and self.step < self.until and keys <= MAX_REPLACED_KEYS


class FreePromptAttnProcessor:
    """diffusers' attention with FreePrompt's self-attention replacement; plain SDPA attention when it does not apply."""

    def __init__(self, control: FreePromptControl):
        from diffusers.models.attention_processor import AttnProcessor2_0

        self.control = control
        self.plain = AttnProcessor2_0()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        keys = hidden_states.shape[1] if hidden_states.ndim == 3 else hidden_states.shape[2] * hidden_states.shape[3]
        if not self.control.replaces(encoder_hidden_states is None, keys):
            return self.plain(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        shape = hidden_states.shape
        if hidden_states.ndim == 4:
            hidden_states = hidden_states.flatten(2).transpose(1, 2)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query, key, value = (attn.head_to_batch_dim(p(hidden_states)) for p in (attn.to_q, attn.to_k, attn.to_v))
        probs = attn.get_attention_scores(query, key, None)
        n = self.control.rows
        grouped = probs.view(-1, n, attn.heads, *probs.shape[1:]).clone()
        grouped[-1] = grouped[-2]  # the conditional pass's target rows attend as their sources do
        out = attn.batch_to_head_dim(torch.bmm(grouped.view_as(probs), value))
        out = attn.to_out[1](attn.to_out[0](out))
        if len(shape) == 4:
            out = out.transpose(1, 2).reshape(shape)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


class FreePromptEditor(DiffusionEditor):
    """Target prompt: the public caption (the instruction's target caption, then the instruction, when there is none)."""

    pipeline_class = "StableDiffusionPipeline"
    default_model = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    default_resolution = 512
    default_steps = 50
    default_guidance = 7.5
    source_prompt = ""
    self_replace = SELF_REPLACE  # the fraction of the steps with the source's self-attention maps

    def _prepare(self, pipe):
        from diffusers import DDIMInverseScheduler, DDIMScheduler

        if not self.settings.scheduler:  # FreePrompt's own DDIM
            pipe.scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                                           set_alpha_to_one=False)
        self.inverse = DDIMInverseScheduler.from_config(pipe.scheduler.config)
        self.control = FreePromptControl()
        pipe.unet.set_attn_processor(FreePromptAttnProcessor(self.control))

    def _embed(self, prompts):
        pipe = self.pipe
        ids = pipe.tokenizer(prompts, padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True,
                             return_tensors="pt").input_ids
        return pipe.text_encoder(ids.to(pipe.device))[0]

    def _run(self, requests, images, generators, size):
        pipe, n = self.pipe, len(requests)
        unet, vae = pipe.unet, pipe.vae
        pixels = pipe.image_processor.preprocess(images, height=size[1], width=size[0]).to(pipe.device, vae.dtype)
        latents = vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor
        empty = self._embed([self.source_prompt] * n)
        targets = [r.inspection.public_caption or r.instruction.target_caption or r.instruction.instruction for r in requests]
        cond = torch.cat([empty, self._embed(targets)])
        uncond = self._embed([""] * 2 * n)

        # DDIM inversion under the source prompt (guided; with the empty prompt guidance changes nothing: one pass).
        self.control.enabled = False
        self.inverse.set_timesteps(self.steps, device=pipe.device)
        trajectory = [latents]
        source_uncond = self._embed([""] * n) if self.source_prompt else None
        for t in self.inverse.timesteps:
            noise = self._guided(latents, t, empty, source_uncond)
            latents = self.inverse.step(noise, t, latents).prev_sample
            trajectory.append(latents)

        scheduler = pipe.scheduler
        scheduler.set_timesteps(self.steps, device=pipe.device)
        self.control.enabled, self.control.rows, self.control.until = True, n, int(self.steps * self.self_replace)
        both = torch.cat([trajectory[-1], trajectory[-1]])
        for i, t in enumerate(scheduler.timesteps):
            self.control.step = i
            both = torch.cat([trajectory[-1 - i], both[n:]])  # the source branch stays on its inversion trajectory
            noise = self._guided(both, t, cond, uncond)
            both = scheduler.step(noise, t, both).prev_sample
        self.control.enabled = False
        image = vae.decode(both[n:] / vae.config.scaling_factor).sample
        return (image / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).float().cpu().numpy()

    def _guided(self, latents, t, cond, uncond):
        if uncond is None or self.guidance <= 1.0:
            return self.pipe.unet(latents, t, encoder_hidden_states=cond).sample
        noise_uncond, noise_cond = self.pipe.unet(torch.cat([latents, latents]), t, encoder_hidden_states=torch.cat([uncond, cond])).sample.chunk(2)
        return noise_uncond + self.guidance * (noise_cond - noise_uncond)
