"""Instruction editors built on flow-matching transformers: FLUX.1 Kontext and Qwen-Image-Edit.

Both take the edit instruction as prompt and work on a 16-pixel grid (8x VAE, 2x2 patches).
"""

import math

from .diffusion import DiffusionEditor


class FluxKontextEditor(DiffusionEditor):
    pipeline_class = "FluxKontextPipeline"
    default_model = "black-forest-labs/FLUX.1-Kontext-dev"
    denoiser = "transformer"
    grid = 16
    default_resolution = 1024
    default_steps = 28
    default_guidance = 2.5  # distilled guidance, not classifier-free

    def _run(self, requests, images, generators, size):
        return self.pipe(
            image=images,
            prompt=[r.instruction.instruction for r in requests],
            height=size[1],
            width=size[0],
            num_inference_steps=self.steps,
            guidance_scale=self.guidance,
            generator=generators,
            output_type="np",
            max_area=size[0] * size[1],  # the pipeline rescales its output to this area
            _auto_resize=False,  # the image is already on the grid at the size we want back
        ).images


class QwenImageEditEditor(DiffusionEditor):
    pipeline_class = "QwenImageEditPipeline"
    default_model = "Qwen/Qwen-Image-Edit"
    denoiser = "transformer"
    grid = 16
    default_resolution = 1024
    default_steps = 50
    default_guidance = 4.0  # true classifier-free guidance against an empty prompt
    max_batch = 1  # the vision-language prompt encoder takes one image per prompt
    # Lightning: a 4-step distilled LoRA with its own flow schedule; guidance is distilled in (docs/stage2.md, "Speed")
    fast_lora = "lightx2v/Qwen-Image-Lightning"
    fast_lora_weight_name = "Qwen-Image-Edit-Lightning-4steps-V1.0.safetensors"
    fast_scheduler = "FlowMatchEulerDiscreteScheduler"
    fast_scheduler_config = dict(base_image_seq_len=256, base_shift=math.log(3), max_image_seq_len=8192, max_shift=math.log(3),
                                 shift=1.0, shift_terminal=None, time_shift_type="exponential", use_dynamic_shifting=True)

    def _default_guidance(self) -> float:
        return 1.0 if self.settings.fast else self.default_guidance  # true_cfg_scale 1: one pass, no negative prompt

    def _run(self, requests, images, generators, size):
        return self.pipe(
            image=images[0],
            prompt=[requests[0].instruction.instruction],
            negative_prompt=[" "],
            true_cfg_scale=self.guidance,
            height=size[1],
            width=size[0],
            num_inference_steps=self.steps,
            generator=generators,
            output_type="np",
        ).images
