import http.server
import json
import threading

import numpy as np
import pytest

from photos import astronaut, blurred, grace_hopper, page, text_painted_over
from u2s_datasets.evaluation.faces import DlibFaceEmbedder, InsightFaceEmbedder
from u2s_datasets.evaluation.privacy import (compute_privacy, normalised_entropy, parse_label, parse_score,
                                             text_similarity)

CASES = ["identical face", "other person", "blur 8", "blur 24", "identical page", "page painted"]


@pytest.fixture(scope="module")
def leakage():
    face, other, document = astronaut(), grace_hopper(), page()
    safes = [face, other, blurred(face, 8), blurred(face, 24), document, text_painted_over(document)]
    originals = [face, face, face, face, document, document]
    return compute_privacy(safes, originals, progress=False)


def row(result, key, case):
    return result["per_image"][key][CASES.index(case)]


def test_identical_images_leak_everything(leakage):
    assert row(leakage, "face_similarity", "identical face") == pytest.approx(1.0, abs=1e-4)
    assert row(leakage, "reidentified", "identical face") == 1.0
    assert row(leakage, "text_similarity", "identical page") == pytest.approx(1.0)
    assert row(leakage, "text_token_recall", "identical page") == pytest.approx(1.0)


def test_another_person_is_not_reidentified(leakage):
    similarity = row(leakage, "face_similarity", "other person")
    assert similarity < DlibFaceEmbedder.cosine_threshold
    assert row(leakage, "reidentified", "other person") == 0.0
    assert row(leakage, "face_survival", "other person") == 1.0  # a face is there, just not the same one


def test_blurring_lowers_similarity_then_removes_the_face(leakage):
    assert row(leakage, "face_similarity", "blur 8") < row(leakage, "face_similarity", "identical face") - 0.05
    assert row(leakage, "face_survival", "blur 24") == 0.0
    assert row(leakage, "face_similarity", "blur 24") == 0.0  # honest variant: vanished counts as no match
    assert row(leakage, "face_similarity_paper", "blur 24") is None  # paper's variant skips it
    assert leakage["face_survival_rate"] == pytest.approx(3 / 4)
    # Skipping vanished faces can only flatter the result.
    assert leakage["face_similarity"] < leakage["face_similarity_paper"]


def test_painting_over_text_removes_the_text_leak(leakage):
    assert row(leakage, "text_similarity", "page painted") < 0.1
    assert leakage["images_with_text"] == 2
    assert row(leakage, "text_similarity", "identical face") == 0.0  # no text in the original: nothing leaks


def test_models_are_named(leakage):
    assert leakage["models"]["faces"]["embedder"]["id"].endswith("dlib_face_recognition_resnet_model_v1")
    assert leakage["models"]["faces"]["embedder"]["revision"] not in (None, "unknown")
    assert "0.6" in leakage["verification_threshold"]
    json.dumps(leakage, allow_nan=False)


def test_text_similarity_edge_cases():
    assert text_similarity("", "")["text_similarity"] == 0.0
    assert text_similarity("", "anything")["has_text"] is False
    assert text_similarity("Grace Hopper 1906", "")["text_similarity"] == 0.0
    partial = text_similarity("alpha beta gamma delta", "alpha")
    assert partial["text_token_recall"] == pytest.approx(0.25)


def test_normalised_entropy_uses_the_full_label_set():
    labels = ["a", "b", "c", "d"]
    assert normalised_entropy(["a", "b", "c", "d"], labels) == pytest.approx(1.0)
    assert normalised_entropy(["a", "a", "a"], labels) == pytest.approx(0.0)
    assert normalised_entropy(["a", "b"], labels) == pytest.approx(np.log(2) / np.log(4))
    assert normalised_entropy([None, None], labels) is None


def test_parsers():
    assert parse_score("Score: 85/100") == 85
    assert parse_score("I cannot tell") is None
    assert parse_score("150 then 40") == 40
    assert parse_label("They look like a young adult.", ["adult", "young adult", "child"]) == "young adult"
    assert parse_label("no idea", ["woman", "man"]) is None
    assert parse_label("A woman.", ["woman", "man"]) == "woman"


