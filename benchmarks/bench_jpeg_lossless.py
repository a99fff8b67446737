"""Time of ``edit_jpeg_region`` against a plain re-encode, on a real photo at two sizes.

The photo (scikit-image's astronaut) is upscaled to the long side given, saved as a 4:2:0
JPEG at quality 90, and a face-sized feathered region (a tenth of each side) is inverted.

    python benchmarks/bench_jpeg_lossless.py --sizes 1024 4000 --repeats 5
"""

import argparse
import io
import time

import numpy as np
import scipy.ndimage as ndimage
import skimage.data
from PIL import Image

from u2s_datasets.imaging.jpeg_lossless import edit_jpeg_region


def case(side: int):
    photo = Image.fromarray(skimage.data.astronaut()).resize((side, side * 3 // 4), Image.BICUBIC)
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=90, subsampling=2)
    source = buffer.getvalue()
    original = np.asarray(Image.open(io.BytesIO(source)))
    height, width = original.shape[:2]
    mask = np.zeros((height, width), np.float32)
    mask[height // 5 : height // 5 + height // 10, width // 3 : width // 3 + width // 10] = 1
    mask = ndimage.gaussian_filter(mask, 3)
    mask[mask < 0.02] = 0
    weight = mask[..., None]
    blended = np.rint(original * (1 - weight) + (255.0 - original) * weight).astype(np.uint8)
    edited = Image.fromarray(np.where(weight > 0, blended, original))
    return source, edited, mask


def timed(call, repeats: int):
    """(wall, CPU) seconds per call; CPU time is the steadier figure on a shared machine."""
    call()  # warm-up: library loading
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - wall) / repeats, (time.process_time() - cpu) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for side in args.sizes:
        source, edited, mask = case(side)
        out = edit_jpeg_region(source, edited, mask)
        splice = timed(lambda: edit_jpeg_region(source, edited, mask), args.repeats)
        tables = Image.open(io.BytesIO(source)).quantization
        reencode = timed(lambda: edited.save(io.BytesIO(), format="JPEG", qtables=tables, subsampling=2), args.repeats)
        print(f"{edited.width}x{edited.height}: edit_jpeg_region {splice[0] * 1000:.0f} ms/call "
              f"({splice[1] * 1000:.0f} ms CPU), plain re-encode {reencode[0] * 1000:.0f} ms "
              f"({reencode[1] * 1000:.0f} ms CPU); size {len(out) / len(source):.3f} of the source")


if __name__ == "__main__":
    main()
