"""The shipped detector networks (ONNX graphs) as torch modules, for GPUs.

The converters on PyPI (onnx2torch) require torchvision, which this project never installs;
the four networks the offline detectors use (CenterFace, PP-OCR detection, recognition and
angle classification) need only the few dozen plain operators below. The graph is run node
by node in eager torch, its weights held as buffers, so ``.to("cuda:0")`` moves it whole.
Float tensors live on the module's device; the small integer tensors of shape arithmetic
(Shape, Slice, Concat of sizes) stay on the CPU, so reshapes read them without a device sync.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

_DTYPES = {1: torch.float32, 6: torch.int32, 7: torch.int64, 9: torch.bool, 10: torch.float16, 11: torch.float64, 16: torch.bfloat16}


class OnnxModule(torch.nn.Module):
    """``OnnxModule(onnx.load(path))(x)`` -> the graph's outputs, in order, as torch tensors."""

    def __init__(self, model):
        import onnx
        from onnx import numpy_helper

        super().__init__()
        graph = model.graph
        self.opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        self._names = {}
        for i, tensor in enumerate(graph.initializer):
            self._add(tensor.name, numpy_helper.to_array(tensor), f"w{i}")
        self.nodes = []
        for node in graph.node:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type == "Constant":
                self._add(node.output[0], numpy_helper.to_array(attrs["value"]), f"c{len(self._names)}")
                continue
            if node.op_type not in _OPS:
                raise NotImplementedError(f"ONNX operator {node.op_type} (node {node.name!r}) is not supported")
            self.nodes.append((node.op_type, list(node.input), list(node.output), attrs))
        weights = {t.name for t in graph.initializer}
        self.inputs = [i.name for i in graph.input if i.name not in weights]
        self.outputs = [o.name for o in graph.output]

    def _add(self, name: str, array: np.ndarray, attribute: str):
        tensor = torch.from_numpy(np.array(array, copy=True))
        if tensor.is_floating_point():
            self.register_buffer(attribute, tensor, persistent=False)
            self._names[name] = attribute
        else:
            self._names[name] = tensor  # shape arithmetic: kept on the CPU

    def forward(self, *inputs):
        values = dict(zip(self.inputs, inputs))
        for name, held in self._names.items():
            values[name] = getattr(self, held) if isinstance(held, str) else held
        for op, names, outputs, attrs in self.nodes:
            args = [values[n] if n else None for n in names]
            result = _OPS[op](self, attrs, *args)
            for name, value in zip(outputs, result if isinstance(result, tuple) else (result,)):
                values[name] = value
        return tuple(values[name] for name in self.outputs)


def _pads(attrs, spatial: int):
    """ONNX pads (begin..., end...) as one symmetric padding, or an explicit F.pad list."""
    pads = list(attrs.get("pads", [0] * 2 * spatial))
    begin, end = pads[:spatial], pads[spatial:]
    if begin == end:
        return begin, None
    explicit = []
    for b, e in zip(reversed(begin), reversed(end)):
        explicit += [b, e]
    return [0] * spatial, explicit


def _conv(self, attrs, x, weight, bias=None):
    padding, explicit = _pads(attrs, weight.dim() - 2)
    if explicit:
        x = F.pad(x, explicit)
    return F.conv2d(x, weight, bias, attrs.get("strides", 1), padding, attrs.get("dilations", 1), attrs.get("group", 1))


def _conv_transpose(self, attrs, x, weight, bias=None):
    padding, explicit = _pads(attrs, weight.dim() - 2)
    if explicit:
        raise NotImplementedError("ConvTranspose with asymmetric pads")
    return F.conv_transpose2d(x, weight, bias, attrs.get("strides", 1), padding, attrs.get("output_padding", 0),
                              attrs.get("group", 1), attrs.get("dilations", 1))


def _batch_norm(self, attrs, x, scale, bias, mean, var):
    return F.batch_norm(x, mean, var, scale, bias, False, 0.0, attrs.get("epsilon", 1e-5))


def _clip(self, attrs, x, low=None, high=None):
    low = attrs.get("min") if low is None else low.item()
    high = attrs.get("max") if high is None else high.item()
    return torch.clamp(x, low, high)


def _pool(kind):
    def pool(self, attrs, x):
        padding, explicit = _pads(attrs, 2)
        if explicit:
            x = F.pad(x, explicit)
        kernel, stride, ceil = attrs["kernel_shape"], attrs.get("strides", 1), bool(attrs.get("ceil_mode", 0))
        if kind == "max":
            return F.max_pool2d(x, kernel, stride, padding, ceil_mode=ceil)
        return F.avg_pool2d(x, kernel, stride, padding, ceil_mode=ceil, count_include_pad=bool(attrs.get("count_include_pad", 0)))

    return pool