def test_bad_inputs_name_the_row():
    face = astronaut()
    with pytest.raises(ValueError, match="differ in length"):
        compute_privacy([face], [face, face])
    with pytest.raises(ValueError, match=r"predictions\[1\].*None"):
        compute_privacy([face, None], [face, face])
    with pytest.raises(TypeError, match=r"references\[0\].*int"):
        compute_privacy([face], [7])
    with pytest.raises(ValueError, match="vlm_model"):
        compute_privacy([face], [face], faces=False, text=False, judge=True)


def test_arcface_is_opt_in_and_states_its_licence():
    with pytest.raises((ImportError, FileNotFoundError), match="non-commercial|not found"):
        InsightFaceEmbedder(model_file="missing.onnx")


class _Endpoint(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible server: answers the judge with a score, the labeler with labels."""

    requests = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Endpoint.requests.append(body)
        question = body["messages"][0]["content"][1]["text"]
        answer = "72" if "Score from 0 to 100" in question else (
            "woman" if "gender" in question else "older adult" if "age" in question else "unclear")
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": answer}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_openai_compatible_judge_and_demographics():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        face, other = astronaut(), grace_hopper()
        result = compute_privacy([face, other], [face, face], faces=False, text=False, judge=True, demographics="vlm",
                                 vlm_backend="openai", openai_base_url=f"http://127.0.0.1:{server.server_port}/v1",
                                 openai_model="judge-model", progress=False)
    finally:
        server.shutdown()
    assert result["vlm_score"] == 72
    assert result["per_image"]["vlm_score"] == [72, 72]
    gender = result["demographics"]["apparent_gender"]
    assert gender["agreement_rate"] == 1.0 and gender["normalised_entropy"] == 0.0
    assert result["models"]["judge"] == {"backend": "openai", "id": "judge-model", "revision": None,
                                         "endpoint": f"http://127.0.0.1:{server.server_port}/v1"}
    image_part = _Endpoint.requests[-1]["messages"][0]["content"][0]
    assert image_part["image_url"]["url"].startswith("data:image/png;base64,")


def test_transformers_judge_runs_a_real_model(tmp_path):
    from tiny_models import tiny_llava

    folder = tiny_llava(str(tmp_path / "llava"))
    face = astronaut()
    result = compute_privacy([face], [face], faces=False, text=False, judge=True, vlm_model=folder, progress=False)
    # Random weights write no number: the row is counted as unparsed, never as a score.
    assert result["vlm_unparsed"] + sum(s is not None for s in result["per_image"]["vlm_score"]) == 1
    assert result["models"]["judge"]["id"] == folder
    if result["vlm_score"] is not None:
        assert 0 <= result["vlm_score"] <= 100


def test_clip_demographics_use_the_full_label_set(tmp_path):
    from tiny_models import tiny_clip

    from u2s_datasets.evaluation.privacy import DEMOGRAPHIC_ATTRIBUTES

    folder = tiny_clip(str(tmp_path / "clip"))
    face, other = astronaut(), grace_hopper()
    result = compute_privacy([face, other], [face, face], faces=False, text=False, demographics="clip",
                             clip_model=folder, progress=False)
    for attribute, labels in DEMOGRAPHIC_ATTRIBUTES.items():
        figures = result["demographics"][attribute]
        assert 0.0 <= figures["normalised_entropy"] <= 1.0
        assert figures["agreement_rate"] in (0.0, 0.5, 1.0)
        assert all(row[attribute] in labels for row in result["per_image"]["safe_demographics"])
    # Identical images get identical labels.
    assert result["per_image"]["safe_demographics"][0] == result["per_image"]["original_demographics"][0]
    assert result["models"]["demographics"] == {"labeler": "clip-zero-shot", "id": folder, "revision": None}
