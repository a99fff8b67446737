"""``ip2p``: InstructPix2Pix-family editors (InstructPix2Pix, MagicBrush in diffusers format).

The edit instruction is the prompt. With dual prompts the public caption is a second
text input, fused into the UNet's cross-attention (see ``dual_prompt.py``).
"""

import logging

import torch

from .diffusion import DiffusionEditor
from .dual_prompt import find_dual_prompt, install_dual_prompt, load_dual_prompt, saved_dual_prompt_config

logger = logging.getLogger(__name__)


class InstructPix2PixEditor(DiffusionEditor):
    """Three-way guided InstructPix2Pix: ``guidance_scale`` (text) and ``image_guidance_scale`` (input image).

    ``dual_prompt``: None uses dual-prompt weights when the model folder (or hub repo) has
    ``dual_prompt/dual_prompt.safetensors``, in the mode they were saved in; False never
    fuses the public caption; True, ``"gated"`` or ``"paper"`` always do. Without shipped
    weights True and ``"gated"`` start with closed gates (plain InstructPix2Pix), and
    ``"paper"`` starts an untrained SafeAttention (the output changes). A mode that differs
    from the shipped weights' is an error.
    """

    pipeline_class = "StableDiffusionInstructPix2PixPipeline"
    default_model = "timbrooks/instruct-pix2pix"
    default_steps = 20
    default_guidance = 7.5
    # LCM-LoRA for Stable Diffusion 1.5, the base InstructPix2Pix was fine-tuned from (docs/stage2.md, "Speed")
    fast_lora = "latent-consistency/lcm-lora-sdv1-5"
    fast_scheduler = "LCMScheduler"

    def _default_guidance(self) -> float:
        # fast: text guidance equal to the image guidance is plain classifier-free guidance
        # against the empty prompt and no image, two UNet passes (within LCM-LoRA's range of 1-2).
        return self.settings.image_guidance_scale if self.settings.fast else self.default_guidance

    def _prepare(self, pipe):
        self.dual = False
        self.dual_mode = None
        wanted = self.settings.dual_prompt
        if wanted not in (None, False, True, "gated", "paper"):
            raise ValueError(f"dual_prompt={wanted!r} is not one of None, False, True, 'gated', 'paper'")
        if wanted is False:
            return
        weights = find_dual_prompt(self.model_id, self.settings.editor_revision, self.model_settings.local_files_only)
        if weights is not None:
            saved = saved_dual_prompt_config(weights)["mode"]
            if isinstance(wanted, str) and wanted != saved:
                raise ValueError(f"dual_prompt={wanted!r}, but {self.model_id} ships {saved!r} dual-prompt weights")
            load_dual_prompt(pipe, weights)
            self.dual, self.dual_mode = True, saved
        elif wanted:
            mode = "gated" if wanted is True else wanted
            if mode == "gated":
                logger.warning("%s ships no dual-prompt weights: the public-caption branch starts closed (plain InstructPix2Pix)", self.model_id)
            else:
                logger.warning("%s ships no dual-prompt weights: SafeAttention starts untrained", self.model_id)
            install_dual_prompt(pipe.unet, pipe.tokenizer.model_max_length, mode)
            self.dual, self.dual_mode = True, mode

    def _run(self, requests, images, generators, size):
        from .ip2p_sampler import sample_ip2p

        cond = self.encode_text([r.instruction.instruction for r in requests])
        uncond = self.encode_text([""] * len(requests))
        if self.dual:
            public = self.encode_text([r.inspection.public_caption or r.instruction.target_caption for r in requests])
            cond, uncond = torch.cat([cond, public], dim=1), torch.cat([uncond, uncond], dim=1)
        # The pipeline's own computation, with only the UNet passes the guidance needs (ip2p_sampler.py).
        return sample_ip2p(self.pipe, images, cond, uncond, generators, self.steps, self.guidance, self.settings.image_guidance_scale)

    def encode_text(self, texts: list) -> torch.Tensor:
        """CLIP token embeddings of ``texts`` as the pipeline itself computes them (padded to the model's length)."""
        pipe = self.pipe
        tokens = pipe.tokenizer(texts, padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True, return_tensors="pt")
        mask = tokens.attention_mask if getattr(pipe.text_encoder.config, "use_attention_mask", False) else None
        device = pipe._execution_device
        embeds = pipe.text_encoder(tokens.input_ids.to(device), attention_mask=None if mask is None else mask.to(device))[0]
        return embeds.to(dtype=pipe.text_encoder.dtype, device=device)
