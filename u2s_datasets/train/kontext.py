"""LoRA fine-tuning of FLUX.1 Kontext on Unsafe2Safe pairs (the ``flux-kontext`` editor).

The flow-matching objective of diffusers' FLUX training scripts, in Kontext's form: the
target's packed latent is mixed with noise at a uniform sigma, the source's packed latent
is appended to the sequence (position ids marked 1, as the pipeline marks its context
image), and the transformer predicts the velocity ``noise - target`` on the target tokens.
The edit instruction is the prompt, as in ``FluxKontextEditor``. LoRA adapters (rank 16
by default) sit on the attention and MLP projections of every block; the result is saved
merged (a pipeline the editor loads) and as an adapter file (``lora/``).
"""

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from .card import write_model_card
from .data import PairsDataset
from .finetune import FinetuneConfig, resolve_pairs
from .loop import make_accelerator, train_loop, training_split
from .recipes import recipe_settings

LORA_MODULES = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out",
                "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2", "proj_mlp", "proj_out"]


@dataclass(frozen=True)
class KontextFinetuneConfig(FinetuneConfig):
    dual_prompt: str = "none"  # Kontext has one prompt: the instruction
    lora: Optional[int] = 16
    resolution: int = 512
    learning_rate: float = 1e-4
    guidance_scale: float = 1.0  # the distilled-guidance input while training
    max_sequence_length: int = 512

    def __post_init__(self):
        super().__post_init__()
        if self.dual_prompt != "none" or self.lora is None:
            raise ValueError("FLUX.1 Kontext trains LoRA adapters (lora=RANK) without dual prompts")
        if self.resolution % 16:
            raise ValueError(f"resolution={self.resolution} must be a multiple of 16 (8x VAE, 2x2 patches)")


class KontextObjective:
    def __init__(self, pipe, config):
        self.pipe = pipe
        self.config = config

    @torch.no_grad()
    def _latents(self, images, generator=None):
        vae = self.pipe.vae
        dist = vae.encode(images.to(vae.device, vae.dtype)).latent_dist
        latents = dist.sample(generator) if generator is not None else dist.mode()
        return (latents - vae.config.shift_factor) * vae.config.scaling_factor

    def loss(self, transformer, batch, generator):
        pipe = self.pipe
        device = pipe.vae.device
        target, source = self._latents(batch["target"], generator), self._latents(batch["source"])
        bsz, channels, height, width = target.shape
        with torch.no_grad():
            prompt_embeds, pooled, text_ids = pipe.encode_prompt(prompt=list(batch["instruction"]), prompt_2=None, device=device,
                                                                 max_sequence_length=self.config.max_sequence_length)
        x0 = pipe._pack_latents(target, bsz, channels, height, width)
        context = pipe._pack_latents(source, bsz, channels, height, width)
        latent_ids = pipe._prepare_latent_image_ids(bsz, height // 2, width // 2, device, x0.dtype)
        context_ids = latent_ids.clone()
        context_ids[..., 0] = 1
        noise = torch.randn(x0.shape, generator=generator).to(device, x0.dtype)
        sigma = torch.rand(bsz, generator=generator).to(device, x0.dtype)
        noisy = (1 - sigma.view(-1, 1, 1)) * x0 + sigma.view(-1, 1, 1) * noise
        guidance = None
        if transformer_config(transformer).guidance_embeds:
            guidance = torch.full((bsz,), self.config.guidance_scale, device=device, dtype=torch.float32)
        prediction = transformer(hidden_states=torch.cat([noisy, context], dim=1), timestep=sigma, guidance=guidance,
                                 pooled_projections=pooled, encoder_hidden_states=prompt_embeds, txt_ids=text_ids,
                                 img_ids=torch.cat([latent_ids, context_ids], dim=0), return_dict=False)[0]
        return F.mse_loss(prediction[:, : x0.shape[1]].float(), (noise - x0).float(), reduction="mean")


def transformer_config(model):
    return getattr(model, "module", model).config  # DDP wraps the model


def finetune_kontext(pairs, output_dir: str, base_model: str, resume: bool = False, recipe: str = "default", **settings) -> str:
    """LoRA-fine-tune a FLUX.1 Kontext pipeline on ``pairs``; ``output_dir`` loads with ``Unsafe2Safe(editor="flux-kontext", editor_model=...)``.

    ``settings`` are the fields of ``KontextFinetuneConfig`` (those of ``FinetuneConfig`` with
    LoRA rank 16, 512 px and learning rate 1e-4 by default).
    """
    from diffusers import FluxKontextPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    config = KontextFinetuneConfig(base_model=base_model, **recipe_settings("flux-kontext", recipe, settings))
    accelerator, precision = make_accelerator(config, output_dir)
    with accelerator.main_process_first():
        data, stats = resolve_pairs(pairs, config)
    train = training_split(data, pairs)
    try:
        pipe = FluxKontextPipeline.from_pretrained(base_model, revision=config.base_revision, use_safetensors=True)
    except (OSError, ValueError) as e:
        raise ValueError(f"could not load the base model {base_model!r} as a FLUX.1 Kontext pipeline: {e}") from None
    weight_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    for part in (pipe.vae, pipe.text_encoder, pipe.text_encoder_2):
        part.requires_grad_(False).to(accelerator.device, weight_dtype)
    transformer = pipe.transformer
    transformer.requires_grad_(False)
    transformer.add_adapter(LoraConfig(r=config.lora, lora_alpha=config.lora, init_lora_weights=True, target_modules=LORA_MODULES))
    if config.gradient_checkpointing if config.gradient_checkpointing is not None else accelerator.device.type == "cuda":
        transformer.enable_gradient_checkpointing()
    trainable = [p for p in transformer.parameters() if p.requires_grad]
    objective = KontextObjective(pipe, config)
    transformer = train_loop(accelerator, transformer, trainable, objective.loss, PairsDataset(train, None, config.resolution, config.resize),
                             config, output_dir, resume)

    if accelerator.is_main_process:
        FluxKontextPipeline.save_lora_weights(os.path.join(output_dir, "lora"), transformer_lora_layers=get_peft_model_state_dict(transformer))
        transformer.fuse_lora()
        transformer.unload_lora()
        pipe.transformer = transformer.to(torch.float32)
        for part in (pipe.vae, pipe.text_encoder, pipe.text_encoder_2):
            part.to(torch.float32)
        pipe.save_pretrained(output_dir, safe_serialization=True)
        with open(os.path.join(output_dir, "training_config.json"), "w") as f:
            json.dump(dataclasses.asdict(config), f, indent=2)
        write_model_card(output_dir, config, stats, train, precision, accelerator.num_processes, "FLUX.1 Kontext")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return output_dir
