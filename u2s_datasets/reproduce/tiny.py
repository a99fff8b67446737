"""``--tiny``: random-weight models of every architecture the protocol loads, and a handful of real photos with classes.

The models are saved to folders and loaded back by the same code a real run uses; the photos
ship with scikit-image and matplotlib (``samples.py``), cut into a few views each so that each
class has training and test images. Figures from tiny models only show that every step runs.
"""

import os

import datasets
import numpy as np

from ..samples import sample_images

# Class -> sample photos: faces (private), a cup and a cat (nothing private).
CLASSES = {"person": ("astronaut", "grace_hopper"), "cup": ("coffee",), "cat": ("chelsea",)}
SIDE = 128
MODEL_NAMES = ("editor", "flowedit", "clip", "vgg", "mae", "judge", "face_pack")


def tiny_models(folder: str) -> dict:
    """Role -> folder of a tiny random model; built once (a rerun finds them)."""
    import torch

    from ..testing.pipelines import random_sd3_pipeline, random_sd_editing_pipeline
    from ..testing.evaluation_models import save_antelope_pack, save_random_clip, save_random_mae, save_random_vgg16, save_random_vlm

    paths = {name: os.path.join(folder, name) for name in MODEL_NAMES}
    builders = {
        "editor": lambda p: random_sd_editing_pipeline("ip2p").save_pretrained(p),
        "flowedit": lambda p: random_sd3_pipeline().save_pretrained(p),
        "clip": save_random_clip, "vgg": save_random_vgg16, "mae": save_random_mae, "judge": save_random_vlm,
        "face_pack": save_antelope_pack,
    }
    for name, path in paths.items():
        if os.path.isdir(path) and os.path.exists(path + ".done"):
            continue
        torch.manual_seed(0)
        builders[name](path)
        open(path + ".done", "w").close()
    return paths


def _views(image, count: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        scale = rng.uniform(0.75, 0.9)
        w, h = int(image.width * scale), int(image.height * scale)
        x, y = int(rng.integers(0, image.width - w + 1)), int(rng.integers(0, image.height - h + 1))
        out.append(image.crop((x, y, x + w, y + h)).resize((SIDE, SIDE)))
    return out


def tiny_dataset(views_per_photo: int = 2) -> datasets.DatasetDict:
    """Train and test views of the sample photos, labelled by class."""
    photos = sample_images()
    names = list(CLASSES)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})

    def split(seed):
        rows = {"image": [], "label": []}
        for label, sources in CLASSES.items():
            for source in sources:
                for view in _views(photos[source].convert("RGB"), views_per_photo, seed):
                    rows["image"].append(view)
                    rows["label"].append(names.index(label))
        return datasets.Dataset.from_dict(rows, features=features)

    return datasets.DatasetDict({"train": split(0), "test": split(1)})
