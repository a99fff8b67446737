"""The paper's evaluation protocol and the honest defaults: known answers on real photos and canned model answers."""

import io
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image, ImageEnhance
from photos import astronaut, grace_hopper, page

from u2s_datasets.evaluation.antelope import ARCFACE_TEMPLATE, align, decode_scrfd
from u2s_datasets.evaluation.flags import compute_flags
from u2s_datasets.evaluation.privacy import compute_privacy
from u2s_datasets.evaluation.vlm_protocol import parse_race_answer, parse_rubric_score, race_entropy


def _jpeg(rgb, quality):
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def test_default_face_similarity_has_a_usable_range():
    face = astronaut()
    brighter = np.asarray(ImageEnhance.Brightness(Image.fromarray(face)).enhance(1.2))
    blank = np.full_like(face, 128)
    safes = [face, _jpeg(face, 60), brighter, grace_hopper(), blank]
    result = compute_privacy(safes, [face] * 5, text=False, progress=False)
    same, jpeg, bright, other, vanished = result["per_image"]["face_similarity"]
    assert same > 0.99 and jpeg > 0.8 and bright > 0.8  # the same person under mild changes
    assert other < 0.4  # another person
    assert vanished == 0.0 and result["per_image"]["face_similarity_paper"][4] is None
    assert "dlib-calibrated" in result["models"]["faces"]["embedder"]["scale"]
    assert result["protocol"] == "project"


