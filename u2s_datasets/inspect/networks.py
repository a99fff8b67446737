"""One shipped ONNX network, run on batches: onnxruntime on the CPU, torch on a GPU."""

import functools

import numpy as np

# Pixels of input handed to one run: views of the same shape are stacked up to this many.
CPU_BATCH_PIXELS = 2_000_000
CUDA_BATCH_PIXELS = 48_000_000


class OnnxNetwork:
    """``network(batch)`` -> the outputs (NumPy arrays) for an NCHW float32 batch.

    Args:
        model: the ONNX model as bytes.
        device: ``"cpu"`` or a torch device such as ``"cuda:0"``.
        threads: onnxruntime's threads on the CPU (0: every core).
        int8_path: an int8 copy of ``model`` (``quantized.int8_model``) run on the CPU instead.
        backend: ``"onnxruntime"`` or ``"torch"``; default: onnxruntime on the CPU, torch elsewhere.
    """

    def __init__(self, model: bytes, device: str = "cpu", threads: int = 0, int8_path: str = None, backend: str = None):
        self.device, self.int8 = device, int8_path is not None
        self.backend = backend or ("onnxruntime" if device == "cpu" else "torch")
        self.batch_pixels = CPU_BATCH_PIXELS if device == "cpu" else CUDA_BATCH_PIXELS
        # On the CPU only views that pad to the same multiple of 32 share a run (each sees exactly
        # what it would alone); a GPU pads more, to fill its batches.
        self.pad_multiple = 32 if device == "cpu" else 128
        if self.backend == "onnxruntime":
            import onnxruntime

            if device != "cpu":
                raise ValueError(f"the onnxruntime backend runs on the CPU, not {device!r}")
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.log_severity_level = 3
            # Idle threads sleep rather than spin: other rows' detectors and the verifier run beside this session.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self.session = onnxruntime.InferenceSession(int8_path or model, options, providers=["CPUExecutionProvider"])
            self.input_name = self.session.get_inputs()[0].name
            self.shrink = onnxruntime.RunOptions()
            self.shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        elif self.backend == "torch":
            if int8_path:
                raise ValueError("int8 networks run in onnxruntime on the CPU")
            self.module = _torch_module(model, device)
        else:
            raise ValueError(f"unknown backend {self.backend!r}: 'onnxruntime' or 'torch'")

    def __call__(self, batch: np.ndarray, release: bool = False) -> list:
        """``release``: give back the memory this run took at once (a large photo's whole view)."""
        if self.backend == "onnxruntime":
            return self.session.run(None, {self.input_name: batch}, self.shrink if release else None)
        import torch

        with torch.inference_mode():
            outputs = self.module(torch.from_numpy(batch).to(self.device, non_blocking=True))
            return [o.float().cpu().numpy() for o in outputs]

    def release_memory(self, probe_shape=(1, 3, 32, 32)):
        """Give back what onnxruntime keeps for the largest runs seen (hundreds of MB after a large photo)."""
        if self.backend == "onnxruntime":
            self(np.zeros(probe_shape, dtype=np.float32), release=True)
        else:
            import torch

            if self.device.startswith("cuda"):
                torch.cuda.empty_cache()


@functools.lru_cache(maxsize=None)
def _torch_module(model: bytes, device: str):
    """One module per network and device, shared by every detector of the process (read-only)."""
    import onnx

    from .onnx_torch import OnnxModule

    return OnnxModule(onnx.load_from_string(model)).to(device).eval()


def stacked(shapes: list, budget: int, multiple: int):
    """((height, width), indices) runs: the (height, width) ``shapes`` rounded up to ``multiple``,
    those of one padded shape stacked, each run within ``budget`` pixels."""
    groups = {}
    for i, (height, width) in enumerate(shapes):
        groups.setdefault((-(-height // multiple) * multiple, -(-width // multiple) * multiple), []).append(i)
    for padded, members in groups.items():
        per_run = max(1, budget // (padded[0] * padded[1]))
        for start in range(0, len(members), per_run):
            yield padded, members[start:start + per_run]
