"""Real photos that ship inside installed packages, as encoded bytes and as datasets."""

import io

import datasets
import numpy as np
import pytest
import skimage.data
from PIL import Image

from u2s_datasets.samples import sample_images


def encode(array_or_image, fmt="PNG", **params) -> bytes:
    image = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(array_or_image)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def grace_hopper() -> Image.Image:
    return sample_images()["grace_hopper"]


PHOTOS = {
    "astronaut": lambda: encode(skimage.data.astronaut(), "JPEG", quality=95),
    "grace_hopper": lambda: encode(grace_hopper(), "JPEG", quality=95),
    "camera": lambda: encode(skimage.data.camera()),
    "page": lambda: encode(skimage.data.page()),
    "coffee": lambda: encode(skimage.data.coffee()),
    "chelsea": lambda: encode(skimage.data.chelsea(), "JPEG", quality=90),
}
FACES = ("astronaut", "grace_hopper", "camera")
TEXT = ("page",)
CLEAN = ("coffee", "chelsea")


@pytest.fixture(scope="session")
def photo_bytes() -> dict:
    return {name: make() for name, make in PHOTOS.items()}


@pytest.fixture(scope="session")
def photo_dataset(photo_bytes) -> datasets.Dataset:
    """All photos as an undecoded Image column, the form that lets corrupt rows reach the transform."""
    names = list(photo_bytes)
    return datasets.Dataset.from_dict(
        {"image": [{"bytes": photo_bytes[n], "path": None} for n in names], "name": names},
        features=datasets.Features({"image": datasets.Image(decode=False), "name": datasets.Value("string")}),
    )


def rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
