"""The training loop shared by the editor trainers: accelerate, EMA, checkpoints, exact resume, the log.

A trainer hands over a model, its trainable parameters, a dataset and a loss function
``loss_fn(model, batch, generator)``; the loop does the rest. Every random draw of the
loss goes through ``generator`` (checkpointed with the run), data order comes from
accelerate's seedable sampler, and a resumed run skips the batches already seen: its
loss curve is the uninterrupted one.

Gradient accumulation follows the epochs: the last, shorter window of an epoch still makes
an optimizer step (as Lightning and diffusers' scripts do), so an epoch is
``ceil(batches / gradient_accumulation)`` steps. A run lasts ``max_steps`` steps or
``epochs`` epochs, whichever ends first (1000 steps when neither is set).
"""

import math

import json
import logging
import os
import shutil
import time

import torch
from tqdm.auto import tqdm

from .data import flip_pairs
from .objective import NoiseGenerator

logger = logging.getLogger(__name__)

LOG_FILE = "training_log.jsonl"
CHECKPOINTS = "checkpoints"
STEP_FILE = "u2s_step.json"
DEFAULT_MAX_STEPS = 1000


def make_accelerator(config, output_dir):
    """An ``Accelerator`` for ``config`` (mixed precision "auto": bf16 on CUDA, none on CPU) and the precision chosen."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, GradientAccumulationPlugin, ProjectConfiguration, set_seed

    cuda = torch.cuda.is_available() and not config.cpu
    precision = ("bf16" if cuda else "no") if config.mixed_precision == "auto" else config.mixed_precision
    accelerator = Accelerator(
        cpu=config.cpu,
        mixed_precision=precision,
        gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=config.gradient_accumulation, sync_with_dataloader=True),
        project_config=ProjectConfiguration(project_dir=output_dir),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    set_seed(config.seed)
    return accelerator, precision


def training_split(data, source):
    train = data["train"]
    if len(train) == 0:
        raise ValueError(f"the training split of {source if isinstance(source, str) else 'the pairs'} is empty: nothing to train on")
    return train


def total_steps(config, steps_per_epoch: int) -> int:
    """Optimizer steps of the run: ``max_steps``, ``epochs`` worth of steps, or the smaller of the two."""
    limits = [n for n in (config.max_steps, config.epochs and config.epochs * steps_per_epoch) if n]
    return min(limits) if limits else DEFAULT_MAX_STEPS


def train_loop(accelerator, model, trainable, loss_fn, dataset, config, output_dir, resume, optimizer=None):
    """Train ``trainable`` (parameters of ``model``) for the run's steps; returns the unwrapped model, EMA weights in place.

    ``optimizer``: built from ``trainable`` when given as a function (the default: AdamW with
    the config's learning rate and weight decay)."""
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    make_optimizer = optimizer or (lambda params: torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.adam_weight_decay))
    optimizer = make_optimizer(trainable)
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, shuffle=True, num_workers=config.dataloader_workers)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    per_epoch = len(loader)  # batches per process
    steps_per_epoch = math.ceil(per_epoch / config.gradient_accumulation)
    max_steps = total_steps(config, steps_per_epoch)
    lr_scheduler = accelerator.prepare(get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=config.lr_warmup_steps * accelerator.num_processes,
                                                     num_training_steps=max_steps * accelerator.num_processes))
    ema = EMAModel(trainable, decay=config.ema_decay) if config.ema else None
    if ema is not None:
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)
    noise = NoiseGenerator(config.seed + accelerator.process_index)  # each process draws its own noise
    accelerator.register_for_checkpointing(noise)

    step = _resume(accelerator, output_dir) if resume else 0
    if not resume:
        _start_fresh(accelerator, output_dir)
    if accelerator.is_main_process:
        logger.info("Training on %d pairs (%d batches, %d optimizer steps per epoch per process, %d processes) for %d steps, %.1f epochs",
                    len(dataset), per_epoch, steps_per_epoch, accelerator.num_processes, max_steps, max_steps / steps_per_epoch)

    progress = tqdm(total=max_steps, initial=step, desc="fine-tuning", disable=not accelerator.is_main_process)
    model.train()
    started, window = time.perf_counter(), []
    while step < max_steps:
        epoch, done = divmod(step, steps_per_epoch)
        skip = done * config.gradient_accumulation
        loader.set_epoch(epoch)
        for batch in accelerator.skip_first_batches(loader, skip) if skip else loader:
            with accelerator.accumulate(model):
                batch = flip_pairs(batch, config.flip_prob, noise.generator)
                loss = loss_fn(model, batch, noise.generator)
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
            _log(accelerator, output_dir, {"step": step, "epoch": epoch, "batches": len(window), "loss": sum(window) / len(window),
                                           "lr": lr_scheduler.get_last_lr()[0], "seconds": now - started})
            started, window = now, []
            progress.update(1)
            if step % config.checkpoint_every == 0 or step == max_steps:
                _checkpoint(accelerator, output_dir, step, config.checkpoints_kept)
            if step >= max_steps:
                break
    progress.close()
    accelerator.wait_for_everyone()
    model = accelerator.unwrap_model(model)
    if ema is not None:
        ema.copy_to(trainable)
    return model


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
        records = []
        if os.path.isfile(path):
            with open(path) as f:
                records = [json.loads(line) for line in f]
        with open(path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in records if r["step"] <= step)
    accelerator.wait_for_everyone()
    logger.info("Resumed from %s (step %d)", folders[-1], step)
    return step
