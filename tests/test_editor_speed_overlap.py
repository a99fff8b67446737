"""Parts of a batch overlapped (prepare/encode in a worker while the editor edits) give the sequential output.

Real photos, the real local face detector, a tiny random-weight InstructPix2Pix loaded from disk.
"""

import io

import datasets
import numpy as np
import pytest
import skimage.data
from PIL import Image

from u2s_datasets import Unsafe2Safe
from u2s_datasets import columns as C
from u2s_datasets.edit.ip2p import InstructPix2PixEditor
from u2s_datasets.testing.pipelines import random_sd_editing_pipeline
from u2s_datasets.rows import Row
from u2s_datasets.samples import sample_images

# Faces and no faces, alternating, so that every part holds rows to edit and rows to pass through.
PHOTOS = {"astronaut": skimage.data.astronaut(), "coffee": skimage.data.coffee(), "grace_hopper": np.asarray(sample_images()["grace_hopper"]),
          "chelsea": skimage.data.chelsea()}
SIDE = 256
SETTINGS = dict(editor="ip2p", detect_text=False, edit_resolution=64, num_inference_steps=2, edit_batch_size=2,
                batch_pixel_budget=2 * SIDE * SIDE)  # two photos per part


def _png(array) -> bytes:
    image = Image.fromarray(array).convert("RGB")
    image.thumbnail((SIDE, SIDE))
    buffer = io.BytesIO()
    image.resize((SIDE, SIDE)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photos():
    return datasets.Dataset.from_dict(
        {"image": [{"bytes": _png(a), "path": None} for a in PHOTOS.values()], "name": list(PHOTOS)},
        features=datasets.Features({"image": datasets.Image(decode=False), "name": datasets.Value("string")}),
    )


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("overlap") / "ip2p")
    random_sd_editing_pipeline("ip2p").save_pretrained(folder)
    return folder


def run(photos, model, **overrides):
    transform = Unsafe2Safe(editor_model=model, **SETTINGS, **overrides)
    out = photos.map(transform, batched=True, batch_size=len(photos), features=transform.features(photos.features), load_from_cache_file=False)
    return out.cast_column("safe_image", datasets.Image(decode=False)).to_list()


def test_overlapped_parts_give_the_sequential_output_and_passthrough_never_waits_for_edits(photos, model, monkeypatch):
    events = []
    finish, edit = Row.finish, InstructPix2PixEditor.edit

    def recorded_finish(row, output):
        events.append(("finish", row.index))
        return finish(row, output)

    def recorded_edit(editor, requests):
        events.append(("edit", len(requests)))
        return edit(editor, requests)

    monkeypatch.setattr(Row, "finish", recorded_finish)
    monkeypatch.setattr(InstructPix2PixEditor, "edit", recorded_edit)
    overlapped = run(photos, model, overlap=True)
    order = list(events)
    events.clear()
    sequential = run(photos, model, overlap=False)

    statuses = [r[C.STATUS].split(C.NOTE_SEPARATOR)[0] for r in sequential]
    assert [s == C.STATUS_PASSTHROUGH for s in statuses] == [False, True, False, True], statuses
    assert C.STATUS_EDITED in statuses
    assert overlapped == sequential  # every column of every row, safe image bytes included
    assert sequential[0]["safe_image"]["bytes"] != photos[0]["image"]["bytes"]
    # Each photo without a face is encoded before the edit of its own part begins.
    edits = [i for i, event in enumerate(order) if event[0] == "edit"]
    assert len(edits) == 2
    assert order.index(("finish", 1)) < edits[0] and order.index(("finish", 3)) < edits[1]
