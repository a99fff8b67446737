"""FID's Inception-v3 (plain torch) throughput, and the time of one FID over its 2048-d features.

    python benchmarks/bench_fid_inception.py [--images 32] [--batch 16] [--device cuda] [--weights pt_inception-...pth]

Random weights unless ``--weights`` names the published file (the speed is the same). The
images are real photos at 299 x 299, as the quality metric feeds them.
"""

import argparse
import time

import torch


def main():
    from torchmetrics.image.fid import FrechetInceptionDistance

    from u2s_datasets.evaluation.fid_inception import FidInceptionV3, load_fid_inception
    from u2s_datasets.evaluation.quality import _uint8_batch
    from u2s_datasets.samples import sample_images

    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights", default=None)
    args = parser.parse_args()
    model = load_fid_inception(args.weights, device=args.device) if args.weights else FidInceptionV3().to(args.device).eval()
    photos = list(sample_images().values())
    images = _uint8_batch([photos[i % len(photos)] for i in range(args.images)])
    model(images[:2])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(images), args.batch):
        model(images[i:i + args.batch])
    seconds = time.perf_counter() - start
    print(f"FID Inception-v3 on {args.device} ({torch.get_num_threads()} CPU threads): {args.images} images of 299 px "
          f"in {seconds:.2f} s = {args.images / seconds:.1f} images/s")
    fid = FrechetInceptionDistance(feature=model)
    fid.update(images, real=True)
    fid.update(images.flip(-1), real=False)
    start = time.perf_counter()
    fid.compute()
    print(f"one FID over 2048-d features (torchmetrics, matrix square root): {time.perf_counter() - start:.2f} s")

if __name__ == "__main__":
    main()
