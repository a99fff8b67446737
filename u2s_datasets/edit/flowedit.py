"""``flowedit``: SD3 FlowEdit from the private caption to the public one (training-free, inversion-free).

The paper made its editor's training targets this way: Stable Diffusion 3 medium, 50 steps,
source/target guidance 3.5 / 13.5, n_max 33, n_min 0, n_avg 1, the empty negative prompt,
images at their own size up to 1536 pixels. Those are the defaults here; any SD3 checkpoint
(hub id or folder with a ``StableDiffusion3Pipeline``) works in its place.
"""

from .diffusion import DiffusionEditor
from .flowedit_sampler import encode_prompts, flowedit


def source_prompt(request) -> str:
    """What the photo shows now: the private caption."""
    return (request.inspection.private_caption or "").strip()


def target_prompt(request) -> str:
    """What the photo should show: see ``target_text``."""
    instruction = request.instruction
    return target_text(request.inspection.public_caption, instruction.instruction if instruction else "",
                       instruction.target_caption if instruction else "")


def target_text(public_caption: str, instruction: str, target_caption: str = "") -> str:
    """The instructor's caption of the edited scene (the public caption with the edit worked in, as the paper's
    prompts combine them), else the public caption followed by the instruction."""
    public, combined = (public_caption or "").strip(), (target_caption or "").strip()
    if combined and combined != public:
        return combined
    return " ".join(part for part in (public, (instruction or "").strip()) if part)


class FlowEditEditor(DiffusionEditor):
    """FlowEdit on a ``StableDiffusion3Pipeline``: ``guidance_scale`` is the target's, ``source_guidance_scale``
    the source's; ``flowedit_n_max`` / ``flowedit_n_min`` / ``flowedit_n_avg`` as in the paper's sampler.

    Images keep their size, rounded down to the pipeline's grid and scaled down only when the
    longer side passes ``edit_resolution`` (default 1536), never up.
    """

    pipeline_class = "StableDiffusion3Pipeline"
    default_model = "stabilityai/stable-diffusion-3-medium-diffusers"
    denoiser = "transformer"
    grid = 16  # replaced by the loaded pipeline's VAE factor x patch size
    default_resolution = 1536
    default_steps = 50
    default_guidance = 13.5
    default_source_guidance = 3.5

    def _prepare(self, pipe):
        self.grid = pipe.vae_scale_factor * pipe.transformer.config.patch_size
        settings = self.settings
        self.source_guidance = settings.source_guidance_scale if settings.source_guidance_scale is not None else self.default_source_guidance
        self.n_max = settings.flowedit_n_max
        self.n_min = settings.flowedit_n_min
        self.n_avg = settings.flowedit_n_avg
        if self.n_min > self.n_max:
            raise ValueError(f"flowedit_n_min={self.n_min} is more than flowedit_n_max={self.n_max}")

    def _work_size(self, size) -> tuple:
        width, height = size
        scale = min(1.0, self.resolution / max(width, height))
        return (max(self.grid, int(width * scale) // self.grid * self.grid), max(self.grid, int(height * scale) // self.grid * self.grid))

    def _run(self, requests, images, generators, size):
        pipe = self.pipe
        latents = encode_images(pipe, images, size)
        source = encode_prompts(pipe, [source_prompt(r) for r in requests])
        target = encode_prompts(pipe, [target_prompt(r) for r in requests])
        edited = flowedit(pipe, latents, source, target, generators, steps=self.steps, source_guidance=self.source_guidance,
                          target_guidance=self.guidance, n_max=self.n_max, n_min=self.n_min, n_avg=self.n_avg)
        return decode_latents(pipe, edited)


def encode_images(pipe, images: list, size):
    """Normalised SD3 latents of ``images`` (PIL, all of ``size``): the mode of the VAE posterior, shifted and scaled."""
    vae = pipe.vae
    pixels = pipe.image_processor.preprocess(images, height=size[1], width=size[0])
    latents = vae.encode(pixels.to(pipe._execution_device, vae.dtype)).latent_dist.mode()
    return (latents.float() - (vae.config.shift_factor or 0.0)) * vae.config.scaling_factor


def decode_latents(pipe, latents):
    """Images (float NxHxWx3 in [0, 1]) of normalised SD3 latents."""
    vae = pipe.vae
    latents = latents / vae.config.scaling_factor + (vae.config.shift_factor or 0.0)
    return pipe.image_processor.postprocess(vae.decode(latents.to(vae.dtype), return_dict=False)[0], output_type="np")
