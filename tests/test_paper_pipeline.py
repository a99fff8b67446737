"""The whole method with models in both stages: a VLM and an LLM behind an OpenAI-compatible
endpoint on loopback (good answers), then a real InstructPix2Pix pipeline with tiny weights."""

import json

import datasets
import numpy as np
import pytest
from test_stage1_openai import ASTRONAUT_ANSWER, INSTRUCTION, PHOTOS, ChatServer, good_reply

from u2s_datasets import Unsafe2Safe
from u2s_datasets.testing.pipelines import random_sd_editing_pipeline


@pytest.fixture(scope="module")
def ip2p_folder(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("ip2p"))
    random_sd_editing_pipeline("ip2p").save_pretrained(folder)
    return folder


def pixel_reply(body, image):
    """The answers of ``good_reply`` with boxes in pixels of the image sent, as Qwen2.5-VL writes them."""
    answer = good_reply(body, image)
    if image is None:
        return answer
    obj = json.loads(answer.strip("`").removeprefix("json"))
    scale = (image.width / 1000, image.height / 1000) * 2
    for entry in obj["review"]:
        if "box" in entry:
            entry["box"] = [round(v * s) for v, s in zip(entry["box"], scale)]
    return json.dumps(obj)


@pytest.mark.parametrize("dual_prompt", [False, True])
def test_paper_preset_end_to_end(ip2p_folder, dual_prompt):
    names = ["astronaut", "coffee", "hopper"]
    ds = datasets.Dataset.from_dict({"image": [PHOTOS[n] for n in names], "name": names})
    with ChatServer(pixel_reply) as server:
        transform = Unsafe2Safe(
            preset="paper", stage1_backend="openai", openai_base_url=server.url, vlm_model="served-vlm",
            llm_model="served-llm", editor_model=ip2p_folder, edit_scope="regions", edit_resolution=64,
            num_inference_steps=2, dual_prompt=dual_prompt, vlm_box_format="pixels",
        )
        out = ds.map(transform, batched=True, batch_size=3, features=transform.features(ds.features))
    astronaut, coffee, hopper = out
    assert transform.config.edit.editor == "ip2p" and transform.config.edit.editor_model == ip2p_folder
    assert astronaut["u2s_status"] == "edited" and astronaut["edit_instruction"] == INSTRUCTION["instruction"]
    assert astronaut["public_caption"] == ASTRONAUT_ANSWER["public_caption"]
    safe, original = np.asarray(astronaut["safe_image"].convert("RGB")), np.asarray(PHOTOS["astronaut"])
    assert safe.shape == original.shape
    assert np.array_equal(safe[400:, 400:], original[400:, 400:])  # away from the VLM's box: the original
    assert np.abs(safe[60:170, 160:270].astype(int) - original[60:170, 160:270]).mean() > 5  # the face: edited
    assert coffee["u2s_status"] == "passthrough"
    assert np.array_equal(np.asarray(coffee["safe_image"].convert("RGB")), np.asarray(PHOTOS["coffee"]))
    assert hopper["u2s_status"] == "edited"
