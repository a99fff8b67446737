"""Training throughput of the editor fine-tuning step against diffusers' InstructPix2Pix recipe.

The full-size InstructPix2Pix architecture (Stable Diffusion 1.5 UNet with 8 input channels,
random weights) at 256x256. In one run, with the same batch, precision and optimizer:

  (a) reference: the training step of diffusers' examples/instruct_pix2pix/train_instruct_pix2pix.py,
      reproduced here (plain cross-attention, conditioning dropout, AdamW, EMA);
  (b) this project, ``InstructPix2PixObjective`` without dual prompts (the same computation);
  (c) this project with SafeAttention (``dual_prompt="paper"``: two branches and the fusion net);

each as training steps/s and model FLOP utilisation (FLOPs counted with torch's FlopCounterMode
over one forward and backward, against --peak-tflops; H100 SXM bf16 dense: 989).

    python benchmarks/bench_finetune.py                       # on a GPU: bf16 autocast, gradient checkpointing
    python benchmarks/bench_finetune.py --tiny                # anywhere, in seconds (figures mean nothing)
"""

import argparse
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from u2s_datasets.edit.dual_prompt import install_dual_prompt
from u2s_datasets.testing.pipelines import random_sd_editing_pipeline
from u2s_datasets.train.objective import InstructPix2PixObjective


def batch_for(args, tokenizer) -> dict:
    g = torch.Generator().manual_seed(0)
    ids = tokenizer(["make every face generic"] * args.batch_size, padding="max_length", max_length=77, return_tensors="pt").input_ids
    return {"source": torch.rand(args.batch_size, 3, args.resolution, args.resolution, generator=g) * 2 - 1,
            "target": torch.rand(args.batch_size, 3, args.resolution, args.resolution, generator=g) * 2 - 1,
            "instruction_ids": ids, "public_ids": ids}


def reference_loss(unet, vae, text_encoder, scheduler, batch, null, dropout, weight_dtype, device):
    """The loss of train_instruct_pix2pix.py's training step, line for line."""
    latents = vae.encode(batch["target"].to(device, weight_dtype)).latent_dist.sample() * vae.config.scaling_factor
    noise = torch.randn_like(latents)
    bsz = latents.shape[0]
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (bsz,), device=latents.device).long()
    noisy_latents = scheduler.add_noise(latents, noise, timesteps)
    encoder_hidden_states = text_encoder(batch["instruction_ids"].to(device))[0]
    original_image_embeds = vae.encode(batch["source"].to(device, weight_dtype)).latent_dist.mode()
    random_p = torch.rand(bsz, device=latents.device)
    prompt_mask = (random_p < 2 * dropout).reshape(bsz, 1, 1)
    encoder_hidden_states = torch.where(prompt_mask, null, encoder_hidden_states)
    image_mask = 1 - ((random_p >= dropout) * (random_p < 3 * dropout)).to(original_image_embeds.dtype)
    original_image_embeds = image_mask.reshape(bsz, 1, 1, 1) * original_image_embeds
    model_pred = unet(torch.cat([noisy_latents, original_image_embeds], dim=1), timesteps, encoder_hidden_states, return_dict=False)[0]
    return F.mse_loss(model_pred.float(), noise.float(), reduction="mean")


def make_step(kind, args):
    """A closure running one full training step (loss, backward, clip, AdamW, EMA) and the UNet it trains."""
    from diffusers import DDPMScheduler
    from diffusers.training_utils import EMAModel

    pipe = random_sd_editing_pipeline("ip2p", "tiny" if args.tiny else "sd15")
    device, cuda = args.device, args.device.startswith("cuda")
    weight_dtype = torch.bfloat16 if cuda else torch.float32
    unet, vae, text_encoder = pipe.unet, pipe.vae.requires_grad_(False), pipe.text_encoder.requires_grad_(False)
    if kind == "paper":
        install_dual_prompt(unet, 77, "paper")
    unet.to(device).train()
    vae.to(device, weight_dtype)
    text_encoder.to(device, weight_dtype)
    if cuda:
        unet.enable_gradient_checkpointing()
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5, weight_decay=1e-2)
    ema = EMAModel(params)
    ema.to(device)
    batch = batch_for(args, pipe.tokenizer)
    empty = pipe.tokenizer([""], padding="max_length", max_length=77, return_tensors="pt").input_ids
    objective = InstructPix2PixObjective(vae, text_encoder, scheduler, dual_prompt=kind == "paper")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        null = text_encoder(empty.to(device))[0]

    def step():
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=cuda):
            if kind == "reference":
                loss = reference_loss(unet, vae, text_encoder, scheduler, batch, null, 0.05, weight_dtype, device)
            else:
                loss = objective.loss(unet, batch, generator, empty)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.step(params)
        return loss

    return step, (unet, vae, text_encoder, batch, empty, objective, scheduler, null, weight_dtype)


def flops_per_step(kind, parts, args) -> float:
    unet, vae, text_encoder, batch, empty, objective, scheduler, null, weight_dtype = parts
    counter = FlopCounterMode(display=False)
    with counter, torch.autocast(args.device.split(":")[0], dtype=torch.bfloat16, enabled=args.device.startswith("cuda")):
        if kind == "reference":
            loss = reference_loss(unet, vae, text_encoder, scheduler, batch, null, 0.05, weight_dtype, args.device)
        else:
            loss = objective.loss(unet, batch, torch.Generator().manual_seed(0), empty)
        loss.backward()
    unet.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def measure(kind, args) -> dict:
    step, parts = make_step(kind, args)
    flops = flops_per_step(kind, parts, args)
    for _ in range(args.warmup):
        step()
    sync(args.device)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync(args.device)
    rate = args.steps / (time.perf_counter() - start)
    del step, parts
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return {"steps_per_s": rate, "images_per_s": rate * args.batch_size, "tflop_per_step": flops / 1e12,
            "mfu": flops * rate / (args.peak_tflops * 1e12)}


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random model (CPU smoke run)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="the device's dense bf16 matrix rate")
    args = parser.parse_args()
    if args.tiny:
        args.resolution, args.batch_size, args.steps, args.warmup = min(args.resolution, 64), min(args.batch_size, 2), min(args.steps, 5), 1
    print(f"{'tiny' if args.tiny else 'SD-1.5 InstructPix2Pix'} UNet, {args.resolution}px, batch {args.batch_size}, device {args.device}")
    results = {}
    for kind, label in (("reference", "diffusers train_instruct_pix2pix step"), ("none", "u2s objective, no dual prompt"),
                        ("paper", "u2s objective, SafeAttention")):
        results[kind] = measure(kind, args)
        r = results[kind]
        print(f"{label:40s} {r['steps_per_s']:8.3f} steps/s {r['images_per_s']:8.2f} img/s "
              f"{r['tflop_per_step']:9.4f} TFLOP/step  MFU {100 * r['mfu']:6.2f}%")
    print(f"SafeAttention cost: {results['reference']['steps_per_s'] / results['paper']['steps_per_s']:.2f}x the reference step time")


if __name__ == "__main__":
    main()
