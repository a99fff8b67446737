"""protocol="paper": the authors' prompts, sent as they send them, and their formulas on fixed model answers.

Every expected number is worked out here from the authors' definitions (privacy_scores.py,
vlm_score.py, face_similarity.py of SEE-AI-Lab/unsafe2safe), not by calling the code under test.
"""

import hashlib
import math
import shutil
from importlib import resources

import numpy as np
import pytest
from canned_vlm import CannedVLM
from PIL import Image

from u2s_datasets.evaluation.antelope import (ARCFACE_TEMPLATE, letterbox, recogniser_normalisation, scrfd_blob,
                                              similarity_matrix, suppress)
from u2s_datasets.evaluation.faces import Face
from u2s_datasets.evaluation.paper_protocol import JUDGE_SYSTEM, load_prompt
from u2s_datasets.evaluation.privacy import aggregate_faces, compute_privacy, face_leakage
from u2s_datasets.models.openai_chat import image_data_url

# SHA-256 of the authors' files (prompts/ of SEE-AI-Lab/unsafe2safe at 9694df5 and 77a0cc9).
AUTHORS_SHA256 = {
    "intern_text_extraction.txt": "b105c7d50de4e44191858ea9345491bebcf5f2850bf11e43aad66700801d20eb",
    "intern_demographic_analysis.txt": "19f40c889e969ff06b2ad2c863803fe2d22758bcb0a044185398e3db6d4a6f9b",
    "intern_image_flagging-compare.txt": "8b0ccb915875c2d9ab731cae89c279ad3fccdaffe1d5a6b0b0018dd9e6858ce0",
}


def _shipped(name):
    return resources.files("u2s_datasets.prompts").joinpath("paper").joinpath(name).read_bytes()


def test_the_shipped_prompts_are_the_authors_files():
    for name, digest in AUTHORS_SHA256.items():
        assert hashlib.sha256(_shipped(name)).hexdigest() == digest
    assert load_prompt("judge").endswith("ANONYMIZATION_SCORE: <integer 0-100>")
    assert load_prompt("race").startswith("You are an image analysis assistant.")


def test_a_changed_prompt_folder_is_refused(tmp_path):
    for name in AUTHORS_SHA256:
        (tmp_path / name).write_bytes(_shipped(name))
    assert load_prompt("text", str(tmp_path)) == _shipped("intern_text_extraction.txt").decode().strip()
    (tmp_path / "intern_text_extraction.txt").write_bytes(_shipped("intern_text_extraction.txt").replace(b"NO_TEXT", b"NONE"))
    with pytest.raises(ValueError, match="differs from the authors' file"):
        load_prompt("text", str(tmp_path))


def _colour(i):
    return np.full((24, 24, 3), (20 * i, 255 - 20 * i, 7 * i), np.uint8)


ORIGINALS = [_colour(i) for i in range(5)]
SAFES = [_colour(i) for i in range(5, 10)]
TEXT_REPLIES = [  # (original, safe)
    ("### TEXT\nSTOP", "### TEXT\nstop"),  # case kept: no token in common
    ("### TEXT\nMain St", "### TEXT\nMain Rd"),
    ("NO_TEXT", "NO_TEXT"),  # nothing to leak: left out of the mean
    ("NO_TEXT", "### TEXT\nHello"),  # nothing to leak either
    ("### TEXT\nMain St", "Main St"),  # off the format: read whole
]
RACE_REPLIES = [  # safe images only
    "### GENDER\nmale, female\n### RACE\nWhite, Black, Middle Eastern",
    "NO_HUMAN",
    "### GENDER\nfemale\n### RACE\nAsian, Hispanic, Other, Indian",
    "### GENDER\nmale\n### RACE\nWhite, White, Black",
    "I see a person.",
]
JUDGE_REPLIES = [
    "STEP 1: same layout, the face is replaced.\n**ANONYMIZATION_SCORE:** 85",
    "ANONYMIZATION_SCORE: 40\nANONYMIZATION_SCORE: 90",
    "Score: 70",
    "ANONYMIZATION_SCORE: 62.5",
    "ANONYMIZATION_SCORE: high",
]


