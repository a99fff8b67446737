"""FlowEdit (Kulikov et al., 2024): inversion-free editing with a flow-matching model, for SD3 pipelines.

No inversion and no optimisation: an ODE is integrated directly from the source latent to the
edit. At each active step the source latent is noised to the step's level (``z_src``), the same
offset the edit has taken so far gives ``z_tar = z_src + (z_edit - x_src)``, and the edit moves
by the difference of the two guided velocities, ``v(z_tar, target prompt) - v(z_src, source
prompt)``. Steps before ``steps - n_max`` are skipped (the layout stays the source's); the last
``n_min`` steps, when asked for, are plain sampling of the target from that point.

With equal prompts and equal guidance the two velocities are the same function of the same
latent, so the edit stays at ``x_src`` and the output is the VAE reconstruction of the input.
"""

from dataclasses import dataclass

import torch


@dataclass
class PromptEmbeddings:
    """SD3 text conditioning of a batch: token and pooled embeddings, conditional and unconditional."""

    tokens: torch.Tensor
    pooled: torch.Tensor
    negative_tokens: torch.Tensor
    negative_pooled: torch.Tensor


def encode_prompts(pipe, prompts: list, negative_prompt: str = "", max_sequence_length: int = 256) -> PromptEmbeddings:
    """``prompts`` through the pipeline's own three text encoders (every encoder gets the same text)."""
    tokens, negative_tokens, pooled, negative_pooled = pipe.encode_prompt(
        prompt=list(prompts), prompt_2=None, prompt_3=None, device=pipe._execution_device,
        do_classifier_free_guidance=True, negative_prompt=[negative_prompt] * len(prompts),
        max_sequence_length=max_sequence_length,
    )
    return PromptEmbeddings(tokens, pooled, negative_tokens, negative_pooled)


def flow_timesteps(pipe, steps: int, latents: torch.Tensor):
    """The scheduler's timesteps and sigmas for ``steps`` steps (dynamic shifting from the latent size, as SD3 does)."""
    from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import calculate_shift, retrieve_timesteps

    scheduler, extra = pipe.scheduler, {}
    if scheduler.config.get("use_dynamic_shifting", None):
        patch = pipe.transformer.config.patch_size
        extra["mu"] = calculate_shift((latents.shape[2] // patch) * (latents.shape[3] // patch),
                                      scheduler.config.get("base_image_seq_len", 256), scheduler.config.get("max_image_seq_len", 4096),
                                      scheduler.config.get("base_shift", 0.5), scheduler.config.get("max_shift", 1.16))
    timesteps, _ = retrieve_timesteps(scheduler, steps, latents.device, **extra)
    return timesteps, scheduler.sigmas.to(latents.device, torch.float32)


def _guided(pipe, latents: list, embeddings: list, guidances: list, timestep) -> list:
    """One transformer call for every (latent, prompt) side; each side's velocity with its own guidance."""
    model = pipe.transformer
    cfg = any(g > 1 for g in guidances)
    hidden, tokens, pooled = [], [], []
    for z, e in zip(latents, embeddings):
        if cfg:
            hidden += [z, z]
            tokens += [e.negative_tokens, e.tokens]
            pooled += [e.negative_pooled, e.pooled]
        else:
            hidden.append(z)
            tokens.append(e.tokens)
            pooled.append(e.pooled)
    hidden = torch.cat(hidden).to(model.dtype)
    out = model(hidden_states=hidden, timestep=timestep.expand(hidden.shape[0]), encoder_hidden_states=torch.cat(tokens),
                pooled_projections=torch.cat(pooled), return_dict=False)[0].float()
    if not cfg:
        return list(out.chunk(len(latents)))
    parts = out.chunk(2 * len(latents))
    return [parts[2 * k] + g * (parts[2 * k + 1] - parts[2 * k]) for k, g in enumerate(guidances)]


def flowedit(pipe, x_src: torch.Tensor, source: PromptEmbeddings, target: PromptEmbeddings, generators: list, *,
             steps: int = 50, source_guidance: float = 3.5, target_guidance: float = 13.5, n_max: int = 33, n_min: int = 0,
             n_avg: int = 1) -> torch.Tensor:
    """The edited latents of ``x_src`` (normalised VAE latents, one row per image).

    ``generators`` give each row its own noise, so a row's edit does not depend on its batch.
    """
    timesteps, sigmas = flow_timesteps(pipe, steps, x_src)
    steps = len(timesteps)
    x_src = x_src.float()
    z_edit = x_src.clone()

    def noise():
        return torch.stack([torch.randn(x_src.shape[1:], generator=g, dtype=torch.float32) for g in generators]).to(x_src.device)

    x_tar = None
    for i in range(max(steps - n_max, 0), steps):
        t, sigma, step = timesteps[i], sigmas[i], sigmas[i + 1] - sigmas[i]
        if steps - i > n_min:
            delta = torch.zeros_like(x_src)
            for _ in range(n_avg):
                z_src = (1 - sigma) * x_src + sigma * noise()
                z_tar = z_src + (z_edit - x_src)
                v_src, v_tar = _guided(pipe, [z_src, z_tar], [source, target], [source_guidance, target_guidance], t)
                delta += (v_tar - v_src) / n_avg
            z_edit = z_edit + step * delta
        else:
            if x_tar is None:  # the last n_min steps: sample the target from the edit reached so far
                x_tar = z_edit + sigma * (noise() - x_src)
            (v_tar,) = _guided(pipe, [x_tar], [target], [target_guidance], t)
            x_tar = x_tar + step * v_tar
    return z_edit if x_tar is None else x_tar
