"""The base of the diffusers-backed editors: loading, device placement, grids, seeds, failures.

A subclass names its pipeline class and default model, and implements ``_run`` for one
group of same-size images. Everything else (where the model comes from, how images
are batched, how a row stays reproducible) is decided here, once.
"""

import logging
import math

import numpy as np
from PIL import Image

from ..models.devices import in_forked_worker, resolve_device, resolve_dtype
from .errors import EditorModelError, EditorRunError
from .speedups import deterministic_kernels, load_few_step_lora, quantize_fp8

logger = logging.getLogger(__name__)


class DiffusionEditor:
    """Edits ``EditRequest``s with a diffusers pipeline.

    Requests are grouped by the size they take on the editor's grid, run ``edit_batch_size``
    at a time, and each row draws its noise from its own generator seeded with
    ``EditRequest.seed``: a row's output does not depend on its batch, batch size or worker.
    """

    pipeline_class: str = ""  # a diffusers pipeline class name
    default_model: str = ""
    denoiser: str = "unet"  # the pipeline component that does the heavy work
    grid: int = 8  # image sides are multiples of this
    default_resolution: int = 512
    default_steps: int = 20
    default_guidance: float = 7.5
    max_batch: int = 0  # 0: no limit beyond edit_batch_size
    # fast=True: a few-step LoRA and the scheduler it was distilled for (docs/stage2.md, "Speed")
    fast_lora: str = ""  # hub id; "" means the editor has no few-step setting
    fast_lora_weight_name = None
    fast_scheduler: str = ""
    fast_scheduler_config: dict = {}
    fast_steps: int = 4

    def __init__(self, config, rank=None, **shared):
        import torch

        if in_forked_worker():
            # GNU OpenMP's thread pool does not survive fork: a parallel region in the child would
            # wait forever on threads of the parent. The workers are the parallelism here.
            torch.set_num_threads(1)
        self.settings = config.edit
        self.model_settings = config.model
        self.device = resolve_device(config.model.device, rank)
        self.dtype = resolve_dtype(config.model.dtype, self.device)
        self.model_id = self.settings.editor_model or self.default_model
        self.model_revision = self.settings.editor_revision
        self.resolution = self.settings.edit_resolution or self.default_resolution
        if self.settings.fast and not self.fast_lora:
            raise ValueError(f"fast=True: the {self.settings.editor!r} editor has no few-step setting (ip2p and qwen-image-edit have)")
        if self.settings.deterministic:
            deterministic_kernels(self.device)
        self.steps = self.settings.num_inference_steps or (self.fast_steps if self.settings.fast else self.default_steps)
        self.guidance = self.settings.guidance_scale if self.settings.guidance_scale is not None else self._default_guidance()
        self.pipe = self._load()
        self._prepare(self.pipe)
        if self.model_settings.fp8:
            quantize_fp8(getattr(self.pipe, self.denoiser), self.device)
        if self.model_settings.torch_compile:  # last: it compiles the model as quantized and prepared
            getattr(self.pipe, self.denoiser).compile(fullgraph=False)

    def _default_guidance(self) -> float:
        return self.default_guidance

    # -- loading
    def _load(self):
        import diffusers

        pipeline_cls = getattr(diffusers, self.pipeline_class, None)
        if pipeline_cls is None:
            raise EditorModelError(
                f"The installed diffusers {diffusers.__version__} has no {self.pipeline_class}; "
                f"upgrade diffusers to use editor {self.settings.editor!r}."
            )
        revision = self.model_revision
        logger.info("Loading %s from %s (revision %s) on %s as %s", self.pipeline_class, self.model_id, revision or "main", self.device, self.dtype)
        try:
            pipe = pipeline_cls.from_pretrained(
                self.model_id,
                revision=revision,
                dtype=self.dtype,
                use_safetensors=True,
                local_files_only=self.model_settings.local_files_only,
            )
        except (OSError, ValueError) as e:
            raise EditorModelError(
                f"Could not load the {self.settings.editor!r} editor model {self.model_id!r} (revision {revision or 'main'}): {e}\n"
                f"Get it with `hf download {self.model_id}` on a machine that reaches the Hugging Face Hub "
                "(the weights must be in safetensors), or pass editor_model= a local folder holding a diffusers "
                f"{self.pipeline_class} (model_index.json and its component folders)."
            ) from e
        pipe.set_progress_bar_config(disable=True)
        if self.settings.scheduler:
            scheduler_cls = getattr(diffusers, self.settings.scheduler, None)
            if scheduler_cls is None or not hasattr(scheduler_cls, "from_config"):
                raise ValueError(f"scheduler={self.settings.scheduler!r} is not a diffusers scheduler class")
            pipe.scheduler = scheduler_cls.from_config(pipe.scheduler.config)
        elif self.settings.fast:
            pipe.scheduler = getattr(diffusers, self.fast_scheduler).from_config(pipe.scheduler.config, **self.fast_scheduler_config)
        if self.settings.fast:
            own = self.settings.fast_lora is None
            load_few_step_lora(pipe, self.settings.fast_lora or self.fast_lora,
                               self.settings.fast_lora_weight_name or (self.fast_lora_weight_name if own else None),
                               local_files_only=self.model_settings.local_files_only)
        if self.settings.vae_tiling:
            pipe.vae.enable_tiling()
        if self.model_settings.cpu_offload and self.device != "cpu":
            pipe.enable_model_cpu_offload(device=self.device)
        else:
            pipe.to(self.device)
        return pipe

    def _prepare(self, pipe):
        """Hook for subclasses: changes to the loaded pipeline (attention processors, ...)."""

    # -- editing
    def edit(self, requests: list) -> list:
        import torch

        outputs = [None] * len(requests)
        groups = {}
        for index, request in enumerate(requests):
            groups.setdefault(self._work_size(request.image.size), []).append(index)
        step = min(n for n in (self.settings.edit_batch_size, self.max_batch or math.inf) if n)
        for size, indices in groups.items():
            for start in range(0, len(indices), int(step)):
                chunk = indices[start : start + int(step)]
                batch = [requests[i] for i in chunk]
                if self.settings.deterministic:
                    # Every call has the same shape, so every kernel (and its rounding) is the same
                    # whatever the batch a row lands in; the padding rows' outputs are dropped.
                    batch = batch + [batch[-1]] * (int(step) - len(batch))
                images = [r.image.convert("RGB").resize(size, Image.LANCZOS) for r in batch]
                # CPU generators: the same noise on every device, one stream per row.
                generators = [torch.Generator("cpu").manual_seed(int(r.seed)) for r in batch]
                arrays = self._run_guarded(batch, images, generators, size)[: len(chunk)]
                for i, array, request in zip(chunk, arrays, batch):
                    outputs[i] = _to_pil(array).resize(request.image.size, Image.LANCZOS)
        return outputs

    def _work_size(self, size) -> tuple:
        """The size an image of ``size`` is edited at: its longer side at the editor's resolution, on the grid."""
        return grid_size(size, self.resolution, self.grid)

    def _run_guarded(self, requests, images, generators, size) -> np.ndarray:
        import torch

        try:
            with torch.inference_mode():
                arrays = np.asarray(self._run(requests, images, generators, size), dtype=np.float32)
        except torch.OutOfMemoryError as e:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            raise EditorRunError(f"out of memory editing {len(requests)} image(s) at {size[0]}x{size[1]} on {self.device}") from e
        bad = [i for i, a in enumerate(arrays) if not np.isfinite(a).all()]
        if bad:
            raise EditorRunError(f"non-finite output for {len(bad)} of {len(requests)} image(s) at {size[0]}x{size[1]} (dtype {self.dtype})")
        if arrays.shape[:3] != (len(requests), size[1], size[0]):
            raise EditorRunError(f"the pipeline returned images of shape {arrays.shape}, expected {len(requests)}x{size[1]}x{size[0]}")
        return arrays

    def _run(self, requests, images, generators, size):
        """Edit one group: ``images`` are PIL RGB of ``size``; returns float arrays NxHxWx3 in [0, 1]."""
        raise NotImplementedError


def grid_size(size, resolution: int, grid: int) -> tuple:
    """``size`` scaled so its longer side is ``resolution``, each side rounded to a multiple of ``grid``."""
    width, height = size
    scale = resolution / max(width, height)
    return (max(grid, round(width * scale / grid) * grid), max(grid, round(height * scale / grid) * grid))


def _to_pil(array) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8), "RGB")
