"""Small rows of real photos for the sharded-run tests, built the same way in any process."""

import io
import sys

import datasets
from PIL import Image

from conftest import PHOTOS, encode


def photo_rows(count: int, size: int = 96) -> datasets.Dataset:
    """``count`` rows cycling over the sample photos (faces, text, clean), shrunk to ``size`` px, plus one corrupt row."""
    names = list(PHOTOS)
    small = {}
    for name in names:
        image = Image.open(io.BytesIO(PHOTOS[name]()))
        image.thumbnail((size, size))
        small[name] = encode(image.convert("RGB"), "PNG")
    images, labels = [], []
    for i in range(count):
        name = names[i % len(names)]
        images.append({"bytes": small[name] if i != 3 else b"not an image", "path": None})
        labels.append(f"{i:04d}-{name}")
    return datasets.Dataset.from_dict(
        {"image": images, "name": labels},
        features=datasets.Features({"image": datasets.Image(), "name": datasets.Value("string")}),
    )


def main(output_dir: str, count: int, size: int, shard_size: int) -> None:
    """A whole run in a process of its own (the tests kill it midway)."""
    from u2s_datasets import Unsafe2Safe
    from u2s_datasets.run import run_sharded

    run_sharded(photo_rows(count, size), Unsafe2Safe(detect_text=False), output_dir, shard_size=shard_size)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
