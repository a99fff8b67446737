"""Random-weight few-step LoRAs shaped like LCM-LoRA, for tests and benchmarks (nothing downloads)."""

import torch

# The layers LCM-LoRA (latent-consistency/lcm-lora-sdv1-5) adapts, as its distillation script names them.
LCM_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2", "conv1", "conv2",
                    "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj"]


def save_random_lcm_lora(unet, folder: str, rank: int = 4, scale: float = 0.02, seed: int = 0) -> str:
    """Write an LCM-LoRA-shaped adapter for ``unet`` (left unchanged) to ``folder`` as diffusers saves LoRAs.

    Both LoRA matrices are random (peft starts ``B`` at zero, which would change nothing), so
    loading the adapter changes the UNet's output.
    """
    import copy

    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    adapted = copy.deepcopy(unet)
    adapted.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=LCM_LORA_TARGETS))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in adapted.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    state = get_peft_model_state_dict(adapted)
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=state, safe_serialization=True)
    return folder
