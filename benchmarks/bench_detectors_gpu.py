"""The local preset's detectors on a GPU against the same machine's CPUs, and the finds of both.

    python benchmarks/bench_detectors_gpu.py --images 2000 --cpu-images 200 --gpu-procs 4

faces+text at 512 px (bench_local's photos cycled), through ds.map, rounds interleaved:
  gpu   Unsafe2Safe(device="cuda:0"), --gpu-procs spawned processes sharing the GPU
        (the CPU-side work of each batch, decoding, warps, heatmaps and encoding, runs beside it)
  cpu   Unsafe2Safe(device="cpu"), one process per core
Then the recall set (bench_recall's text, large-photo and small-photo sets) through the GPU and
through the CPU with the same float networks (detector_precision="fp32"): the regions found per
image and what the judges still read and re-identify.
Needs a CUDA device; prints its name and the torch version.
"""

import argparse
import io
import os
import sys
import tempfile
import time

import datasets
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(__file__))
from bench_local import photos_512  # noqa: E402
from bench_recall import SMALL_ANGLES, SMALL_SIDES, SMALL_WIDTHS, judge_faces, judge_strings, jpeg  # noqa: E402


def run(images: list, device: str, num_proc: int, batch_size: int, **settings) -> tuple:
    """(images/s, output columns) of the local preset on ``device`` over JPEG bytes."""
    from u2s_datasets import Unsafe2Safe

    transform = Unsafe2Safe(device=device, **settings)
    with tempfile.TemporaryDirectory() as cache:
        ds = datasets.Dataset.from_dict({"image": [{"bytes": b, "path": None} for b in images]},
                                        features=datasets.Features({"image": datasets.Image(decode=False)}))
        warm = ds.select(range(min(len(ds), batch_size * num_proc)))
        warm.map(transform, batched=True, batch_size=batch_size, num_proc=num_proc if num_proc > 1 else None,
                 with_rank=True, features=transform.features(ds.features), cache_file_name=os.path.join(cache, "warm.arrow"))
        start = time.perf_counter()
        out = ds.map(transform, batched=True, batch_size=batch_size, num_proc=num_proc if num_proc > 1 else None,
                     with_rank=True, features=transform.features(ds.features), cache_file_name=os.path.join(cache, "out.arrow"))
        seconds = time.perf_counter() - start
        out = out.cast_column("safe_image", datasets.Image(decode=False))
        return len(images) / seconds, out.flatten_indices().to_dict()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--cpu-images", type=int, default=200)
    parser.add_argument("--gpu-procs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-recall", action="store_true")
    parser.add_argument("--gpu", default="cuda:0", help=argparse.SUPPRESS)  # "cpu" to try the script without a GPU
    args = parser.parse_args()
    import multiprocess
    import torch

    multiprocess.set_start_method("spawn", force=True)  # CUDA cannot start in forked workers
    datasets.disable_progress_bars()
    name = torch.cuda.get_device_name(0) if args.gpu.startswith("cuda") else args.gpu
    print(f"{name}, torch {torch.__version__}, {os.cpu_count()} CPU cores")
    base = photos_512()
    gpu_images = [base[i % len(base)] for i in range(args.images)]
    cpu_images = gpu_images[:args.cpu_images]
    gpu, cpu = [], []
    for _ in range(args.rounds):
        gpu.append(run(gpu_images, args.gpu, args.gpu_procs, args.batch_size)[0])
        cpu.append(run(cpu_images, "cpu", os.cpu_count(), 8)[0])
        print(f"round: gpu {gpu[-1]:.1f} images/s, cpu {cpu[-1]:.1f} images/s, ratio {gpu[-1] / cpu[-1]:.1f}x", flush=True)
    ratios = sorted(g / c for g, c in zip(gpu, cpu))
    print(f"faces+text 512 px: GPU {np.median(gpu):.1f} images/s, CPUs {np.median(cpu):.1f} images/s, "
          f"GPU/CPU {np.median(ratios):.1f}x ({ratios[0]:.1f}-{ratios[-1]:.1f})")
    if not args.skip_recall:
        recall(args.gpu)


def recall(gpu: str):
    from u2s_datasets.testing.recall_set import face_set, text_set
    from u2s_datasets.testing.readers import FaceJudge, StringReader

    sets = {"text": text_set(16), "large": face_set(2),
            "small": face_set(4, widths=SMALL_WIDTHS, angles=SMALL_ANGLES, long_side=SMALL_SIDES)}
    reader, judge = StringReader(), FaceJudge()
    for kind, items in sets.items():
        encoded = [jpeg(i.image) for i in items]
        found = {}
        for device in ("cpu", gpu):
            _, out = run(encoded, device, 1, 4, detector_precision="fp32")
            rgbs = [np.asarray(Image.open(io.BytesIO(s["bytes"])).convert("RGB")) for s in out["safe_image"]]
            left = judge_strings(reader, items, rgbs) if kind == "text" else judge_faces(judge, items, rgbs)
            found[device] = ([len(r) for r in out["privacy_regions"]], left["all"])
        (cpu_regions, cpu_left), (gpu_regions, gpu_left) = found["cpu"], found[gpu]
        same = sum(a == b for a, b in zip(cpu_regions, gpu_regions))
        print(f"{kind} set: regions per image equal on {same}/{len(items)} images; left readable/re-identified: "
              f"cpu {cpu_left[0]}/{cpu_left[1]}, gpu {gpu_left[0]}/{gpu_left[1]}")


if __name__ == "__main__":
    main()
