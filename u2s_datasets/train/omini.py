"""OminiControl subject-LoRA training on FLUX.1 with Unsafe2Safe pairs (the ``flux-omini`` editor).

The paper's recipe (its OminiControl config and data adapter), the defaults here: FLUX.1-dev,
LoRA rank 16 / alpha 16 with Gaussian init on OminiControl's targets (``LORA_MODULES``),
Prodigy (lr 1, weight decay 0.01, bias correction, safeguard warm-up), batch 4, 12,000
steps, gradient clipping 0.5 (OminiControl's trainer), 512 px stretched images, no EMA. The
safe image is the target, the source image the condition (position delta (0, 0)), the edit
instruction the prompt, cut to 73 CLIP tokens. Each pair's prompt is dropped (emptied) with
probability 0.1 and, independently, its condition (made black) with 0.1. The objective is
OminiControl's: sigma = sigmoid(N(0, 1)), x_t = (1 - sigma) x_0 + sigma noise, the velocity
``noise - x_0`` predicted on the image tokens, guidance input 1. The LoRA weights train in
fp32 under bf16 autocast (OminiControl casts them to bf16). The folder written holds the
adapter (``omini_lora/``) and ``omini.json`` naming the base; the editor loads it.
"""

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from ..edit.omini import LORA_FOLDER, LORA_MODULES, LORA_WEIGHTS, OMINI_FILE, OminiTransformer, condition_ids, encode_tokens
from .card import write_model_card
from .data import PairsDataset
from .finetune import FinetuneConfig, resolve_pairs
from .loop import make_accelerator, train_loop, training_split
from .recipes import recipe_settings


@dataclass(frozen=True)
class OminiFinetuneConfig(FinetuneConfig):
    dual_prompt: str = "none"  # the instruction is the one prompt
    lora: Optional[int] = 16
    lora_alpha: Optional[int] = None  # None: equal to the rank
    resolution: int = 512
    resize: str = "stretch"
    batch_size: int = 4
    learning_rate: float = 1.0  # Prodigy's: the step size is estimated
    adam_weight_decay: float = 0.01  # Prodigy's weight decay here
    max_grad_norm: float = 0.5
    max_steps: Optional[int] = 12000
    ema: bool = False
    prodigy_bias_correction: bool = True
    prodigy_safeguard_warmup: bool = True
    text_dropout: float = 0.1
    image_dropout: float = 0.1
    caption_tokens: int = 73  # the instruction is cut to this many CLIP tokens before both text encoders see it
    max_sequence_length: int = 512
    position_delta: tuple = (0, 0)

    def __post_init__(self):
        super().__post_init__()
        if self.dual_prompt != "none" or self.lora is None:
            raise ValueError("OminiControl trains a LoRA adapter (lora=RANK) without dual prompts")
        if self.resolution % 16:
            raise ValueError(f"resolution={self.resolution} must be a multiple of 16 (8x VAE, 2x2 patches)")
        for name in ("text_dropout", "image_dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}={getattr(self, name)} must be a probability")


def add_omini_lora(transformer, rank: int, alpha: Optional[int] = None) -> list:
    """OminiControl's adapter on ``transformer`` (rank, alpha = rank, Gaussian init); returns its parameters, the only trainable ones."""
    from peft import LoraConfig

    transformer.requires_grad_(False)
    transformer.add_adapter(LoraConfig(r=rank, lora_alpha=alpha or rank, init_lora_weights="gaussian", target_modules=LORA_MODULES))
    return [p for p in transformer.parameters() if p.requires_grad]


def prodigy(params, config):
    """Prodigy with the paper's settings (``prodigyopt``)."""
    from prodigyopt import Prodigy

    return Prodigy(params, lr=config.learning_rate, weight_decay=config.adam_weight_decay,
                   use_bias_correction=config.prodigy_bias_correction, safeguard_warmup=config.prodigy_safeguard_warmup)


