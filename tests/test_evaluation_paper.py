"""The paper's evaluation protocol and the honest defaults: known answers on real photos and canned model answers."""

import io
import math

import numpy as np
import pytest
from PIL import Image, ImageEnhance
from photos import astronaut, grace_hopper

from u2s_datasets.evaluation.antelope import ARCFACE_TEMPLATE, align, decode_scrfd
from u2s_datasets.evaluation.flags import compute_flags
from u2s_datasets.evaluation.privacy import compute_privacy
from u2s_datasets.evaluation.vlm_protocol import parse_race_answer, race_entropy


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
    assert result["protocol"] == "u2s"


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
    pytest.importorskip("onnx")
    from onnx_faces import save_pack

    return save_pack(tmp_path_factory.mktemp("antelopev2"))


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


@pytest.mark.parametrize("answer, entropy", [  # this project's race figure (protocol="u2s", race=True)
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
    # A random model writes no ANONYMIZATION_SCORE line: counted as unparsed, never guessed.
    assert result["vlm_score"] is None and result["vlm_unparsed"] == 1
    assert result["models"]["judge"]["id"] == folder and "two images" in result["models"]["judge"]["rubric"]
