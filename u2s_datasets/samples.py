"""Real photos that ship inside installed packages (scikit-image, matplotlib, scikit-learn)."""

import functools
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


def sample_images() -> dict:
    """name -> PIL image as shipped: faces, a printed page, and scenes with nothing private."""
    return dict(_load_images())


@functools.lru_cache(maxsize=1)
def _load_images() -> dict:
    import skimage.data
    from matplotlib import cbook
    from sklearn.datasets import load_sample_images

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        grace_hopper = Image.open(io.BytesIO(f.read())).convert("RGB")
    china, flower = load_sample_images().images
    arrays = {"astronaut": skimage.data.astronaut(), "camera": skimage.data.camera(), "page": skimage.data.page(),
              "coffee": skimage.data.coffee(), "chelsea": skimage.data.chelsea(), "china": china, "flower": flower}
    images = {name: Image.fromarray(np.asarray(array)) for name, array in arrays.items()}
    return {"grace_hopper": grace_hopper, **images}


def sample_photos() -> dict:
    """name -> encoded bytes: JPEG for the photographs, PNG for the grayscale scans and clean scenes."""
    images = sample_images()
    as_png = ("camera", "page", "coffee")
    return {
        "astronaut": _jpeg(images["astronaut"]),
        "grace_hopper": _jpeg(images["grace_hopper"]),
        **{name: _png(images[name]) for name in as_png},
        "chelsea": _jpeg(images["chelsea"]),
        "china": _jpeg(images["china"]),
        "flower": _jpeg(images["flower"]),
    }


def sample_dataset() -> datasets.Dataset:
    photos = sample_photos()
    return datasets.Dataset.from_dict(
        {"image": [{"bytes": b, "path": None} for b in photos.values()], "name": list(photos)},
        features=datasets.Features({"image": datasets.Image(decode=False), "name": datasets.Value("string")}),
    )