class OminiObjective:
    def __init__(self, pipe, config):
        self.pipe = pipe
        self.config = config

    def cut(self, text: str) -> str:
        tokenizer = self.pipe.tokenizer
        ids = tokenizer(text, max_length=self.config.caption_tokens, truncation=True)["input_ids"]
        return tokenizer.decode(ids, skip_special_tokens=True).strip()

    def dropped(self, batch, generator):
        """The batch's prompts and condition images after dropout: an empty prompt, a black condition ([-1, 1] scale)."""
        bsz = batch["source"].shape[0]
        drop_text = (torch.rand(bsz, generator=generator) < self.config.text_dropout).tolist()
        drop_image = torch.rand(bsz, generator=generator) < self.config.image_dropout
        prompts = ["" if drop else self.cut(text) for text, drop in zip(batch["instruction"], drop_text)]
        source = batch["source"]
        condition = torch.where(drop_image.to(source.device).view(-1, 1, 1, 1), torch.full_like(source, -1.0), source)
        return prompts, condition

    def loss(self, model, batch, generator):
        pipe, device = self.pipe, self.pipe.vae.device
        prompts, condition = self.dropped(batch, generator)
        with torch.no_grad():
            x0, ids = encode_tokens(pipe, batch["target"], generator)
            cond, _ = encode_tokens(pipe, condition, generator)
            prompt_embeds, pooled, text_ids = pipe.encode_prompt(prompt=prompts, prompt_2=None, device=device,
                                                                 max_sequence_length=self.config.max_sequence_length)
        bsz = x0.shape[0]
        sigma = torch.sigmoid(torch.randn(bsz, generator=generator)).to(device, x0.dtype)
        noise = torch.randn(x0.shape, generator=generator).to(device, x0.dtype)
        noisy = (1 - sigma.view(-1, 1, 1)) * x0 + sigma.view(-1, 1, 1) * noise
        prediction = model(noisy, ids, cond, condition_ids(ids, self.config.position_delta), prompt_embeds, pooled, text_ids, sigma)
        return F.mse_loss(prediction.float(), (noise - x0).float(), reduction="mean")


def finetune_omini(pairs, output_dir: str, base_model: str, resume: bool = False, recipe: str = "default", **settings) -> str:
    """Train an OminiControl subject LoRA on a FLUX.1 pipeline; ``output_dir`` loads with
    ``Unsafe2Safe(editor="flux-omini", editor_model=output_dir)``. ``settings``: fields of ``OminiFinetuneConfig``."""
    from diffusers import FluxPipeline

    config = OminiFinetuneConfig(base_model=base_model, **recipe_settings("flux-omini", recipe, settings))
    accelerator, precision = make_accelerator(config, output_dir)
    with accelerator.main_process_first():
        data, stats = resolve_pairs(pairs, config)
    train = training_split(data, pairs)
    try:
        pipe = FluxPipeline.from_pretrained(base_model, revision=config.base_revision, use_safetensors=True)
    except (OSError, ValueError) as e:
        raise ValueError(f"could not load the base model {base_model!r} as a FLUX.1 pipeline: {e}") from None
    weight_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    for part in (pipe.vae, pipe.text_encoder, pipe.text_encoder_2):
        part.requires_grad_(False).to(accelerator.device, weight_dtype)
    transformer = pipe.transformer
    trainable = add_omini_lora(transformer, config.lora, config.lora_alpha)
    model = OminiTransformer(transformer)
    model.gradient_checkpointing = config.gradient_checkpointing if config.gradient_checkpointing is not None else accelerator.device.type == "cuda"
    objective = OminiObjective(pipe, config)
    model = train_loop(accelerator, model, trainable, objective.loss, PairsDataset(train, None, config.resolution, config.resize),
                       config, output_dir, resume, optimizer=lambda params: prodigy(params, config))

    if accelerator.is_main_process:
        save_omini(model.transformer, output_dir, config)
        write_model_card(output_dir, config, stats, train, precision, accelerator.num_processes, "FLUX.1 OminiControl")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return output_dir


def save_omini(transformer, output_dir: str, config) -> None:
    from diffusers import FluxPipeline
    from peft.utils import get_peft_model_state_dict

    FluxPipeline.save_lora_weights(os.path.join(output_dir, LORA_FOLDER), weight_name=LORA_WEIGHTS,
                                   transformer_lora_layers={k: v.float() for k, v in get_peft_model_state_dict(transformer).items()})
    with open(os.path.join(output_dir, OMINI_FILE), "w") as f:
        base = os.path.abspath(config.base_model) if os.path.isdir(config.base_model) else config.base_model
        json.dump({"base_model": base, "base_revision": config.base_revision, "position_delta": list(config.position_delta),
                   "lora_rank": config.lora, "lora_alpha": config.lora_alpha or config.lora, "lora_modules": LORA_MODULES}, f, indent=2)
    with open(os.path.join(output_dir, "training_config.json"), "w") as f:
        json.dump(dataclasses.asdict(config), f, indent=2)
