"""Real photos that ship inside installed packages (scikit-image, matplotlib, scikit-learn)."""

import io

import datasets
import numpy as np
from PIL import Image


def _png(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array)).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array)).convert("RGB").save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def sample_photos() -> dict:
    """name -> encoded image bytes: faces, a printed page, and scenes with nothing private."""
    import skimage.data
    from matplotlib import cbook
    from sklearn.datasets import load_sample_images

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        grace_hopper = f.read()
    china, flower = load_sample_images().images
    return {
        "astronaut": _jpeg(skimage.data.astronaut()),
        "grace_hopper": grace_hopper,
        "camera": _png(skimage.data.camera()),
        "page": _png(skimage.data.page()),
        "coffee": _png(skimage.data.coffee()),
        "chelsea": _jpeg(skimage.data.chelsea()),
        "china": _jpeg(china),
        "flower": _jpeg(flower),
    }


def sample_dataset() -> datasets.Dataset:
    photos = sample_photos()
    return datasets.Dataset.from_dict(
        {"image": [{"bytes": b, "path": None} for b in photos.values()], "name": list(photos)},
        features=datasets.Features({"image": datasets.Image(decode=False), "name": datasets.Value("string")}),
    )