def _resize(self, attrs, x, roi=None, scales=None, sizes=None):
    mode = attrs.get("mode", b"nearest").decode()
    transform = attrs.get("coordinate_transformation_mode", b"half_pixel").decode()
    if mode == "nearest" and (transform != "asymmetric" or attrs.get("nearest_mode", b"round_prefer_floor") != b"floor"):
        raise NotImplementedError(f"Resize nearest with {transform} coordinates")
    if sizes is not None and sizes.numel():
        size = [int(s) for s in sizes.tolist()[2:]]
        arguments = dict(size=size)
    else:
        arguments = dict(scale_factor=[float(s) for s in scales.tolist()[2:]])
    if mode == "nearest":
        return F.interpolate(x, mode="nearest", **arguments)
    return F.interpolate(x, mode="bilinear", align_corners=transform == "align_corners", **arguments)


def _slice(self, attrs, x, starts, ends, axes=None, steps=None):
    starts, ends = starts.tolist(), ends.tolist()
    axes = list(range(len(starts))) if axes is None else axes.tolist()
    steps = [1] * len(starts) if steps is None else steps.tolist()
    index = [slice(None)] * x.dim()
    for start, end, axis, step in zip(starts, ends, axes, steps):
        if step != 1:
            raise NotImplementedError("Slice with steps other than 1")
        size = x.shape[axis]
        index[axis] = slice(max(-size, min(start, size)), max(-size - 1, min(end, size)))
    return x[tuple(index)]


def _reshape(self, attrs, x, shape):
    shape = [x.shape[i] if s == 0 and not attrs.get("allowzero", 0) else s for i, s in enumerate(shape.tolist())]
    return x.reshape(shape)


def _reduce_mean(self, attrs, x, axes=None):
    axes = attrs.get("axes") if axes is None else axes.tolist()
    return x.mean(dim=axes, keepdim=bool(attrs.get("keepdims", 1)))


def _squeeze(self, attrs, x, axes=None):
    axes = attrs.get("axes") if axes is None else axes.tolist()
    for axis in sorted((a % x.dim() for a in axes), reverse=True):
        x = x.squeeze(axis)
    return x


def _softmax(self, attrs, x):
    axis = attrs.get("axis", 1 if self.opset < 13 else -1) % x.dim()
    if self.opset >= 13 or axis == x.dim() - 1:
        return torch.softmax(x, dim=axis)
    # Before opset 13, Softmax works on the input flattened to 2-D at ``axis``.
    shape = x.shape
    return torch.softmax(x.reshape(math.prod(shape[:axis]), -1), dim=1).reshape(shape)


def _binary(function):
    def op(self, attrs, a, b):
        if a.device != b.device:  # an integer constant of the CPU meets a tensor of the device
            a, b = (a.to(b.device), b) if a.dim() == 0 or a.device.type == "cpu" else (a, b.to(a.device))
        return function(a, b)

    return op


def _concat(self, attrs, *xs):
    device = next((x.device for x in xs if x.device.type != "cpu"), xs[0].device)
    return torch.cat([x.to(device) for x in xs], dim=attrs.get("axis", 0))


_OPS = {
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "BatchNormalization": _batch_norm,
    "Relu": lambda self, attrs, x: F.relu(x),
    "Sigmoid": lambda self, attrs, x: torch.sigmoid(x),
    "HardSigmoid": lambda self, attrs, x: torch.clamp(attrs.get("alpha", 0.2) * x + attrs.get("beta", 0.5), 0, 1),
    "Clip": _clip,
    "Add": _binary(torch.add),
    "Sub": _binary(torch.sub),
    "Mul": _binary(torch.mul),
    "Div": _binary(lambda a, b: torch.div(a, b, rounding_mode="trunc") if not a.is_floating_point() else a / b),
    "Pow": _binary(torch.pow),
    "Sqrt": lambda self, attrs, x: torch.sqrt(x),
    "MatMul": _binary(torch.matmul),
    "GlobalAveragePool": lambda self, attrs, x: x.mean(dim=tuple(range(2, x.dim())), keepdim=True),
    "AveragePool": _pool("average"),
    "MaxPool": _pool("max"),
    "Resize": _resize,
    "Concat": _concat,
    "Shape": lambda self, attrs, x: torch.tensor(x.shape, dtype=torch.int64),
    "Cast": lambda self, attrs, x: x.to(_DTYPES[attrs["to"]]),
    "Slice": _slice,
    "Reshape": _reshape,
    "Transpose": lambda self, attrs, x: x.permute(attrs["perm"]),
    "ReduceMean": _reduce_mean,
    "Squeeze": _squeeze,
    "Softmax": _softmax,
    "Identity": lambda self, attrs, x: x,
}