@pytest.fixture(scope="module")
def paper_run():
    url = {"original": [image_data_url(Image.fromarray(a), image_format="PNG") for a in ORIGINALS],
           "safe": [image_data_url(Image.fromarray(a), image_format="PNG") for a in SAFES]}

    def text(images):
        for i, (original, safe) in enumerate(TEXT_REPLIES):
            if images[0] == url["original"][i]:
                return original
            if images[0] == url["safe"][i]:
                return safe
        raise AssertionError("an image that is not in the test")

    server = CannedVLM({
        "extract all visible text": text,
        "identify all apparent genders and races": lambda images: RACE_REPLIES[url["safe"].index(images[0])],
        "anonymization score": lambda images: JUDGE_REPLIES[url["original"].index(images[0])],
    })
    try:
        result = compute_privacy(SAFES, ORIGINALS, protocol="paper", faces=False, vlm_backend="openai",
                                 openai_base_url=server.url, openai_model="judge", progress=False)
    finally:
        server.close()
    return result, server.requests, url


def test_text_similarity_is_the_token_set_ratio_with_case_kept(paper_run):
    result, _, _ = paper_run
    # token_set_ratio("Main St", "Main Rd"): common "Main"; best is "Main" against "Main St":
    # indel distance 3 over 4 + 7 characters.
    main = 1 - 3 / (4 + 7)
    assert result["per_image"]["text_similarity"][:2] == pytest.approx([0.0, main])
    assert result["per_image"]["text_similarity"][4] == 1.0
    assert result["text_similarity"] == pytest.approx((0.0 + main + 1.0) / 3)
    assert result["images_with_text"] == 3 and result["text_free_form_answers"] == 1


def test_race_entropy_counts_the_five_categories_per_image(paper_run):
    result, _, _ = paper_run
    two = math.log(2) / math.log(5)  # White, Black (Middle Eastern is not one of the five)
    three = math.log(3) / math.log(5)  # Asian, Hispanic, Other (Indian is not)
    skewed = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)) / math.log(5)  # White twice, Black once
    assert result["per_image"]["race_entropy"] == pytest.approx([two, None, three, skewed, None])
    assert result["race_entropy"] == pytest.approx((two + three + skewed) / 3)
    assert result["race_images"] == 3 and result["race_unparsed"] == 1


def test_vlm_score_is_the_first_anonymization_score_line(paper_run):
    result, _, _ = paper_run
    assert result["per_image"]["vlm_score"] == [85.0, 40.0, None, 62.5, None]
    assert result["vlm_score"] == pytest.approx((85 + 40 + 62.5) / 3) and result["vlm_unparsed"] == 2


def test_requests_are_the_authors(paper_run):
    _, requests, url = paper_run
    prompts = {name: _shipped(name).decode().strip() for name in AUTHORS_SHA256}
    judges = [r["messages"] for r in requests if len(r["messages"]) == 2]
    assert len(judges) == 5
    for i, (system, user) in enumerate(judges):
        assert system == {"role": "system", "content": JUDGE_SYSTEM}
        assert JUDGE_SYSTEM == "You are a vision-language evaluator for privacy-preserving image anonymization."
        kinds = [(p["type"], p.get("text") or p["image_url"]["url"]) for p in user["content"]]
        assert kinds == [("text", "Image-1: "), ("image_url", url["original"][i]), ("text", "Image-2: "),
                         ("image_url", url["safe"][i]), ("text", prompts["intern_image_flagging-compare.txt"])]
    singles = [r for r in requests if len(r["messages"]) == 1]
    assert len(singles) == 10 + 5  # text of both images, races of the safe one
    for request in singles:
        image, text = request["messages"][0]["content"]
        assert image["type"] == "image_url" and text["text"] in (prompts["intern_text_extraction.txt"],
                                                                 prompts["intern_demographic_analysis.txt"])
    assert {r["max_tokens"] for r in singles} == {1024} and {r["max_tokens"] for r in requests if r not in singles} == {512}


# ----------------------------------------------------------------------------- faces

def test_face_similarity_pools_the_best_match_of_every_original_face():
    def faces(*vectors):
        return [Face((0, 0, 1, 1), 0.9, np.asarray(v, np.float32)) for v in vectors]

    class Cosine:
        def similarity(self, a, b):
            return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

        def same_identity(self, a, b):
            return self.similarity(a, b) >= 0.4

    rows = [face_leakage(faces([1, 0, 0], [0, 1, 0]), faces([3, 4, 0], [0, 1, 1]), Cosine()),  # best: 0.6 and 0.8
            face_leakage(faces([1, 0, 0]), faces([-2, 0, 0]), Cosine()),  # best: -1
            face_leakage(faces([0, 0, 1]), [], Cosine())]  # no counterpart: not in the paper's mean
    assert aggregate_faces(rows)["face_similarity_paper"] == pytest.approx((0.6 + 0.8 - 1.0) / 3)


