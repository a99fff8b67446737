"""Shared inputs of the training tests: triplets made by the transform from real photos, tiny models on disk."""

import atexit
import functools
import io
import shutil
import tempfile

import datasets
import pytest
import torch
from PIL import Image, ImageOps

from u2s_datasets import Unsafe2Safe
from u2s_datasets.testing.pipelines import random_sd_editing_pipeline
from u2s_datasets.samples import sample_images

from tiny_models import tiny_clip

@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: OpenMP threads only contend with each other (and with other jobs on a shared CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


FACES = ("astronaut", "grace_hopper", "camera")
CLEAN = ("coffee", "chelsea")
SIDE = 160


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _variants(image: Image.Image, count: int) -> list:
    """Shifted crops and mirror images of one photo, each still showing its face."""
    image = image.convert("RGB")
    side = min(image.size)
    out = []
    for i in range(count):
        shrink = 0.82 + 0.06 * (i % 4)
        crop = int(side * shrink)
        left = (image.width - crop) * ((i * 3) % 5) // 4
        top = (image.height - crop) * ((i * 2) % 3) // 2
        variant = image.crop((left, top, left + crop, top + crop)).resize((SIDE, SIDE), Image.LANCZOS)
        out.append(ImageOps.mirror(variant) if i % 2 else variant)
    return out


@functools.lru_cache(maxsize=1)
def photo_dataset() -> datasets.Dataset:
    """Eight variants of each face photo plus two clean scenes (passthrough rows)."""
    photos = sample_images()
    images, names = [], []
    for name in FACES:
        for i, variant in enumerate(_variants(photos[name], 8)):
            images.append(variant)
            names.append(f"{name}-{i}")
    for name in CLEAN:
        images.append(photos[name].convert("RGB").resize((SIDE, SIDE)))
        names.append(name)
    return datasets.Dataset.from_dict(
        {"image": [{"bytes": _png(im), "path": None} for im in images], "name": names},
        features=datasets.Features({"image": datasets.Image(decode=False), "name": datasets.Value("string")}),
    )


@functools.lru_cache(maxsize=1)
def folders() -> dict:
    """Tiny models and the anonymized dataset, saved once per test session."""
    root = tempfile.mkdtemp(prefix="u2s-train-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    paths = {"ip2p": f"{root}/ip2p", "clip": f"{root}/clip", "anonymized": f"{root}/anonymized"}
    random_sd_editing_pipeline("ip2p").save_pretrained(paths["ip2p"])
    tiny_clip(paths["clip"])
    transform = Unsafe2Safe(editor="pixelate", detect_text=False)
    ds = photo_dataset()
    anonymized = ds.map(transform, batched=True, batch_size=8, features=transform.features(ds.features), load_from_cache_file=False)
    anonymized.save_to_disk(paths["anonymized"])
    return paths


@pytest.fixture(scope="module")
def paths():
    return folders()


@pytest.fixture(scope="module")
def anonymized(paths):
    return datasets.load_from_disk(paths["anonymized"])
