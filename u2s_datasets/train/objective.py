"""The InstructPix2Pix training objective, with the public caption as a second prompt.

As in diffusers' ``examples/instruct_pix2pix/train_instruct_pix2pix.py``: the target is
encoded and noised, the source latent (the distribution's mode) is concatenated to the
noisy latent along channels, and the UNet predicts the noise (or velocity). Conditioning
dropout teaches classifier-free guidance on both inputs: with probability ``p`` the text
alone is dropped, ``p`` the image alone, ``p`` both. With dual prompts the text is
``[instruction | public caption]`` and a dropped text is the empty prompt twice, as the
editor's unconditional input is at inference.

All randomness comes from one ``torch.Generator`` that the trainer checkpoints, so a
resumed run draws exactly what an uninterrupted one would.
"""

import torch
import torch.nn.functional as F


class NoiseGenerator:
    """A CPU generator with ``state_dict``/``load_state_dict``, for ``Accelerator.register_for_checkpointing``."""

    def __init__(self, seed: int):
        self.generator = torch.Generator("cpu").manual_seed(seed)

    def state_dict(self) -> dict:
        return {"state": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["state"])


class InstructPix2PixObjective:
    """Computes the training loss of one batch for a UNet taking ``[noisy latent | source latent]``."""

    def __init__(self, vae, text_encoder, noise_scheduler, dual_prompt: bool, conditioning_dropout: float = 0.05):
        self.vae = vae
        self.text_encoder = text_encoder
        self.noise_scheduler = noise_scheduler
        self.dual_prompt = dual_prompt
        self.dropout = conditioning_dropout
        self._null = None

    @torch.no_grad()
    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        return self.text_encoder(ids.to(self.text_encoder.device))[0]

    @torch.no_grad()
    def null_embedding(self, empty_ids: torch.Tensor) -> torch.Tensor:
        if self._null is None:
            self._null = self.encode_text(empty_ids)
        return self._null

    def loss(self, unet, batch: dict, generator: torch.Generator, empty_ids: torch.Tensor) -> torch.Tensor:
        vae = self.vae
        device, dtype = vae.device, vae.dtype
        bsz = batch["target"].shape[0]
        with torch.no_grad():
            latents = vae.encode(batch["target"].to(device, dtype)).latent_dist.sample(generator) * vae.config.scaling_factor
            source_latents = vae.encode(batch["source"].to(device, dtype)).latent_dist.mode()
            text = self.encode_text(batch["instruction_ids"])
            null = self.null_embedding(empty_ids)
            if self.dual_prompt:
                text = torch.cat([text, self.encode_text(batch["public_ids"])], dim=1)
                null = torch.cat([null, null], dim=1)

        noise = torch.randn(latents.shape, generator=generator).to(device, latents.dtype)
        steps = self.noise_scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, steps, (bsz,), generator=generator).to(device)
        noisy_latents = self.noise_scheduler.add_noise(latents, noise, timesteps)

        if self.dropout > 0:
            random_p = torch.rand(bsz, generator=generator).to(device)
            drop_text = (random_p < 2 * self.dropout).reshape(bsz, 1, 1)
            text = torch.where(drop_text, null.to(text.dtype).expand_as(text), text)
            keep_image = 1 - ((random_p >= self.dropout) & (random_p < 3 * self.dropout)).to(source_latents.dtype)
            source_latents = keep_image.reshape(bsz, 1, 1, 1) * source_latents

        unet_input = torch.cat([noisy_latents, source_latents], dim=1)
        prediction_type = self.noise_scheduler.config.prediction_type
        if prediction_type == "epsilon":
            target = noise
        elif prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            raise ValueError(f"unknown prediction type {prediction_type!r} of the base model's scheduler")
        prediction = unet(unet_input, timesteps, text, return_dict=False)[0]
        return F.mse_loss(prediction.float(), target.float(), reduction="mean")
