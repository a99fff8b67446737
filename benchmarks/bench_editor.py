"""Editing throughput, side by side on one device: the diffusers pipeline against every path of this project.

A full-size InstructPix2Pix architecture (the Stable Diffusion 1.5 UNet with 8 input
channels, random weights: speed is that of real weights), 512x512, 20 steps, in one run:

  (a) baseline: StableDiffusionInstructPix2PixPipeline in bf16, batched, as a user would write it
      (three UNet passes per step at any guidance), at image_guidance_scale 1.5 and 1.0;
  (b) default: the ip2p editor at the same settings (three passes at 1.5);
  (c) two-pass: the ip2p editor at image_guidance_scale 1.0 (the third pass cancels, exactly);
  (d) fast: LCMScheduler + an LCM-LoRA-shaped adapter (rank 64, random), 4 steps, two passes;
  (e) deterministic: (b) with deterministic=True (fixed padded batch shape, deterministic kernels);
  (f) fp8 (--fp8, Ada/Hopper with torchao): (b) with fp8 weights and activations;
  (g) the whole ds.map job: local preset detectors on real photos (a quarter without faces), the
      ip2p editor, sequential parts and overlapped parts, against the editor alone on the same rows;

and the model FLOP utilisation of each path against a given matrix rate (H200 bf16 measured ~790 TFLOP/s).

    python benchmarks/bench_editor.py                             # on a GPU, every path in one command
    python benchmarks/bench_editor.py --tiny --device cpu         # anywhere, in minutes (figures mean nothing)
"""

import argparse
import io
import tempfile
import time

import numpy as np
import torch
from PIL import Image

from u2s_datasets.config import resolve_config
from u2s_datasets.edit.diffusion import grid_size
from u2s_datasets.edit.ip2p import InstructPix2PixEditor
from u2s_datasets.edit.ip2p_sampler import guidance_passes
from u2s_datasets.testing.pipelines import random_sd_editing_pipeline
from u2s_datasets.testing.lora import save_random_lcm_lora
from u2s_datasets.records import EditRequest, Inspection, Instruction

INSTRUCTION = "Make every face generic"  # short: the tiny byte-level tokenizer spends a token per letter
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def requests_for(n: int, resolution: int) -> list:
    rng = np.random.default_rng(0)
    inspection = Inspection(True, ["people_faces"], public_caption="a photo of a person whose face is not recognisable")
    return [
        EditRequest(Image.fromarray(rng.integers(0, 256, (resolution, resolution, 3), dtype=np.uint8)), inspection,
                    Instruction(INSTRUCTION, inspection.public_caption), None, seed)
        for seed in range(n)
    ]


