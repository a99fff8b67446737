"""Throughput of the ``ip2p`` editor against a plain one-image-at-a-time fp32 loop.

A full-size InstructPix2Pix architecture (the Stable Diffusion 1.5 UNet with 8 input
channels, random weights), 512x512, 20 steps, three-way guidance. In one run:

  (a) reference: the diffusers pipeline called once per image in fp32, as the original code runs;
  (b) this project: ``InstructPix2PixEditor`` batched, in bf16 (SDPA attention, optional torch.compile);

and the model FLOP utilisation of (b) against a given matrix rate (H200 bf16 measured: ~790 TFLOP/s).

    python benchmarks/bench_editor.py                       # on a GPU
    python benchmarks/bench_editor.py --tiny --device cpu   # anywhere, in seconds (figures mean nothing)
"""

import argparse
import tempfile
import time

import numpy as np
import torch
from PIL import Image

from u2s_datasets.config import resolve_config
from u2s_datasets.edit.diffusion import grid_size
from u2s_datasets.edit.ip2p import InstructPix2PixEditor
from u2s_datasets.edit.testing import random_sd_editing_pipeline
from u2s_datasets.records import EditRequest, Inspection, Instruction

INSTRUCTION = "Make every face generic"  # short: the tiny byte-level tokenizer spends a token per letter


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


def reference_loop(folder, requests, args) -> float:
    """Images/s of the pipeline called once per image in fp32."""
    from diffusers import StableDiffusionInstructPix2PixPipeline

    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(folder, dtype=torch.float32, use_safetensors=True).to(args.device)
    pipe.set_progress_bar_config(disable=True)
    size = grid_size(requests[0].image.size, args.resolution, 8)

    def one(request):
        pipe(prompt=request.instruction.instruction, image=request.image.resize(size), num_inference_steps=args.steps,
             guidance_scale=7.5, image_guidance_scale=1.5, generator=torch.Generator().manual_seed(request.seed))

    one(requests[0])  # warm-up
    synchronize(args.device)
    start = time.perf_counter()
    for request in requests[: args.reference_images]:
        one(request)
    synchronize(args.device)
    seconds = time.perf_counter() - start
    del pipe
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return args.reference_images / seconds


def project_path(folder, requests, args):
    """Images/s of the batched editor, and its model FLOPs per image."""
    from torch.utils.flop_counter import FlopCounterMode

    config = resolve_config(editor="ip2p", editor_model=folder, dtype=args.dtype, device=args.device, edit_resolution=args.resolution,
                            num_inference_steps=args.steps, edit_batch_size=args.batch_size, torch_compile=args.compile)
    editor = InstructPix2PixEditor(config)
    warm = requests[: args.batch_size]
    editor.edit(warm)  # warm-up (and compilation)
    with FlopCounterMode(display=False) as counter:
        editor.edit(warm)
    flops_per_image = counter.get_total_flops() / len(warm)
    synchronize(args.device)
    start = time.perf_counter()
    editor.edit(requests)
    synchronize(args.device)
    return len(requests) / (time.perf_counter() - start), flops_per_image


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random architecture and 64x64 images: a smoke run")
    parser.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bf16", help="dtype of the project path")
    parser.add_argument("--images", type=int, default=64, help="images timed on the project path")
    parser.add_argument("--reference-images", type=int, default=8, help="images timed on the reference loop")
    parser.add_argument("--batch-size", type=int, default=16, help="edit_batch_size of the project path")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet")
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="the device's measured dense matrix rate, TFLOP/s")
    args = parser.parse_args()
    if args.tiny:
        args.resolution = 64
        args.images, args.reference_images, args.batch_size = min(args.images, 8), min(args.reference_images, 4), min(args.batch_size, 4)

    torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 reference stays fp32
    with tempfile.TemporaryDirectory() as folder:
        random_sd_editing_pipeline("ip2p", "tiny" if args.tiny else "sd15").save_pretrained(folder)
        requests = requests_for(max(args.images, args.reference_images), args.resolution)
        reference = reference_loop(folder, requests, args)
        batched, flops_per_image = project_path(folder, requests[: args.images], args)

    achieved = batched * flops_per_image / 1e12
    print(f"architecture     : {'tiny' if args.tiny else 'SD-1.5 InstructPix2Pix (8-channel UNet)'}, {args.resolution}x{args.resolution}, {args.steps} steps, three-way guidance")
    print(f"device           : {args.device} ({torch.cuda.get_device_name(args.device) if args.device.startswith('cuda') else 'CPU'})")
    print(f"(a) fp32 loop    : {reference:.3f} images/s ({args.reference_images} images, one at a time)")
    print(f"(b) batched {args.dtype:<5}: {batched:.3f} images/s ({args.images} images, batches of {args.batch_size}{', compiled' if args.compile else ''})")
    print(f"ratio (b)/(a)    : {batched / reference:.2f}x")
    print(f"model FLOPs      : {flops_per_image / 1e12:.3f} TFLOP per image")
    print(f"utilisation (b)  : {achieved:.2f} TFLOP/s = {100 * achieved / args.peak_tflops:.1f}% of {args.peak_tflops:g} TFLOP/s")


if __name__ == "__main__":
    main()
