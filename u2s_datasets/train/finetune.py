"""Fine-tune an InstructPix2Pix editor (e.g. MagicBrush) on Unsafe2Safe pairs, with dual prompts.

One process, several GPUs or several nodes: the loop is written for ``accelerate`` and
runs unchanged under ``accelerate launch`` (docs/training.md). Checkpoints hold the UNet,
optimizer, learning-rate schedule, EMA weights and every random state, so ``resume=True``
continues exactly where a run stopped.
"""

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Optional

import torch

from ..edit.dual_prompt import dual_prompt_parameters, install_dual_prompt, save_dual_prompt
from .card import write_model_card
from .data import PairsDataset
from .loop import make_accelerator, train_loop, training_split
from .objective import InstructPix2PixObjective
from .pairs import DEFAULT_CLIP_MODEL, load_pairs, pair_stats
from .recipes import recipe_settings

# Attention and feed-forward projections of the transformer blocks, and the ResNet convolutions.
LORA_MODULES = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2", "conv1", "conv2"]


@dataclass(frozen=True)
class FinetuneConfig:
    """Every setting of a fine-tuning run (all of them go into the model card)."""

    base_model: str
    base_revision: Optional[str] = None
    recipe: str = "default"  # the preset the other settings started from (recipes.py)
    dual_prompt: str = "paper"  # "paper" (SafeAttention) | "gated" | "none"
    lora: Optional[int] = None  # LoRA rank on the UNet's projections and convolutions (LORA_MODULES); None: full fine-tuning
    resolution: int = 256
    resize: str = "crop"  # "crop": shorter side to the resolution, centre crop | "stretch": the whole image to the square
    flip_prob: float = 0.0  # horizontal flip of each pair (source and target together)
    batch_size: int = 4  # per process
    gradient_accumulation: int = 1
    learning_rate: float = 1e-5
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    adam_weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    max_steps: Optional[int] = None  # optimizer steps; None: the whole of `epochs`, or 1000 without epochs
    epochs: Optional[int] = None  # passes over the training pairs (stopping earlier at max_steps when both are set)
    checkpoint_every: int = 500
    checkpoints_kept: int = 2
    conditioning_dropout: float = 0.05
    ema: bool = True
    ema_decay: float = 0.9999
    mixed_precision: str = "auto"  # "auto": bf16 on CUDA, none on CPU | "no" | "bf16" | "fp16"
    gradient_checkpointing: Optional[bool] = None  # None: on with CUDA
    seed: int = 42
    cpu: bool = False  # train on the CPU even where CUDA is available
    dataloader_workers: int = 0
    clip_model: Optional[str] = DEFAULT_CLIP_MODEL  # only for pairs built on the fly from an anonymized dataset

    def __post_init__(self):
        if self.dual_prompt not in ("paper", "gated", "none"):
            raise ValueError(f"dual_prompt={self.dual_prompt!r} is not one of 'paper', 'gated', 'none'")
        for name in ("resolution", "batch_size", "gradient_accumulation", "max_steps", "epochs", "checkpoint_every"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        if self.resize not in ("crop", "stretch"):
            raise ValueError(f"resize={self.resize!r} is not one of 'crop', 'stretch'")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ValueError(f"flip_prob={self.flip_prob} must be a probability")
        if self.resolution % 8:
            raise ValueError(f"resolution={self.resolution} must be a multiple of 8 (the VAE's downsampling)")
        if self.lora is not None and self.lora < 1:
            raise ValueError(f"lora={self.lora} must be a rank of at least 1")


def finetune(pairs, output_dir: str, base_model: str, resume: bool = False, recipe: str = "default", **settings) -> str:
    """Fine-tune ``base_model`` on ``pairs``; returns ``output_dir``, a diffusers InstructPix2Pix folder.

    ``pairs``: a folder from ``u2s pairs`` / ``save_pairs``, a folder from ``u2s anonymize``
    (pairs built on the fly), or a ``DatasetDict`` from ``build_pairs``. ``settings`` are the
    fields of ``FinetuneConfig``, on top of ``recipe`` (``"paper"``: the authors' settings,
    see ``recipes.py``). The result loads with
    ``Unsafe2Safe(editor="ip2p", editor_model=output_dir)``, dual prompts detected.
    """
    config = FinetuneConfig(base_model=base_model, **recipe_settings("ip2p", recipe, settings))
    accelerator, precision = make_accelerator(config, output_dir)
    with accelerator.main_process_first():  # pairs built on the fly: the main process writes the cache, the others read it
        data, stats = resolve_pairs(pairs, config)
    train = training_split(data, pairs)

    pipe = _load_base(config)
    unet, vae, text_encoder, tokenizer = pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer
    dual = config.dual_prompt != "none"
    if dual:
        install_dual_prompt(unet, tokenizer.model_max_length, config.dual_prompt)
    trainable = _trainable_parameters(unet, config)
    if config.gradient_checkpointing if config.gradient_checkpointing is not None else accelerator.device.type == "cuda":
        unet.enable_gradient_checkpointing()
    weight_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    vae.to(accelerator.device, weight_dtype)
    text_encoder.to(accelerator.device, weight_dtype)

    from diffusers import DDPMScheduler

    objective = InstructPix2PixObjective(vae, text_encoder, DDPMScheduler.from_config(pipe.scheduler.config), dual,
                                         config.conditioning_dropout)
    empty_ids = tokenizer([""], padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt").input_ids
    loss_fn = lambda model, batch, generator: objective.loss(model, batch, generator, empty_ids)  # noqa: E731
    dataset = PairsDataset(train, tokenizer, config.resolution, config.resize)
    unet = train_loop(accelerator, unet, trainable, loss_fn, dataset, config, output_dir, resume)

    if accelerator.is_main_process:
        _save_pipeline(pipe, unet, output_dir, config, dual)
        write_model_card(output_dir, config, stats, train, precision, accelerator.num_processes, "InstructPix2Pix")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return output_dir


def resolve_pairs(pairs, config):
    import datasets

    if isinstance(pairs, datasets.DatasetDict):
        return pairs, pair_stats(pairs)
    clip_model = None if str(config.clip_model).lower() == "none" else config.clip_model
    return load_pairs(pairs, clip_model=clip_model, seed=config.seed)


def _load_base(config):
    from diffusers import StableDiffusionInstructPix2PixPipeline

    try:
        return StableDiffusionInstructPix2PixPipeline.from_pretrained(config.base_model, revision=config.base_revision,
                                                                      use_safetensors=True, safety_checker=None)
    except (OSError, ValueError) as e:
        raise ValueError(f"could not load the base model {config.base_model!r} as an InstructPix2Pix pipeline: {e}") from None


def _trainable_parameters(unet, config) -> list:
    if config.lora is None:
        unet.requires_grad_(True)
        return [p for p in unet.parameters() if p.requires_grad]
    from peft import LoraConfig

    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=config.lora, lora_alpha=config.lora, init_lora_weights="gaussian", target_modules=LORA_MODULES))
    for parameter in dual_prompt_parameters(unet):  # the dual-prompt branches are new: trained whole
        parameter.requires_grad_(True)
    return [p for p in unet.parameters() if p.requires_grad]


def _save_pipeline(pipe, unet, output_dir, config, dual):
    if config.lora is not None:
        unet.fuse_lora()
        unet.unload_lora()
    pipe.unet = unet.to(torch.float32)
    pipe.vae.to(torch.float32)
    pipe.text_encoder.to(torch.float32)
    if dual:
        save_dual_prompt(pipe, output_dir)
    else:
        pipe.save_pretrained(output_dir, safe_serialization=True)
    with open(os.path.join(output_dir, "training_config.json"), "w") as f:
        json.dump(dataclasses.asdict(config), f, indent=2)

