"""antelopev2-shaped ONNX packs built in the test: a SCRFD-signature detector with fixed answers, tiny recognisers."""

import numpy as np
from onnx import TensorProto, helper, numpy_helper, save

from u2s_datasets.evaluation.antelope import ARCFACE_TEMPLATE


def save_scrfd(path, size: int = 512):
    """Reports one face at the centre of a ``size`` x ``size`` input, landmarks on ArcFace's template x 2.

    The outputs have the anchor count of ``size``: run at any other size, decoding refuses them.
    """
    nodes, outputs, cell = [], [], size // 32 // 2
    for kind, width in (("score", 1), ("bbox", 4), ("kps", 10)):
        for stride in (8, 16, 32):
            value = np.zeros(((size // stride) ** 2 * 2, width), np.float32)
            if stride == 32:
                anchor = (cell * (size // 32) + cell) * 2  # centre (size / 2, size / 2)
                value[anchor] = {"score": [0.9], "bbox": [4, 4, 4, 4], "kps": (ARCFACE_TEMPLATE.reshape(-1) - 56) / 16}[kind]
            name = f"{kind}_{stride}"
            nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name + "_v")))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    image = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, None, None])
    save(helper.make_model(helper.make_graph(nodes, "scrfd", [image], outputs),
                           opset_imports=[helper.make_opsetid("", 13)]), str(path))


def save_recogniser(path, weights: np.ndarray, bias=None, grid: int = 4, node_names=("pool", "flatten", "fc")):
    """Mean colour of a ``grid`` x ``grid`` split of the 112x112 crop (channel-major), times ``weights`` (+ ``bias``)."""
    kernel = 112 // grid
    nodes = [helper.make_node("AveragePool", ["data"], ["pooled"], kernel_shape=[kernel, kernel], strides=[kernel, kernel],
                              name=node_names[0]),
             helper.make_node("Flatten", ["pooled"], ["flat"], name=node_names[1]),
             helper.make_node("MatMul", ["flat", "w"], ["fc0"], name=node_names[2])]
    initialisers = [numpy_helper.from_array(weights.astype(np.float32), "w")]
    if bias is not None:
        nodes.append(helper.make_node("Add", ["fc0", "b"], ["fc1"], name="bias"))
        initialisers.append(numpy_helper.from_array(np.asarray(bias, np.float32), "b"))
    else:
        nodes[-1].output[0] = "fc1"
    graph = helper.make_graph(nodes, "arcface", [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 112, 112])],
                              [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, weights.shape[1]])], initialisers)
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def save_pack(folder, weights=None, bias=None, grid: int = 4, size: int = 512) -> str:
    save_scrfd(folder / "scrfd_10g_bnkps.onnx", size)
    if weights is None:
        weights = np.random.default_rng(0).standard_normal((3 * grid * grid, 512))
    save_recogniser(folder / "glintr100.onnx", weights, bias, grid)
    return str(folder)
