"""What makes a diffusers editor faster or reproducible: few-step adapters, fp8 weights, deterministic kernels."""

import logging
import os

from .errors import EditorModelError

logger = logging.getLogger(__name__)


def load_few_step_lora(pipe, lora: str, weight_name=None, revision=None, local_files_only=False) -> None:
    """Load a few-step LoRA (LCM-LoRA, Lightning, ...) from a hub id or local folder and fuse it into the weights.

    Fused and unloaded, the denoiser is a plain model again: no adapter overhead per step,
    and ``torch.compile`` / fp8 see ordinary linear layers.
    """
    try:
        import peft  # noqa: F401  (diffusers loads LoRAs through peft)
    except ImportError as e:
        raise EditorModelError("fast=True loads a LoRA through peft: pip install peft") from e
    try:
        pipe.load_lora_weights(lora, weight_name=weight_name, revision=revision, local_files_only=local_files_only, adapter_name="few_step")
    except (OSError, ValueError) as e:
        raise EditorModelError(
            f"Could not load the few-step LoRA {lora!r}{f' ({weight_name})' if weight_name else ''}: {e}\n"
            f"Get it with `hf download {lora}` on a machine that reaches the Hugging Face Hub, or pass fast_lora= a local "
            "folder holding the adapter (pytorch_lora_weights.safetensors, as diffusers' save_lora_weights writes it)."
        ) from e
    pipe.fuse_lora(lora_scale=1.0, adapter_names=["few_step"])
    pipe.unload_lora_weights()
    logger.info("Fused the few-step LoRA %s", lora)


def quantize_fp8(module, device: str) -> None:
    """fp8 weights and activations (torchao, per-row scales) for every linear layer of ``module``; Hopper/Ada GPUs only."""
    import torch

    if not device.startswith("cuda") or torch.cuda.get_device_capability(device) < (8, 9):
        raise ValueError(f"fp8=True needs a GPU with fp8 matrix units (compute capability 8.9+: Ada, Hopper); this run is on {device}")
    try:
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_
    except ImportError as e:
        raise ImportError("fp8=True quantizes with torchao: pip install torchao") from e
    quantize_(module, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()))


def deterministic_kernels(device: str) -> None:
    """Kernels that give the same bits for the same inputs and shapes, run after run.

    cuDNN's autotuner may pick another convolution algorithm in each process; cuBLAS needs a
    fixed workspace for reproducible results across streams. Process-wide settings: they
    stay for everything this process runs after.
    """
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts in this process
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)
    if device.startswith("cuda") and os.environ["CUBLAS_WORKSPACE_CONFIG"] not in (":4096:8", ":16:8"):
        logger.warning("CUBLAS_WORKSPACE_CONFIG=%s: cuBLAS results may vary between runs", os.environ["CUBLAS_WORKSPACE_CONFIG"])
