"""Peak memory of the per-image work on very large 16-bit colour PNGs, one image after another.

    python benchmarks/bench_memory.py --images 8 --megapixels 88 [--grey]

The images are a real photo tiled up to the size, in 16 bits with a gradient in the low bits,
written once to a temporary folder per distinct image. For each image, in order:
  decode        decode() of the file's bytes (OpenCV 16-bit read, 8-bit view)
  view          to_rgb(): the 8-bit RGB the detectors see
  passthrough   passthrough_bytes(): metadata stripped at the byte level
  edit          compose() of a filled box (a quarter of the image) under a region mask, then encode();
                the full-size mask (float32) and the editor's full-size RGB output that the transform
                holds during this step are held here too, and counted
Peak RSS (sampled every 5 ms) and the tracemalloc peak (numpy and Python allocations) are shown per
image and per step; RSS includes the file's bytes and the interpreter's libraries.
"""

import argparse
import gc
import os
import tempfile
import threading
import time
import tracemalloc

import cv2
import numpy as np
import psutil
from PIL import Image

from u2s_datasets.imaging.compose import compose
from u2s_datasets.imaging.decode import decode
from u2s_datasets.imaging.encode import encode, passthrough_bytes
from u2s_datasets.imaging.modes import to_rgb
from u2s_datasets.samples import sample_images


class PeakRSS:
    """The highest resident set size seen while the block runs."""

    def __enter__(self):
        self.process, self.peak, self.running = psutil.Process(), 0, True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def make_png(path: str, megapixels: float, seed: int, grey: bool) -> None:
    photo = np.asarray(sample_images()["astronaut"]).astype(np.uint16)
    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = int(megapixels * 1e6 / width)
    reps = (-(-height // photo.shape[0]), -(-width // photo.shape[1]), 1)
    tiled = np.tile(np.roll(photo, seed * 37, axis=1), reps)[:height, :width]
    tiled <<= 8
    tiled += (np.arange(width, dtype=np.uint16) % 256)[None, :, None]  # low bits an 8-bit read would lose
    if grey:
        cv2.imwrite(path, tiled[..., 1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
    else:
        cv2.imwrite(path, tiled[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])


def one_image(path: str) -> dict:
    steps = {}
    with open(path, "rb") as f:
        data = f.read()

    def step(name, run):
        gc.collect()
        tracemalloc.reset_peak()
        with PeakRSS() as rss:
            start = time.perf_counter()
            value = run()
            seconds = time.perf_counter() - start
        steps[name] = (rss.peak, tracemalloc.get_traced_memory()[1], seconds)
        return value

    decoded = step("decode", lambda: decode(data, 10**9))
    step("view", lambda: to_rgb(decoded.image))
    step("passthrough", lambda: len(passthrough_bytes(decoded, 90)))
    width, height = decoded.image.size
    mask = np.zeros((height, width), np.float32)
    mask[height // 4: height * 3 // 4, width // 4: width * 3 // 4] = 1
    filled = Image.new("RGB", (width, height), (90, 90, 90))
    step("edit", lambda: len(encode(compose(decoded.image, filled, mask), "PNG", 90)))
    return steps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--megapixels", type=float, default=88)
    parser.add_argument("--distinct", type=int, default=2, help="distinct files written (they are cycled)")
    parser.add_argument("--grey", action="store_true", help="16-bit grey instead of 16-bit RGB")
    args = parser.parse_args()
    tracemalloc.start()
    with tempfile.TemporaryDirectory() as folder:
        paths = [os.path.join(folder, f"{i}.png") for i in range(args.distinct)]
        for i, path in enumerate(paths):
            make_png(path, args.megapixels, i, args.grey)
        gc.collect()
        base, traced = psutil.Process().memory_info().rss, tracemalloc.get_traced_memory()[0]
        size = Image.open(paths[0]).size
        print(f"{args.images} images of {size[0]}x{size[1]} (16-bit {'grey' if args.grey else 'RGB'} PNG, {os.path.getsize(paths[0]) / 2**20:.0f} MiB each); "
              f"before: RSS {base / 2**20:.0f} MiB, traced {traced / 2**20:.0f} MiB")
        overall = 0
        for i in range(args.images):
            steps = one_image(paths[i % len(paths)])
            peak = max(rss for rss, _, _ in steps.values())
            overall = max(overall, peak)
            detail = ", ".join(f"{name} {rss / 2**20:.0f}/{traced / 2**20:.0f} MiB {s:.1f}s" for name, (rss, traced, s) in steps.items())
            print(f"image {i + 1}: peak RSS {peak / 2**20:.0f} MiB  ({detail}; RSS/tracemalloc peak)")
        print(f"peak RSS over all images: {overall / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
