"""The InstructPix2Pix denoising loop, with as few UNet passes as the guidance needs.

InstructPix2Pix guidance combines three noise predictions of the same latents: with text
and image (``text``), with the image only (``image``), with neither (``uncond``):

    eps = uncond + g * (text - image) + g_i * (image - uncond)

diffusers always runs all three. Two of the terms cancel in common settings, exactly:

- ``g_i == 1``: ``eps = image + g * (text - image)``: the ``uncond`` pass is not needed;
- ``g == g_i``: ``eps = uncond + g * (text - uncond)``: the ``image`` pass is not needed;
- both 1: ``eps = text``: one pass.

Everything else (image latents, per-row noise, scheduler steps, decoding) is what
``StableDiffusionInstructPix2PixPipeline.__call__`` does, so with three passes the output is
that pipeline's, and with fewer it is equal up to float rounding.
"""

import inspect

import torch

TEXT, IMAGE, UNCOND = "text", "image", "uncond"


def guidance_passes(guidance: float, image_guidance: float) -> tuple:
    """The UNet passes that ``guidance`` / ``image_guidance`` need, in the order they are batched."""
    if guidance == 1 and image_guidance == 1:
        return (TEXT,)
    if image_guidance == 1:
        return (TEXT, IMAGE)
    if guidance == image_guidance:
        return (TEXT, UNCOND)
    return (TEXT, IMAGE, UNCOND)


def combine(predictions: dict, guidance: float, image_guidance: float) -> torch.Tensor:
    """The guided noise from the passes ``guidance_passes`` asked for (the same algebra, fewer terms)."""
    text = predictions[TEXT]
    if IMAGE in predictions and UNCOND in predictions:
        uncond, image = predictions[UNCOND], predictions[IMAGE]
        return uncond + guidance * (text - image) + image_guidance * (image - uncond)
    if IMAGE in predictions:
        return predictions[IMAGE] + guidance * (text - predictions[IMAGE])
    if UNCOND in predictions:
        return predictions[UNCOND] + guidance * (text - predictions[UNCOND])
    return text


@torch.inference_mode()
def sample_ip2p(pipe, images, cond, uncond, generators, steps: int, guidance: float, image_guidance: float, passes=None):
    """Edit ``images`` (PIL, one size) with ``pipe``'s components; returns float arrays NxHxWx3 in [0, 1].

    ``cond`` / ``uncond``: text embeddings (N x tokens x width) of the instructions and of the
    empty prompt. ``generators``: one per row; a row's noise comes from its own generator only.
    ``passes`` forces a set of passes (all three: the pipeline's own computation).
    """
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_instruct_pix2pix import retrieve_latents
    from diffusers.utils.torch_utils import randn_tensor

    passes = tuple(passes or guidance_passes(guidance, image_guidance))
    unet, vae, scheduler = pipe.unet, pipe.vae, pipe.scheduler
    device, dtype = pipe._execution_device, cond.dtype
    pixels = pipe.image_processor.preprocess(images).to(device=device, dtype=dtype)
    image_latents = retrieve_latents(vae.encode(pixels), sample_mode="argmax")  # unscaled, as InstructPix2Pix was trained
    scheduler.set_timesteps(steps, device=device)
    shape = (len(images), vae.config.latent_channels, *image_latents.shape[-2:])
    latents = randn_tensor(shape, generator=generators, device=device, dtype=dtype) * scheduler.init_noise_sigma

    embeds = {TEXT: cond, IMAGE: uncond, UNCOND: uncond}
    conditions = {TEXT: image_latents, IMAGE: image_latents, UNCOND: torch.zeros_like(image_latents)}
    encoder_states = torch.cat([embeds[p] for p in passes])
    image_condition = torch.cat([conditions[p] for p in passes])
    step_kwargs = {"generator": generators} if "generator" in inspect.signature(scheduler.step).parameters else {}
    for t in scheduler.timesteps:
        scaled = scheduler.scale_model_input(torch.cat([latents] * len(passes)), t)
        noise = unet(torch.cat([scaled, image_condition], dim=1), t, encoder_hidden_states=encoder_states, return_dict=False)[0]
        guided = combine(dict(zip(passes, noise.chunk(len(passes)))), guidance, image_guidance)
        latents = scheduler.step(guided, t, latents, **step_kwargs, return_dict=False)[0]
    decoded = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
    return pipe.image_processor.postprocess(decoded, output_type="np", do_denormalize=[True] * len(images))