def synchronize(device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def release(device: str):
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def timed(function, n_images: int, device: str) -> float:
    """Images/s of ``function()``, which edits ``n_images``."""
    synchronize(device)
    start = time.perf_counter()
    function()
    synchronize(device)
    return n_images / (time.perf_counter() - start)


def flops_per_image(function, n_images: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        function()
    return counter.get_total_flops() / n_images


def baseline(folder, requests, args, image_guidance: float):
    """(a): the diffusers pipeline, batched, in the benchmark's dtype."""
    from diffusers import StableDiffusionInstructPix2PixPipeline

    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(folder, dtype=DTYPES[args.dtype], use_safetensors=True).to(args.device)
    pipe.set_progress_bar_config(disable=True)
    size = grid_size(requests[0].image.size, args.resolution, 8)

    def run(batch_requests):
        for start in range(0, len(batch_requests), args.batch_size):
            chunk = batch_requests[start : start + args.batch_size]
            pipe(prompt=[r.instruction.instruction for r in chunk], image=[r.image.resize(size) for r in chunk], num_inference_steps=args.steps,
                 guidance_scale=7.5, image_guidance_scale=image_guidance, generator=[torch.Generator().manual_seed(r.seed) for r in chunk])

    run(requests[: args.batch_size])  # warm-up
    rate = timed(lambda: run(requests), len(requests), args.device)
    flops = flops_per_image(lambda: run(requests[: args.batch_size]), args.batch_size)
    del pipe
    release(args.device)
    return rate, flops


def editor_path(folder, requests, args, **settings):
    """(b)-(f): the ip2p editor with ``settings``."""
    config = resolve_config(editor="ip2p", editor_model=folder, dtype=args.dtype, device=args.device, edit_resolution=args.resolution,
                            edit_batch_size=args.batch_size, torch_compile=args.compile, local_files_only=True,
                            **{"num_inference_steps": None if settings.get("fast") else args.steps, **settings})
    editor = InstructPix2PixEditor(config)
    warm = requests[: args.batch_size]
    editor.edit(warm)  # warm-up (and compilation)
    rate = timed(lambda: editor.edit(requests), len(requests), args.device)
    flops = flops_per_image(lambda: editor.edit(warm), len(warm))
    del editor
    release(args.device)
    return rate, flops


def photo_rows(n: int, side: int):
    """``n`` real photos at ``side`` pixels, three with faces for every one without."""
    import datasets

    from u2s_datasets.samples import sample_images

    photos = sample_images()
    cycle = ["astronaut", "grace_hopper", "camera", "coffee"]
    encoded = {}
    for name in cycle:
        buffer = io.BytesIO()
        photos[name].convert("RGB").resize((side, side)).save(buffer, format="JPEG", quality=95)
        encoded[name] = buffer.getvalue()
    names = [cycle[i % len(cycle)] for i in range(n)]
    return datasets.Dataset.from_dict({"image": [{"bytes": encoded[name], "path": None} for name in names], "name": names},
                                      features=datasets.Features({"image": datasets.Image(decode=False), "name": datasets.Value("string")}))


def whole_job(folder, args):
    """(g): rows/s of ds.map, sequential and overlapped, and images/s of the editor alone on the job's private rows."""
    from u2s_datasets import Unsafe2Safe

    rows = photo_rows(args.job_rows, args.job_side)
    settings = dict(editor="ip2p", editor_model=folder, dtype=args.dtype, device=args.device, edit_resolution=args.resolution,
                    num_inference_steps=args.steps, edit_batch_size=args.batch_size, local_files_only=True,
                    batch_pixel_budget=args.batch_size * args.resolution * args.resolution)  # parts of about one editor batch
    results = {}
    for overlap in (False, True):
        transform = Unsafe2Safe(overlap=overlap, **settings)
        rows.select(range(min(4, len(rows)))).map(transform, batched=True, batch_size=4, load_from_cache_file=False)  # warm-up
        synchronize(args.device)
        start = time.perf_counter()
        out = rows.map(transform, batched=True, batch_size=args.map_batch_size, load_from_cache_file=False)
        synchronize(args.device)
        results[overlap] = len(rows) / (time.perf_counter() - start)
    statuses = [status.split(";")[0] for status in out["u2s_status"]]
    private = [i for i, status in enumerate(statuses) if status != "passthrough"]
    counts = {status: statuses.count(status) for status in sorted(set(statuses))}

    # The editor alone on the same private rows, as the transform hands them over (RGB, seeded per row).
    editor = InstructPix2PixEditor(resolve_config(**settings))
    inspection = Inspection(True, ["people_faces"], public_caption="a person")
    requests = [EditRequest(Image.open(io.BytesIO(rows[i]["image"]["bytes"])).convert("RGB"), inspection, Instruction(INSTRUCTION), None, i)
                for i in private]
    editor.edit(requests[: args.batch_size])  # warm-up
    editor_only = timed(lambda: editor.edit(requests), len(requests), args.device)
    return results[False], results[True], editor_only, counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random architecture and 64x64 images: a smoke run of every path")
    parser.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default=None, help="bf16 (default on CUDA) | fp16 | fp32 (default on CPU); the same for every path")
    parser.add_argument("--images", type=int, default=64, help="images timed per path")
    parser.add_argument("--batch-size", type=int, default=16, help="images per pipeline call, every path")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--job-rows", type=int, default=128, help="rows of the ds.map job (a quarter without faces)")
    parser.add_argument("--job-side", type=int, default=512, help="side of the job's photos, pixels")
    parser.add_argument("--map-batch-size", type=int, default=64, help="ds.map batch_size of the job")
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet of the project paths")
    parser.add_argument("--fp8", action="store_true", help="also time fp8 weights and activations (torchao; Ada/Hopper)")
    parser.add_argument("--skip-job", action="store_true", help="leave out the ds.map job")
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="the device's measured dense matrix rate, TFLOP/s")
    args = parser.parse_args()
    args.dtype = args.dtype or ("bf16" if args.device.startswith("cuda") else "fp32")
    if args.tiny:
        args.resolution = 64
        args.images, args.batch_size, args.steps = min(args.images, 4), min(args.batch_size, 2), min(args.steps, 4)
        args.job_rows, args.map_batch_size = min(args.job_rows, 8), min(args.map_batch_size, 8)
        args.job_side = 256  # the detectors still find the faces
    torch.backends.cuda.matmul.allow_tf32 = True

    lines = []
    with tempfile.TemporaryDirectory() as folder:
        pipe = random_sd_editing_pipeline("ip2p", "tiny" if args.tiny else "sd15")
        pipe.save_pretrained(f"{folder}/ip2p")
        save_random_lcm_lora(pipe.unet, f"{folder}/lcm-lora", rank=4 if args.tiny else 64)
        del pipe
        model, requests = f"{folder}/ip2p", requests_for(args.images, args.resolution)

        figures = {}
        figures["(a) diffusers, image guidance 1.5"] = baseline(model, requests, args, 1.5)
        figures["(a) diffusers, image guidance 1.0"] = baseline(model, requests, args, 1.0)
        figures["(b) default, image guidance 1.5"] = editor_path(model, requests, args)
        figures["(c) two-pass, image guidance 1.0"] = editor_path(model, requests, args, image_guidance_scale=1.0)
        figures["(d) fast: LCM-LoRA, 4 steps"] = editor_path(model, requests, args, fast=True, fast_lora=f"{folder}/lcm-lora")
        if args.fp8:
            figures["(f) fp8"] = editor_path(model, requests, args, fp8=True)
        job = None if args.skip_job else whole_job(model, args)
        # Last: deterministic mode sets process-wide kernel choices.
        figures["(e) deterministic"] = editor_path(model, requests, args, deterministic=True)
        odd = requests[: max(1, args.images - args.batch_size // 2)]  # a last batch half empty: padding costs
        figures["(e) deterministic, padded"] = editor_path(model, odd, args, deterministic=True)

    base15, base10 = figures["(a) diffusers, image guidance 1.5"][0], figures["(a) diffusers, image guidance 1.0"][0]
    device_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
    lines.append(f"architecture : {'tiny' if args.tiny else 'SD-1.5 InstructPix2Pix (8-channel UNet)'}, {args.resolution}x{args.resolution}, "
                 f"{args.steps} steps (fast: 4), text guidance 7.5, batches of {args.batch_size}, {args.dtype}{', compiled' if args.compile else ''}")
    lines.append(f"device       : {args.device} ({device_name}); passes per step at (7.5, 1.5): {len(guidance_passes(7.5, 1.5))}, "
                 f"at (7.5, 1.0): {len(guidance_passes(7.5, 1.0))}")
    lines.append(f"{'path':<36} {'images/s':>10} {'vs (a)':>7} {'TFLOP/image':>12} {'TFLOP/s':>9} {'utilisation':>12}"
                 "   (vs (a) at the same image guidance)")
    for name, (rate, flops) in figures.items():
        reference = base10 if "1.0" in name else base15
        achieved = rate * flops / 1e12
        lines.append(f"{name:<36} {rate:>10.3f} {rate / reference:>6.2f}x {flops / 1e12:>12.3f} {achieved:>9.2f} "
                     f"{100 * achieved / args.peak_tflops:>11.1f}%")
    if job is not None:
        sequential, overlapped, editor_only, counts = job
        lines.append(f"(g) ds.map job, {args.job_rows} rows of {args.job_side} px ({', '.join(f'{n} {s}' for s, n in counts.items())}), "
                     "local detectors + ip2p:")
        lines.append(f"    sequential parts {sequential:.3f} rows/s, overlapped parts {overlapped:.3f} rows/s ({overlapped / sequential:.2f}x); "
                     f"editor alone on the edited rows {editor_only:.3f} images/s; overlapped job rows/s / editor images/s = "
                     f"{100 * overlapped / editor_only:.0f}%")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
