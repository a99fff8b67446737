"""Peak memory of one batch of huge images through ``ds.map(Unsafe2Safe(), batched=True)``.

Eight 88-megapixel 16-bit PNGs (flat colour with a drawn face-sized patch: about 1.5 MB of
input) in one batch of 8. The transform decodes and works through them in parts under
``batch_pixel_budget`` and encodes each row as soon as it is done, so the peak is about one
image's working set, not eight.

    python benchmarks/bench_batch_memory.py [--images 8] [--megapixels 88] [--budget 50000000]
"""

import argparse
import io
import resource
import time

import datasets
import numpy as np
from PIL import Image

from u2s_datasets import Unsafe2Safe


def huge_png(megapixels: float, seed: int) -> bytes:
    side = int((megapixels * 1e6) ** 0.5)
    array = np.full((side, side), 20000 + 1000 * seed, dtype=np.uint16)
    array[side // 3 : side // 3 + 200, side // 3 : side // 3 + 200] = 60000  # a bright square: something to look at
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--megapixels", type=float, default=88)
    parser.add_argument("--budget", type=int, default=50_000_000, help="batch_pixel_budget")
    args = parser.parse_args()
    data = [huge_png(args.megapixels, i) for i in range(args.images)]
    ds = datasets.Dataset.from_dict(
        {"image": [{"bytes": d, "path": None} for d in data]}, features=datasets.Features({"image": datasets.Image(decode=False)})
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    out = ds.map(Unsafe2Safe(batch_pixel_budget=args.budget), batched=True, batch_size=args.images, keep_in_memory=True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.images} images of {args.megapixels:g} Mpx, 16-bit PNG, {sum(map(len, data)) / 1e6:.1f} MB of input, one batch")
    print(f"statuses: {sorted(set(out['u2s_status']))}")
    print(f"peak RSS {peak:.0f} MB (before the map: {before:.0f} MB); {seconds:.1f} s")


if __name__ == "__main__":
    main()
