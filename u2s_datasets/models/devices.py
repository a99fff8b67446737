"""Where model-backed stages run: one device per process and rank."""

import logging
import sys
from typing import Optional

logger = logging.getLogger(__name__)


def resolve_device(device: Optional[str], rank: Optional[int]) -> str:
    """``device`` if set, else ``cuda:{rank % n}`` when CUDA is there, else ``cpu``."""
    import torch

    if device is not None and not device.startswith("cuda"):
        return device
    if not torch.cuda.is_available():
        if device is not None:
            raise RuntimeError(f"device={device!r} was asked for, but CUDA is not available in this process")
        return "cpu"
    if in_forked_worker():
        raise RuntimeError(
            "CUDA cannot start in a forked worker. Call multiprocess.set_start_method('spawn', force=True) "
            "(datasets starts its workers with the `multiprocess` package) before ds.map(..., num_proc=N), "
            "or run with num_proc=None."
        )
    if device is not None:
        return device
    return f"cuda:{(rank or 0) % torch.cuda.device_count()}"


def detector_device(device: Optional[str], rank: Optional[int]) -> str:
    """Where the offline detectors run: as ``resolve_device``, but the CPU (without importing torch)
    where no NVIDIA driver is loaded, and the CPU with a warning in a forked worker, where CUDA cannot start."""
    if device is None and not _nvidia_driver():
        return "cpu"
    if device is None and in_forked_worker():
        logger.warning("The detectors run on the CPU in this forked worker: CUDA cannot start after fork. "
                       "Use multiprocess.set_start_method('spawn', force=True) or anonymize() to run them on the GPU.")
        return "cpu"
    return resolve_device(device, rank)


def _nvidia_driver() -> bool:
    import ctypes

    try:
        ctypes.CDLL("libcuda.so.1")
        return True
    except OSError:
        return False


def resolve_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
            "fp32": torch.float32, "float32": torch.float32}[dtype]


def in_forked_worker() -> bool:
    """True in a worker process started by fork (stdlib ``multiprocessing`` or datasets' ``multiprocess``)."""
    for name in ("multiprocessing", "multiprocess"):
        module = sys.modules.get(name)
        if module is not None and module.current_process().name != "MainProcess" and module.get_start_method(allow_none=True) == "fork":
            return True
    return False
