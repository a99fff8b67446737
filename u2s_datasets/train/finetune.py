"""Fine-tune an InstructPix2Pix editor (e.g. MagicBrush) on Unsafe2Safe pairs, with dual prompts.

One process, several GPUs or several nodes: the loop is written for ``accelerate`` and
runs unchanged under ``accelerate launch`` (docs/training.md). Checkpoints hold the UNet,
optimizer, learning-rate schedule, EMA weights and every random state, so ``resume=True``
continues exactly where a run stopped.
"""

import dataclasses
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from typing import Optional

import torch
from tqdm.auto import tqdm

from ..edit.dual_prompt import dual_prompt_parameters, install_dual_prompt, save_dual_prompt
from .card import write_model_card
from .data import PairsDataset
from .objective import InstructPix2PixObjective, NoiseGenerator
from .pairs import DEFAULT_CLIP_MODEL, load_pairs, pair_stats

logger = logging.getLogger(__name__)

LOG_FILE = "training_log.jsonl"
CHECKPOINTS = "checkpoints"
STEP_FILE = "u2s_step.json"
# Attention and feed-forward projections of the transformer blocks, and the ResNet convolutions.
LORA_MODULES = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2", "conv1", "conv2"]


@dataclass(frozen=True)
class FinetuneConfig:
    """Every setting of a fine-tuning run (all of them go into the model card)."""

    base_model: str
    base_revision: Optional[str] = None
    dual_prompt: str = "paper"  # "paper" (SafeAttention) | "gated" | "none"
    lora: Optional[int] = None  # LoRA rank on the UNet's projections and convolutions (LORA_MODULES); None: full fine-tuning
    resolution: int = 256
    batch_size: int = 4  # per process
    gradient_accumulation: int = 1
    learning_rate: float = 1e-5
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    adam_weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    max_steps: int = 1000
    checkpoint_every: int = 500
    checkpoints_kept: int = 2
    conditioning_dropout: float = 0.05
    ema: bool = True
    ema_decay: float = 0.9999
    mixed_precision: str = "auto"  # "auto": bf16 on CUDA, none on CPU | "no" | "bf16" | "fp16"
    gradient_checkpointing: Optional[bool] = None  # None: on with CUDA
    seed: int = 42
    dataloader_workers: int = 0
    clip_model: Optional[str] = DEFAULT_CLIP_MODEL  # only for pairs built on the fly from an anonymized dataset

    def __post_init__(self):
        if self.dual_prompt not in ("paper", "gated", "none"):
            raise ValueError(f"dual_prompt={self.dual_prompt!r} is not one of 'paper', 'gated', 'none'")
        for name in ("resolution", "batch_size", "gradient_accumulation", "max_steps", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        if self.resolution % 8:
            raise ValueError(f"resolution={self.resolution} must be a multiple of 8 (the VAE's downsampling)")
        if self.lora is not None and self.lora < 1:
            raise ValueError(f"lora={self.lora} must be a rank of at least 1")


def finetune(pairs, output_dir: str, base_model: str, resume: bool = False, **settings) -> str:
    """Fine-tune ``base_model`` on ``pairs``; returns ``output_dir``, a diffusers InstructPix2Pix folder.

    ``pairs``: a folder from ``u2s pairs`` / ``save_pairs``, a folder from ``u2s anonymize``
    (pairs built on the fly), or a ``DatasetDict`` from ``build_pairs``. ``settings`` are the
    fields of ``FinetuneConfig``. The result loads with
    ``Unsafe2Safe(editor="ip2p", editor_model=output_dir)``, dual prompts detected.
    """
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, GradientAccumulationPlugin, ProjectConfiguration, set_seed

    config = FinetuneConfig(base_model=base_model, **settings)
    cuda = torch.cuda.is_available()
    precision = ("bf16" if cuda else "no") if config.mixed_precision == "auto" else config.mixed_precision
    accelerator = Accelerator(
        mixed_precision=precision,
        gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=config.gradient_accumulation, sync_with_dataloader=False),
        project_config=ProjectConfiguration(project_dir=output_dir),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    set_seed(config.seed)
    data, stats = _pairs(pairs, config)
    train = data["train"]
    if len(train) == 0:
        raise ValueError(f"the training split of {pairs if isinstance(pairs, str) else 'the pairs'} is empty: nothing to train on")

    pipe = _load_base(config)
    unet, vae, text_encoder, tokenizer = pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer
    dual = config.dual_prompt != "none"
    if dual:
        install_dual_prompt(unet, tokenizer.model_max_length, config.dual_prompt)
    trainable = _trainable_parameters(unet, config)
    if config.gradient_checkpointing if config.gradient_checkpointing is not None else cuda:
        unet.enable_gradient_checkpointing()
    weight_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    vae.to(accelerator.device, weight_dtype)
    text_encoder.to(accelerator.device, weight_dtype)

    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    objective = InstructPix2PixObjective(vae, text_encoder, DDPMScheduler.from_config(pipe.scheduler.config), dual,
                                         config.conditioning_dropout)
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.adam_weight_decay)
    lr_scheduler = get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=config.lr_warmup_steps * accelerator.num_processes,
                                 num_training_steps=config.max_steps * accelerator.num_processes)
    dataset = PairsDataset(train, tokenizer, config.resolution)
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, shuffle=True, num_workers=config.dataloader_workers)
    unet, optimizer, loader, lr_scheduler = accelerator.prepare(unet, optimizer, loader, lr_scheduler)
    ema = EMAModel(trainable, decay=config.ema_decay) if config.ema else None
    if ema is not None:
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)
    noise = NoiseGenerator(config.seed + accelerator.process_index)  # each process draws its own noise
    accelerator.register_for_checkpointing(noise)
    empty_ids = tokenizer([""], padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt").input_ids

    step = _resume(accelerator, output_dir) if resume else 0
    if not resume:
        _start_fresh(accelerator, output_dir)
    per_epoch = len(loader)
    if accelerator.is_main_process:
        logger.info("Training %d pairs (%d batches per epoch per process, %d processes) for %d steps, %.1f epochs",
                    len(train), per_epoch, accelerator.num_processes, config.max_steps,
                    config.max_steps * config.gradient_accumulation / per_epoch)

    progress = tqdm(total=config.max_steps, initial=step, desc="fine-tuning", disable=not accelerator.is_main_process)
    unet.train()
    started, window = time.perf_counter(), []
    while step < config.max_steps:
        consumed = step * config.gradient_accumulation
        epoch, skip = divmod(consumed, per_epoch)
        loader.set_epoch(epoch)
        batches = accelerator.skip_first_batches(loader, skip) if skip else loader
        for batch in batches:
            with accelerator.accumulate(unet):
                loss = objective.loss(unet, batch, noise.generator, empty_ids)
                window.append(accelerator.gather(loss.detach().repeat(config.batch_size)).mean().item())
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.max_grad_norm:
                    accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            if not accelerator.sync_gradients:
                continue
            step += 1
            if ema is not None:
                ema.step(trainable)
            now = time.perf_counter()
            _log(accelerator, output_dir, {"step": step, "loss": sum(window) / len(window), "lr": lr_scheduler.get_last_lr()[0],
                                           "seconds": now - started})
            started, window = now, []
            progress.update(1)
            if step % config.checkpoint_every == 0 or step == config.max_steps:
                _checkpoint(accelerator, output_dir, step, config.checkpoints_kept)
            if step >= config.max_steps:
                break
    progress.close()

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        unet = accelerator.unwrap_model(unet)
        if ema is not None:
            ema.copy_to(trainable)
        _save_pipeline(pipe, unet, output_dir, config, dual)
        write_model_card(output_dir, config, stats, train, precision, accelerator.num_processes)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return output_dir


def _pairs(pairs, config):
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


def _log(accelerator, output_dir, record):
    if accelerator.is_main_process:
        with open(os.path.join(output_dir, LOG_FILE), "a") as f:
            f.write(json.dumps(record) + "\n")


def _start_fresh(accelerator, output_dir):
    if accelerator.is_main_process:
        os.makedirs(output_dir, exist_ok=True)
        if os.path.isdir(os.path.join(output_dir, CHECKPOINTS)):
            logger.warning("%s holds checkpoints of an earlier run; they are replaced (pass resume=True to continue it)", output_dir)
            shutil.rmtree(os.path.join(output_dir, CHECKPOINTS))
        open(os.path.join(output_dir, LOG_FILE), "w").close()
    accelerator.wait_for_everyone()


def _checkpoint_folders(output_dir) -> list:
    root = os.path.join(output_dir, CHECKPOINTS)
    if not os.path.isdir(root):
        return []
    found = [(int(name.split("-")[1]), os.path.join(root, name)) for name in os.listdir(root)
             if name.startswith("step-") and os.path.isfile(os.path.join(root, name, STEP_FILE))]
    return [path for _, path in sorted(found)]


def _checkpoint(accelerator, output_dir, step, kept):
    folder = os.path.join(output_dir, CHECKPOINTS, f"step-{step}")
    accelerator.save_state(folder)
    if accelerator.is_main_process:
        with open(os.path.join(folder, STEP_FILE), "w") as f:  # written last: its presence marks a complete checkpoint
            json.dump({"step": step}, f)
        for old in _checkpoint_folders(output_dir)[:-kept]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


def _resume(accelerator, output_dir) -> int:
    folders = _checkpoint_folders(output_dir)
    if not folders:
        logger.warning("resume: no checkpoint in %s; starting from the base model", output_dir)
        _start_fresh(accelerator, output_dir)
        return 0
    accelerator.load_state(folders[-1])
    with open(os.path.join(folders[-1], STEP_FILE)) as f:
        step = json.load(f)["step"]
    if accelerator.is_main_process:  # the log keeps what led to the checkpoint, and goes on from there
        path = os.path.join(output_dir, LOG_FILE)
        records = [json.loads(line) for line in open(path)] if os.path.isfile(path) else []
        with open(path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in records if r["step"] <= step)
    accelerator.wait_for_everyone()
    logger.info("Resumed from %s (step %d)", folders[-1], step)
    return step


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

