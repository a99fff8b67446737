"""The offline detectors' networks on every backend: torch (GPUs) and int8 find what onnxruntime's float finds."""

import glob
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from conftest import FACES, rgb

from u2s_datasets.inspect.centerface import as_batch, centerface_model
from u2s_datasets.inspect.detectors import CenterFaceDetector
from u2s_datasets.inspect.onnx_torch import OnnxModule
from u2s_datasets.inspect.quantized import int8_model, sample_views
from u2s_datasets.testing.recall_set import face_set

RECALL = dict(min_face=16, angles=(-45, 45), proposal_threshold=0.1, turned_min_face=24, turned_proposal_threshold=0.03, tile=768)


def shipped_networks() -> dict:
    import rapidocr_onnxruntime

    folder = os.path.join(os.path.dirname(rapidocr_onnxruntime.__file__), "models")
    networks = {"centerface": (centerface_model(), (2, 3, 320, 256))}
    shapes = {"det": (2, 3, 320, 256), "rec": (3, 3, 48, 320), "cls": (3, 3, 48, 192)}
    for path in sorted(glob.glob(os.path.join(folder, "*.onnx"))):
        kind = next(k for k in shapes if f"_{k}_" in os.path.basename(path))
        networks[os.path.basename(path)] = (open(path, "rb").read(), shapes[kind])
    return networks


def boxes(faces) -> list:
    return sorted(tuple(round(v, 1) for v in f.box) for f in faces)


@pytest.fixture(scope="module")
def recall_photos():
    photos = face_set(4, widths=(16, 20), angles=(-45, -30, -20, 0, 20, 30, 45), long_side=(512, 640), seed=0)
    return [np.asarray(p.image) for p in photos]


@pytest.mark.parametrize("name", list(shipped_networks()))
def test_each_shipped_network_runs_in_torch_as_in_onnxruntime(name):
    model, shape = shipped_networks()[name]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: x})
    module = OnnxModule(onnx.load_from_string(model)).eval()
    with torch.inference_mode():
        outputs = module(torch.from_numpy(x))
    assert [tuple(o.shape) for o in outputs] == [e.shape for e in expected]
    for output, reference in zip(outputs, expected):
        np.testing.assert_allclose(output.numpy(), reference, atol=1e-4, rtol=1e-4)


def test_an_unknown_operator_is_named():
    graph = onnx.helper.make_graph([onnx.helper.make_node("Einsum", ["x", "x"], ["y"], equation="ij,jk->ik")], "g",
                                   [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 2])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 2])])
    with pytest.raises(NotImplementedError, match="Einsum"):
        OnnxModule(onnx.helper.make_model(graph))


def test_the_torch_path_finds_the_faces_onnxruntime_finds(photo_bytes, recall_photos):
    reference = CenterFaceDetector(**RECALL)
    in_torch = CenterFaceDetector(**RECALL, backend="torch")
    images = [rgb(photo_bytes[name]) for name in FACES] + recall_photos
    expected = [reference(image) for image in images]
    assert sum(map(len, expected)) >= 3 + 10  # the sample faces and most pasted ones
    for image, faces in zip(images, expected):
        got = in_torch(image)
        np.testing.assert_allclose(np.array(boxes(got)), np.array(boxes(faces)), atol=0.5)


def test_rows_stacked_into_shared_runs_find_what_each_finds_alone(photo_bytes, recall_photos):
    detector = CenterFaceDetector(**RECALL)
    images = [rgb(photo_bytes["astronaut"])] + recall_photos[:3] + [recall_photos[0]]  # two of one shape
    alone = [boxes(detector(image)) for image in images]
    together = [boxes(faces) for faces in detector.detect(images)]
    assert together == alone
    assert alone[1] == alone[-1] and alone[1]


