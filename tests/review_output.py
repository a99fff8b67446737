"""A small saved output of ``u2s anonymize`` (real photos, local preset) for the review tests."""

import atexit
import functools
import io
import shutil
import tempfile

import datasets
from PIL import Image

from u2s_datasets.run import anonymize, write_config
from u2s_datasets.samples import sample_images
from u2s_datasets.transform import Unsafe2Safe

# Faces (astronaut, grace_hopper), text (page) and scenes with nothing private (coffee, chelsea).
NAMES = ("astronaut", "grace_hopper", "page", "coffee", "chelsea")


def small_photos(side: int = 256) -> dict:
    photos = {}
    for name in NAMES:
        image = sample_images()[name].convert("RGB")
        image.thumbnail((side, side) if name != "page" else (512, 512))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        photos[name] = buffer.getvalue()
    return photos


def saved_output(folder: str, editor: str = "pixelate") -> str:
    """Anonymize the photos and save them as ``u2s anonymize`` does; returns ``folder``."""
    photos = small_photos()
    ds = datasets.Dataset.from_dict(
        {"image": [{"bytes": b, "path": None} for b in photos.values()], "file_name": [f"{n}.png" for n in photos]},
        features=datasets.Features({"image": datasets.Image(decode=False), "file_name": datasets.Value("string")}),
    )
    transform = Unsafe2Safe(preset="local", editor=editor)
    result, _ = anonymize(ds, transform, batch_size=8)
    result.save_to_disk(folder)
    write_config(folder, transform)
    return folder


def pixels(image) -> bytes:
    if isinstance(image, dict):
        image = Image.open(io.BytesIO(image["bytes"]))
    return image.convert("RGB").tobytes()


@functools.lru_cache(maxsize=None)
def _made_once(editor: str) -> str:
    folder = tempfile.mkdtemp(prefix="u2s-review-test-")
    atexit.register(shutil.rmtree, folder, True)
    return saved_output(folder + "/out", editor)


def fresh_output(folder, editor: str = "pixelate") -> str:
    """A private copy of the saved output (anonymized once per test process)."""
    shutil.copytree(_made_once(editor), str(folder))
    return str(folder)
