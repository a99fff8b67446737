"""int8 copies of the shipped detector networks, made once and kept on disk.

onnxruntime's static quantization (QDQ, weights per channel), calibrated on views of the
sample photos like the ones the searches hand the networks (scaled down, scaled up, turned
onto a black canvas). On CPUs with VNNI an int8 CenterFace run takes under half the time of a
float one; what that does to recall was measured with ``benchmarks/bench_recall.py``
(docs/detection.md). The copy is kept under ``$U2S_CACHE`` (default: ``$HF_HOME/u2s_datasets``).
"""

import hashlib
import logging
import os
import tempfile

import numpy as np

logger = logging.getLogger(__name__)
CALIBRATION_VERSION = "1"  # bump when the calibration views change


def cache_dir() -> str:
    from huggingface_hub import constants

    return os.environ.get("U2S_CACHE") or os.path.join(constants.HF_HOME, "u2s_datasets")


def int8_model(model: bytes, name: str, calibration_views, to_feed, percentile: float = None) -> str:
    """The path of ``model`` quantized to int8, made on first use.

    Args:
        model: the float ONNX model.
        name: a file name prefix for the cache.
        calibration_views: callable giving the RGB arrays to calibrate on.
        to_feed: ``to_feed(rgb)`` -> the network's input dict for one view.
        percentile: activation ranges cover this percentile of the values seen (the views must
            then share one shape); None: their whole range (min-max).
    """
    import onnxruntime

    recipe = f"{CALIBRATION_VERSION}-{percentile}".encode()
    key = hashlib.sha256(model + onnxruntime.__version__.encode() + recipe).hexdigest()[:16]
    path = os.path.join(cache_dir(), f"{name}-int8-{key}.onnx")
    if os.path.exists(path):
        return path
    logger.info("Quantizing %s to int8 once (kept in %s)", name, path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(path)) as work:
        source = os.path.join(work, "float.onnx")
        with open(source, "wb") as f:
            f.write(_opset_13(model))
        target = os.path.join(work, "int8.onnx")
        _quantize(source, target, [to_feed(view) for view in calibration_views()], percentile)
        os.replace(target, path)  # atomic: processes that race here write the same bytes
    return path


def _opset_13(model: bytes) -> bytes:
    """Per-channel QDQ needs opset 13; older exports are converted first."""
    import onnx
    from onnx import version_converter

    proto = onnx.load_from_string(model)
    if max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) < 13:
        proto = version_converter.convert_version(proto, 13)
    return proto.SerializeToString()


def _quantize(source: str, target: str, feeds: list, percentile: float = None):
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Views(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter(feeds)

        def get_next(self):
            return next(self.feeds, None)

    prepared = source + ".pre.onnx"
    quant_pre_process(source, prepared, skip_symbolic_shape=True)
    calibration = {} if percentile is None else dict(calibrate_method=CalibrationMethod.Percentile,
                                                     extra_options={"CalibPercentile": percentile})
    quantize_static(prepared, target, Views(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, **calibration)


def sample_views(max_side: int = 640, square: int = 0) -> list:
    """RGB views of every sample photo as the searches make them: scaled to ``max_side``, a 1.5x
    crop of that, and the scaled view turned by 45 degrees onto a black canvas."""
    import cv2

    from ..samples import sample_images
    from .pyramid import rotation

    views = []
    for image in sample_images().values():
        rgb = np.asarray(image.convert("RGB"))
        scale = min(1.0, max_side / max(rgb.shape[:2]))
        view = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        views.append(view)
        views.append(cv2.resize(view, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_LINEAR)[:512, :512])
        matrix, size = rotation(view.shape, 45)
        views.append(cv2.warpAffine(view, matrix, size, flags=cv2.INTER_LINEAR, borderValue=0))
    if square:  # one shape for all: the top left of each view on a black square
        views = [np.pad(v[:square, :square], ((0, max(0, square - v.shape[0])), (0, max(0, square - v.shape[1])), (0, 0)))
                 for v in views]
    return views
