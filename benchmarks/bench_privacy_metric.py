"""Privacy metric throughput on CPU: images per second on 512-pixel real photos.

    python benchmarks/bench_privacy_metric.py [--images 24] [--threads N]

Each pair is a real photo and a blurred version of it, so both images go through face
detection, face embedding and OCR. Models load once before the clock starts.
"""

import argparse
import io
import time

import numpy as np
from PIL import Image


def photos_512() -> list:
    import skimage.data
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = np.asarray(Image.open(io.BytesIO(f.read())).convert("RGB"))
    arrays = [skimage.data.astronaut(), hopper, skimage.data.coffee(), skimage.data.chelsea(),
              np.stack([skimage.data.page()] * 3, -1), np.stack([skimage.data.camera()] * 3, -1)]
    out = []
    for array in arrays:
        image = Image.fromarray(array)
        scale = 512 / max(image.size)
        out.append(np.asarray(image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)))
    return out


def main():
    import cv2
    import torch

    from u2s_datasets.evaluation.privacy import compute_privacy

    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    base = photos_512()
    originals = [base[i % len(base)] for i in range(args.images)]
    safes = [cv2.GaussianBlur(image, (0, 0), 6) for image in originals]
    compute_privacy(safes[:1], originals[:1], progress=False)  # load the models
    start = time.perf_counter()
    result = compute_privacy(safes, originals, progress=False)
    seconds = time.perf_counter() - start
    print(f"privacy metric (faces + text, CPU, {torch.get_num_threads()} threads): {args.images} pairs of 512-px photos "
          f"in {seconds:.1f} s = {args.images / seconds:.2f} images/s "
          f"(faces found: {result['original_faces']}, images with text: {result['images_with_text']})")


if __name__ == "__main__":
    main()
