"""``sd-inpaint``: Stable Diffusion inpainting of the private regions, prompted by the public caption."""

import numpy as np
from PIL import Image

from .diffusion import DiffusionEditor
from .masks import region_mask


class StableDiffusionInpaintEditor(DiffusionEditor):
    """Regenerates everything under the region mask from the public caption.

    The mask is the request's (the feathered region mask, taken wherever it is above
    zero), else one built from the inspection's regions; with no regions known the
    whole image is regenerated.
    """

    pipeline_class = "StableDiffusionInpaintPipeline"
    default_model = "stable-diffusion-v1-5/stable-diffusion-inpainting"
    default_steps = 25
    default_guidance = 7.5

    def _run(self, requests, images, generators, size):
        prompts = [r.inspection.public_caption or r.instruction.target_caption or r.instruction.instruction for r in requests]
        return self.pipe(
            prompt=prompts,
            image=images,
            mask_image=[self._mask(r, size) for r in requests],
            height=size[1],
            width=size[0],
            strength=1.0,
            num_inference_steps=self.steps,
            guidance_scale=self.guidance,
            generator=generators,
            output_type="np",
        ).images

    def _mask(self, request, size) -> Image.Image:
        mask = request.mask
        if mask is None:
            boxes = [r.box for r in request.inspection.regions]
            mask = region_mask(request.image.size, boxes, self.settings.region_margin, self.settings.feather)
        if mask is None:
            return Image.new("L", size, 255)
        hard = Image.fromarray(np.where(np.asarray(mask) > 0, 255, 0).astype(np.uint8), "L")
        # Any grid pixel the region touches stays inside the hole after resizing.
        resized = np.asarray(hard.resize(size, Image.BILINEAR))
        return Image.fromarray(np.where(resized > 0, 255, 0).astype(np.uint8), "L")