def test_scrfd_decoding_finds_the_anchor_that_fired():
    size, strides = (64, 64), (8, 16, 32)
    outputs = [np.zeros(((64 // s) ** 2 * 2, 1), np.float32) for s in strides]
    outputs += [np.zeros(((64 // s) ** 2 * 2, 4), np.float32) for s in strides]
    outputs += [np.zeros(((64 // s) ** 2 * 2, 10), np.float32) for s in strides]
    anchor = (1 * 4 + 2) * 2 + 1  # stride 16: row 1, column 2, second anchor -> centre (32, 16)
    outputs[1][anchor] = 0.9
    outputs[4][anchor] = [1, 0.5, 1, 0.5]  # in strides: 16 px left and right, 8 px up and down
    outputs[7][anchor] = [0, 0] * 5
    (face,) = decode_scrfd(outputs, size, threshold=0.5)
    assert face.box == (16.0, 8.0, 48.0, 24.0) and face.score == pytest.approx(0.9)
    assert np.allclose(face.landmarks, [[32, 16]] * 5)
    assert decode_scrfd(outputs, size, threshold=0.95) == []


def test_alignment_puts_the_landmarks_where_arcface_expects_them():
    rgb = np.zeros((224, 224, 3), np.uint8)
    landmarks = ARCFACE_TEMPLATE * 2 + 10  # the same face at twice the size, shifted
    for x, y in landmarks.astype(int):
        rgb[y - 1:y + 2, x - 1:x + 2] = 255
    crop = align(rgb, landmarks)
    assert crop.shape == (112, 112, 3)
    for x, y in ARCFACE_TEMPLATE.round().astype(int):
        assert crop[y, x].max() > 100


@pytest.fixture(scope="module")
def antelope_pack(tmp_path_factory):
    """An antelopev2-shaped pack: a SCRFD-signature detector that reports one face, a 512-D colour recogniser."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    folder = tmp_path_factory.mktemp("antelopev2")
    nodes, outputs = [], []
    for kind, width in (("score", 1), ("bbox", 4), ("kps", 10)):
        for stride in (8, 16, 32):
            value = np.zeros(((640 // stride) ** 2 * 2, width), np.float32)
            if stride == 32:
                anchor = (10 * 20 + 10) * 2  # centre (320, 320)
                value[anchor] = {"score": [0.9], "bbox": [4, 4, 4, 4], "kps": (ARCFACE_TEMPLATE.reshape(-1) - 56) / 16}[kind]
            name = f"{kind}_{stride}"
            nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name + "_v")))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    image = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, None, None])
    onnx.save(helper.make_model(helper.make_graph(nodes, "scrfd", [image], outputs),
                                opset_imports=[helper.make_opsetid("", 13)]), str(folder / "scrfd_10g_bnkps.onnx"))
    weights = np.random.default_rng(0).standard_normal((3 * 16, 512)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("AveragePool", ["data"], ["pooled"], kernel_shape=[28, 28], strides=[28, 28]),
         helper.make_node("Flatten", ["pooled"], ["flat"]),
         helper.make_node("MatMul", ["flat", "w"], ["fc1"])],
        "arcface", [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 512])], [numpy_helper.from_array(weights, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(folder / "glintr100.onnx"))
    return str(folder)


def test_paper_faces_run_the_antelope_pack_at_512(antelope_pack):
    face, other = astronaut(), grace_hopper()
    result = compute_privacy([face, other], [face, face], protocol="paper", face_pack=antelope_pack, text=False,
                             race=False, judge=False, progress=False)
    same, different = result["per_image"]["face_similarity_paper"]
    assert same == pytest.approx(1.0, abs=1e-5) and different < 0.99
    assert result["models"]["faces"]["scale"] == "ArcFace cosine similarity"
    assert "non-commercial" in result["models"]["faces"]["licence"] and result["protocol"] == "paper"


def test_paper_faces_need_the_pack():
    with pytest.raises(ValueError, match="face_pack"):
        compute_privacy([astronaut()], [astronaut()], protocol="paper", text=False, race=False, judge=False)


@pytest.mark.parametrize("answer, entropy", [
    ('{"person": true, "White": 20, "Black": 20, "Asian": 20, "Indian": 20, "Others": 20}', 1.0),
    ('```json\n{"person": true, "White": 100, "Black": 0, "Asian": 0, "Indian": 0, "Others": 0}\n```', 0.0),
    ('{"person": true, "White": "50%", "Black": "50%", "Asian": 0, "Indian": 0, "Others": 0}', math.log(2) / math.log(5)),
])
def test_race_entropy_on_canned_answers(answer, entropy):
    assert race_entropy(parse_race_answer(answer)["probabilities"]) == pytest.approx(entropy)


def test_race_answers_without_a_person_or_numbers():
    assert parse_race_answer('{"person": false}') == {"person": False, "probabilities": None}
    assert parse_race_answer("I cannot judge that.") is None
    assert parse_race_answer('{"person": true, "White": "some"}') is None


def test_rubric_score_is_read_from_the_last_score_line():
    assert parse_rubric_score("Step 1: a face (score of risk 90).\nStep 2: gone.\nScore: 85") == 85
    assert parse_rubric_score("Score: 120") is None and parse_rubric_score("fine") is None


class CannedVLM:
    """An OpenAI-compatible server answering the paper's OCR, race and rubric prompts from canned answers."""

    def __init__(self, answers):
        outer, self.prompts = self, []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._send({"data": []})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                parts = body["messages"][-1]["content"]
                text = " ".join(p["text"] for p in parts if p["type"] == "text")
                images = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
                outer.prompts.append((text, len(images)))
                answer = next(a for key, a in answers.items() if key in text)
                self._send({"choices": [{"message": {"role": "assistant", "content": answer(images)}}]})

            def _send(self, payload):
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_paper_vlm_figures_from_canned_answers():
    document, face = page(), astronaut()
    blank = np.full_like(document, 255)
    png = {}

    def ocr(images):  # the page reads as its title; a blank page reads as nothing
        return "NONE" if images[0] == png.get("blank") else "Region-based segmentation\nThis example"

    server = CannedVLM({
        "Read every piece of text": ocr,
        "probability (0-100)": lambda images: '{"person": true, "White": 40, "Black": 20, "Asian": 20, "Indian": 10, "Others": 10}',
        "Image-1 is an original photo": lambda images: "Step 1: a face. Step 2: still visible.\nScore: 30",
    })
    from u2s_datasets.models.openai_chat import image_data_url

    png["blank"] = image_data_url(Image.fromarray(blank), image_format="PNG")
    try:
        result = compute_privacy([document, blank, face], [document, document, face], protocol="paper", faces=False,
                                 vlm_backend="openai", openai_base_url=server.url, openai_model="judge", progress=False)
    finally:
        server.close()
    assert result["per_image"]["text_similarity"][:2] == [1.0, 0.0]
    assert result["images_with_text"] == 3  # every original had text to the canned reader
    expected = -sum(p * math.log(p) for p in (0.4, 0.2, 0.2, 0.1, 0.1)) / math.log(5)
    assert result["race_entropy"] == pytest.approx(expected) and result["race_images"] == 3
    assert result["vlm_score"] == 30 and result["vlm_unparsed"] == 0
    assert sum(1 for text, images in server.prompts if "Image-1" in text and images == 2) == 3  # two images per judgement


def test_flags_against_a_hand_labelled_set():
    predictions = [True, True, True, False, False, True]
    labels = [["a17_color", "a9_face_complete"], ["a0_safe"], True, ["a0_safe"], ["a64_rel_personal"], ["a0_safe", "a8_signature"]]
    result = compute_flags(predictions, labels)
    assert result["confusion_matrix"] == [[1, 1], [1, 3]]
    assert result["recall"] == pytest.approx(3 / 4) and result["precision"] == pytest.approx(3 / 4)
    assert result["accuracy"] == pytest.approx(4 / 6) and result["f1"] == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match=r"references\[0\]"):
        compute_flags([True], [{"a0_safe"}])


def test_flags_metric_loads_through_evaluate():
    import evaluate

    flags = evaluate.load("metrics/flags")
    result = flags.compute(predictions=[True, False, False], references=[["a9_face_complete"], ["a0_safe"], ["a12_semi_nudity"]])
    assert result["recall"] == 0.5 and result["confusion_matrix"] == [[1, 0], [1, 1]]
    assert flags.compute(predictions=[True, False], references=[True, True])["recall"] == 0.5


# torchvision's VGG16 ("D" configuration): (index in `features`, weight shape) of every convolution.
TORCHVISION_VGG16_CONVS = [
    (0, (64, 3, 3, 3)), (2, (64, 64, 3, 3)), (5, (128, 64, 3, 3)), (7, (128, 128, 3, 3)), (10, (256, 128, 3, 3)),
    (12, (256, 256, 3, 3)), (14, (256, 256, 3, 3)), (17, (512, 256, 3, 3)), (19, (512, 512, 3, 3)),
    (21, (512, 512, 3, 3)), (24, (512, 512, 3, 3)), (26, (512, 512, 3, 3)), (28, (512, 512, 3, 3)),
]


@pytest.fixture(scope="module")
def vgg_folder(tmp_path_factory):
    """Random VGG16 weights saved as timm's vgg16.tv_in1k stores them (features.* plus a head that is ignored)."""
    import torch
    from safetensors.torch import save_file

    from u2s_datasets.evaluation.lpips_vgg import vgg16_features

    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in vgg16_features().state_dict().items()}
    state["head.fc.weight"] = torch.zeros(2, 2)
    folder = tmp_path_factory.mktemp("vgg16")
    save_file(state, str(folder / "model.safetensors"))
    return str(folder)


def test_lpips_vgg_has_torchvisions_layers_and_the_wheels_heads(vgg_folder):
    import torch

    from u2s_datasets.evaluation.lpips_vgg import LPIPSVGG, lpips_heads_file

    model = LPIPSVGG.from_pretrained(vgg_folder)
    convs = [(i, tuple(m.weight.shape)) for i, m in enumerate(model.features) if isinstance(m, torch.nn.Conv2d)]
    assert convs == TORCHVISION_VGG16_CONVS and len(model.features) == 31
    heads = torch.load(lpips_heads_file(), map_location="cpu", weights_only=True)
    for i, head in enumerate(model.heads):
        assert torch.equal(head.weight, heads[f"lin{i}.model.1.weight"])
    assert [tuple(t.shape[1:]) for t in model.taps(torch.zeros(1, 3, 64, 64))] == [
        (64, 64, 64), (128, 32, 32), (256, 16, 16), (512, 8, 8), (512, 4, 4)]


def test_lpips_is_zero_for_identical_images_and_grows_with_change(vgg_folder):
    from u2s_datasets.evaluation.cheating import compute_cheating

    face = np.asarray(Image.fromarray(astronaut()).resize((96, 96)))
    noisy = np.clip(face.astype(int) + np.random.default_rng(0).integers(-40, 40, face.shape), 0, 255).astype(np.uint8)
    result = compute_cheating([face, noisy, np.zeros_like(face)], [face, face, face], clip=False, lpips_backbone=vgg_folder)
    same, light, heavy = result["per_image"]["lpips"]
    assert same == pytest.approx(0.0, abs=1e-6) and 0 < light < heavy
    assert result["lpips_status"] == "computed" and "VGG16" in result["models"]["lpips"]["id"]


def test_paper_judge_runs_two_images_through_native_internvl(tmp_path):
    from tiny_chat_models import save_tiny_internvl

    folder = save_tiny_internvl(tmp_path / "internvl")
    face = np.asarray(Image.fromarray(astronaut()).resize((64, 64)))
    result = compute_privacy([face], [face], protocol="paper", faces=False, text=False, race=False,
                             vlm_model=folder, local_files_only=True, progress=False, judge_max_new_tokens=16)
    # A random model writes no "Score:" line: counted as unparsed, never guessed.
    assert result["vlm_score"] is None and result["vlm_unparsed"] == 1
    assert result["models"]["judge"]["id"] == folder and "two images" in result["models"]["judge"]["rubric"]