def test_alignment_is_the_least_squares_similarity_onto_the_template():
    angle, scale, shift = math.radians(25), 1.7, np.array([40.0, -12.0])
    rotation = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    landmarks = (ARCFACE_TEMPLATE - shift) @ np.linalg.inv(rotation).T  # the template moved by the inverse similarity
    assert similarity_matrix(landmarks) == pytest.approx(np.hstack([rotation, shift[:, None]]), abs=1e-6)
    # With noise: the similarity [[a, -b, tx], [b, a, ty]] minimising the squared error, by linear least squares.
    noisy = landmarks + np.random.default_rng(1).normal(0, 2.0, landmarks.shape)
    rows = [[x, -y, 1, 0] for x, y in noisy] + [[y, x, 0, 1] for x, y in noisy]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), np.concatenate([ARCFACE_TEMPLATE[:, 0], ARCFACE_TEMPLATE[:, 1]]),
                                   rcond=None)[0]
    assert similarity_matrix(noisy) == pytest.approx(np.array([[a, -b, tx], [b, a, ty]]), abs=1e-6)


def test_detection_input_is_insightfaces_letterbox_and_blob():
    wide = np.full((100, 200, 3), 255, np.uint8)
    canvas, scale = letterbox(wide, 512)
    assert scale == 256 / 100 and canvas[:256].min() == 255 and canvas[256:].max() == 0
    pixel = np.array([[[255, 0, 10]]], np.uint8)
    assert scrfd_blob(pixel, reference_channels=True).reshape(-1) == pytest.approx(
        [(10 - 127.5) / 128, (0 - 127.5) / 128, (255 - 127.5) / 128])  # BGR reaches the network
    assert scrfd_blob(pixel, reference_channels=False).reshape(-1) == pytest.approx(
        [(255 - 127.5) / 128, (0 - 127.5) / 128, (10 - 127.5) / 128])


def test_suppression_counts_pixels_inclusively():
    boxes = np.array([[0, 0, 9, 9], [3, 0, 12, 9], [6, 0, 15, 9]], np.float64)
    # Inclusive areas 100; overlaps with the best box 70 (IoU 70/130 > 0.4) and 40 (IoU 40/160 <= 0.4).
    assert suppress(boxes, np.array([0.9, 0.8, 0.7]), 0.4) == [0, 2]
    assert suppress(boxes, np.array([0.7, 0.9, 0.8]), 0.4) == [1]


def test_recogniser_normalisation_is_read_from_the_graph(tmp_path):
    from onnx_faces import save_recogniser

    weights = np.eye(48, 4)
    save_recogniser(tmp_path / "plain.onnx", weights)
    save_recogniser(tmp_path / "normalising.onnx", weights, node_names=("Sub_0", "Mul_1", "fc"))
    assert recogniser_normalisation(str(tmp_path / "plain.onnx")) == (127.5, 127.5)
    assert recogniser_normalisation(str(tmp_path / "normalising.onnx")) == (0.0, 1.0)


def test_face_similarity_through_the_pack_at_512_with_the_authors_channels(tmp_path):
    pytest.importorskip("onnx")
    from onnx_faces import save_pack

    # The recogniser embeds [mean of the crop's first network channel, 1]: BGR makes it the blue channel.
    weights = np.zeros((3, 2))
    weights[0, 0] = 1.0
    pack = save_pack(tmp_path, weights=weights, bias=[0.0, 1.0], grid=1)
    original = np.full((300, 300, 3), (200, 100, 50), np.uint8)
    safe = np.full((300, 300, 3), (200, 100, 200), np.uint8)  # the same red, another blue
    paper = compute_privacy([safe], [original], protocol="paper", face_pack=pack, text=False, race=False,
                            judge=False, progress=False)

    def n(v):
        return (v - 127.5) / 127.5

    expected = (n(50) * n(200) + 1) / math.sqrt((n(50) ** 2 + 1) * (n(200) ** 2 + 1))
    assert paper["face_similarity_paper"] == pytest.approx(expected, abs=2e-4)  # onnxruntime pools in float32
    assert paper["models"]["faces"]["detection_size"] == 512
    rgb = compute_privacy([safe], [original], face_embedder="antelopev2", face_pack=pack, text=False, progress=False)
    assert rgb["face_similarity_paper"] == pytest.approx(1.0, abs=1e-5)  # the red channels agree


def test_a_detector_run_at_another_size_is_refused(tmp_path):
    pytest.importorskip("onnx")
    from onnx_faces import save_pack

    pack = save_pack(tmp_path, size=640)  # anchors for 640 pixels, the detector runs at 512
    with pytest.raises(ValueError, match="anchors"):
        compute_privacy([ORIGINALS[0]], [ORIGINALS[0]], protocol="paper", face_pack=pack, text=False, race=False,
                        judge=False, progress=False)
    shutil.rmtree(tmp_path)