def test_int8_copy_is_made_once_and_finds_the_sample_faces(tmp_path, monkeypatch, photo_bytes):
    monkeypatch.setenv("U2S_CACHE", str(tmp_path))
    feed = lambda view: {"input.1": as_batch([view])}  # noqa: E731
    path = int8_model(centerface_model(), "centerface", sample_views, feed)
    assert os.path.dirname(path) == str(tmp_path) and os.path.getsize(path) < len(centerface_model()) / 2
    made = os.path.getmtime(path)
    assert int8_model(centerface_model(), "centerface", sample_views, feed) == path and os.path.getmtime(path) == made
    quantized = onnx.load(path)
    assert any(n.op_type == "QuantizeLinear" for n in quantized.graph.node)
    detector = CenterFaceDetector(precision="int8")
    for name in FACES:
        assert len(detector(rgb(photo_bytes[name]))) == 1, name


def test_precision_and_backend_are_checked():
    with pytest.raises(ValueError, match="precision"):
        CenterFaceDetector(precision="fp8")
    with pytest.raises(ValueError, match="int8"):
        CenterFaceDetector(precision="int8", backend="torch")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_the_detector_finds_what_the_cpu_finds(photo_bytes, recall_photos):
    reference = CenterFaceDetector(**RECALL)
    on_gpu = CenterFaceDetector(**RECALL, device="cuda:0")
    images = [rgb(photo_bytes[name]) for name in FACES] + recall_photos
    for image, faces in zip(images, on_gpu.detect(images)):
        assert len(faces) == len(reference(image))


def test_without_an_nvidia_driver_the_detectors_need_no_torch():
    from u2s_datasets.models.devices import _nvidia_driver

    if _nvidia_driver():
        pytest.skip("an NVIDIA driver is loaded here")
    script = ("import sys; from u2s_datasets.config import resolve_config; from u2s_datasets.inspect.local import DetectorInspector; "
              "DetectorInspector(resolve_config()); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.fixture(scope="module")
def text_photos(photo_bytes):
    from u2s_datasets.testing.recall_set import text_set

    return [rgb(photo_bytes["page"])] + [np.asarray(item.image.convert("RGB")) for item in text_set(3)]


TEXT = dict(min_side=736, orientations=True, tile=768)


def texts(lines) -> list:
    return [line.text for line in lines]


def test_the_torch_text_path_finds_the_lines_onnxruntime_finds(text_photos):
    from rapidfuzz import fuzz

    from u2s_datasets.inspect.detectors import TextDetector

    reference = TextDetector(**TEXT, threads=1)
    in_torch = TextDetector(**TEXT, backend="torch")
    expected = [reference(image) for image in text_photos]
    assert len(expected[0]) >= 6 and all(expected)  # the page's lines, and drawn strings on each photo
    for want, got in zip(expected, in_torch.detect(text_photos)):
        assert boxes(got) == boxes(want)
        # Off the CPU lines are read in padded batches: a space or a letter may differ.
        for a, b in zip(texts(got), texts(want)):
            assert fuzz.ratio(a.replace(" ", ""), b.replace(" ", "")) >= 80, (a, b)


def test_text_rows_read_together_give_what_each_gives_alone(text_photos):
    from u2s_datasets.inspect.detectors import TextDetector

    detector = TextDetector(**TEXT, threads=1)
    images = text_photos + [text_photos[1]]
    assert [texts(lines) for lines in detector.detect(images)] == [texts(detector(image)) for image in images]


def test_the_int8_text_detector_still_finds_the_page(tmp_path, monkeypatch, photo_bytes):
    from u2s_datasets.inspect import ppocr
    from u2s_datasets.inspect.detectors import TextDetector

    monkeypatch.setenv("U2S_CACHE", str(tmp_path))
    ppocr.detector_int8_path.cache_clear()
    try:
        detector = TextDetector(**TEXT, threads=1, precision="int8")
        assert os.listdir(tmp_path) and os.path.basename(ppocr.detector_int8_path()).startswith("ppocr-det-int8-")
        words = " ".join(texts(detector(rgb(photo_bytes["page"])))).lower()
    finally:
        ppocr.detector_int8_path.cache_clear()
    assert "segmentation" in words and "histogram" in words
