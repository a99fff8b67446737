"""PP-OCR as the ``rapidocr-onnxruntime`` wheel ships it, run where the detectors run.

rapidocr's own components do the pre- and post-processing. On the CPU they run their networks
in onnxruntime (the detector as an int8 copy with ``detector_precision="int8"``); on a GPU their
networks are the torch modules of ``onnx_torch``, and views of one shape share a detection run.
"""

import functools
import logging
import os

import cv2
import numpy as np

from .networks import OnnxNetwork, stacked

GPU_READ_BATCH = 32  # crops per recognition run on a GPU (rapidocr pads them to the widest)


def model_path(part: str) -> str:
    """The ONNX file of ``part`` ("Det", "Cls" or "Rec") in the installed rapidocr wheel."""
    from rapidocr_onnxruntime.main import DEFAULT_CFG_PATH
    from rapidocr_onnxruntime.utils import read_yaml

    return os.path.join(os.path.dirname(DEFAULT_CFG_PATH), read_yaml(DEFAULT_CFG_PATH)[part]["model_path"])


@functools.lru_cache(maxsize=1)
def detector_int8_path() -> str:
    from .quantized import int8_model, sample_views

    with open(model_path("Det"), "rb") as f:
        model = f.read()
    def feed(rgb):
        # Sized to multiples of 32 as rapidocr sizes what it hands the detector.
        height, width = (max(32, round(s / 32) * 32) for s in rgb.shape[:2])
        return {"x": normalized([cv2.resize(np.ascontiguousarray(rgb[:, :, ::-1]), (width, height))])}

    # Percentile ranges: min-max ranges lose faint lines (one of the page sample's seven).
    return int8_model(model, "ppocr-det", functools.partial(sample_views, square=512), feed, percentile=99.99)


def normalized(bgr_views: list) -> np.ndarray:
    """BGR views (sides already multiples of 32) as PP-OCR's detector input, as rapidocr normalizes them."""
    batch = np.stack(bgr_views).astype(np.float32) * (1 / 255.0)
    return ((batch - 0.5) / 0.5).transpose(0, 3, 1, 2)


def ppocr_engine(box_threshold: float, threads: int = 0, device: str = "cpu", precision: str = "fp32", backend: str = None):
    """rapidocr's engine with PP-OCR's three networks on ``device``."""
    from rapidocr_onnxruntime import RapidOCR

    on_cpu = device == "cpu" and backend in (None, "onnxruntime")
    if precision == "int8" and not on_cpu:
        raise ValueError("the int8 PP-OCR detector runs in onnxruntime on the CPU; use precision 'fp32' or 'auto' on a GPU")
    options = dict(intra_op_num_threads=threads, inter_op_num_threads=1) if threads else {}
    if on_cpu and precision == "int8":  # "auto" keeps the float detector: int8 finds fewer faint lines
        options["det_model_path"] = detector_int8_path()
    # A low box threshold finds faint lines (uneven light on a page); recognition filters.
    # Lines are read one at a time on the CPU (batches of mixed widths cost more than they save).
    engine = RapidOCR(det_limit_type="max", det_box_thresh=box_threshold, rec_batch_num=1 if on_cpu else GPU_READ_BATCH, **options)
    logging.getLogger("RapidOCR").setLevel(logging.WARNING)  # RapidOCR attaches a chatty console handler of its own
    if not on_cpu:
        # rapidocr's components call these with a batch and take a list of outputs, as OnnxNetwork gives.
        with open(model_path("Det"), "rb") as f:
            engine.text_det.infer = OnnxNetwork(f.read(), device, backend="torch")
        with open(model_path("Cls"), "rb") as f:
            engine.text_cls.infer = OnnxNetwork(f.read(), device, backend="torch")
        with open(model_path("Rec"), "rb") as f:
            engine.text_rec.session = OnnxNetwork(f.read(), device, backend="torch")
    return engine


def find_quads(engine, bgr_views: list, budget: int) -> list:
    """The text quads (4x2 float32, pixels of each view) rapidocr's detector finds in each BGR view,
    as its own ``text_det`` finds them; views that it sizes alike share a run of at most ``budget`` pixels."""
    detector = engine.text_det
    resized = [detector.get_preprocess(max(v.shape[:2])).resize(v) for v in bgr_views]
    found = [[] for _ in bgr_views]
    todo = [i for i, r in enumerate(resized) if r is not None]
    for _, members in stacked([resized[i].shape[:2] for i in todo], budget, 1):
        members = [todo[m] for m in members]
        maps = detector.infer(normalized([resized[i] for i in members]))[0]
        for k, i in enumerate(members):
            shape = bgr_views[i].shape[:2]
            boxes, _ = detector.postprocess_op(maps[k:k + 1], shape)
            found[i] = [np.asarray(q, dtype=np.float32) for q in detector.filter_tag_det_res(boxes, shape)]
    return found
