"""Random-weight diffusion pipelines built from configs, for tests and benchmarks.

``"tiny"`` runs in well under a second per step on a CPU; ``"sd15"`` has the real
Stable Diffusion 1.5 shapes (860M-parameter UNet, CLIP ViT-L text encoder), for timing.
Nothing here downloads: the tokenizer is a byte-level CLIP BPE built in-process.
"""

import torch

_SHAPES = {
    "tiny": dict(
        unet=dict(block_out_channels=(32, 64), layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                  up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32, attention_head_dim=8,
                  norm_num_groups=8, sample_size=8),
        vae=dict(block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_num_groups=8, sample_size=64),
        text=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, projection_dim=32),
    ),
    "sd15": dict(
        unet=dict(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=768, attention_head_dim=8, sample_size=64),
        vae=dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, sample_size=512),
        text=dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12, projection_dim=768),
    ),
}


def clip_tokenizer(model_max_length: int = 77):
    """A CLIP BPE tokenizer over the 256 byte symbols plus a few merges."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    symbols = sorted(ByteLevel.alphabet())
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": len(symbols) + i for i, s in enumerate(symbols)})
    merges = [(a, b + "</w>") for a in "aeiou" for b in "nrstle"]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)
    tokenizer.model_max_length = model_max_length
    return tokenizer


def random_sd_editing_pipeline(kind: str = "ip2p", shape: str = "tiny", seed: int = 0):
    """An InstructPix2Pix (``kind="ip2p"``, 8-channel UNet), inpainting (``"inpaint"``, 9-channel) or text-to-image
    (``"sd"``, 4-channel) pipeline, random weights."""
    from diffusers import (AutoencoderKL, EulerAncestralDiscreteScheduler, PNDMScheduler, StableDiffusionInpaintPipeline,
                           StableDiffusionInstructPix2PixPipeline, StableDiffusionPipeline, UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel

    sizes = _SHAPES[shape]
    torch.manual_seed(seed)
    tokenizer = clip_tokenizer()
    in_channels = {"ip2p": 8, "inpaint": 9, "sd": 4}[kind]
    unet = UNet2DConditionModel(in_channels=in_channels, out_channels=4, **sizes["unet"])
    depth = len(sizes["vae"]["block_out_channels"])
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, down_block_types=("DownEncoderBlock2D",) * depth,
                        up_block_types=("UpDecoderBlock2D",) * depth, **sizes["vae"])
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=max(len(tokenizer), 1000), bos_token_id=tokenizer.bos_token_id,
                                                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                                max_position_embeddings=77, **sizes["text"]))
    betas = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    if kind == "ip2p":
        return StableDiffusionInstructPix2PixPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                                      scheduler=EulerAncestralDiscreteScheduler(**betas), safety_checker=None,
                                                      feature_extractor=None, requires_safety_checker=False)
    pipeline = StableDiffusionInpaintPipeline if kind == "inpaint" else StableDiffusionPipeline
    return pipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                    scheduler=PNDMScheduler(skip_prk_steps=True, steps_offset=1, **betas), safety_checker=None,
                    feature_extractor=None, requires_safety_checker=False)


def t5_tokenizer():
    """A T5 (Unigram) tokenizer over lower-case letters and a few signs."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -1.0)] + [(c, -1.0) for c in "abcdefghijklmnopqrstuvwxyz,.;'-"]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def _flux_components(seed: int) -> dict:
    """A one-block FLUX.1 transformer (guidance-distilled, as FLUX.1-dev) and tiny encoders, random weights."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    torch.manual_seed(seed)
    tokenizer, tokenizer_2 = clip_tokenizer(), t5_tokenizer()
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=1000, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                                pad_token_id=tokenizer.pad_token_id, max_position_embeddings=77, **_SHAPES["tiny"]["text"]))
    text_encoder_2 = T5EncoderModel(T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, relative_attention_num_buckets=8))
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
                                         num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8],
                                         guidance_embeds=True)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, use_quant_conv=False, use_post_quant_conv=False,
                        shift_factor=0.0609, scaling_factor=1.5035, **_SHAPES["tiny"]["vae"])
    return dict(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer)


def random_flux_kontext_pipeline(seed: int = 0):
    """A FLUX.1 Kontext pipeline with a one-block transformer and tiny encoders, random weights."""
    from diffusers import FluxKontextPipeline

    return FluxKontextPipeline(**_flux_components(seed))


def random_flux_pipeline(seed: int = 0):
    """A FLUX.1 (text-to-image) pipeline of the same tiny shapes: the base of the OminiControl editor."""
    from diffusers import FluxPipeline

    return FluxPipeline(**_flux_components(seed))


def random_sd3_pipeline(seed: int = 0):
    """A Stable Diffusion 3 pipeline (one-layer transformer on 16 latent channels, tiny CLIPs and T5), random weights.

    The VAE downsamples 8x and the transformer takes 2x2 patches, so images work on a 16-pixel grid, as SD3's do.
    """
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    torch.manual_seed(seed)
    tokenizer, tokenizer_2, tokenizer_3 = clip_tokenizer(), clip_tokenizer(), t5_tokenizer()

    def clip_text():
        return CLIPTextModelWithProjection(CLIPTextConfig(vocab_size=1000, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                                          pad_token_id=tokenizer.pad_token_id, max_position_embeddings=77, **_SHAPES["tiny"]["text"]))

    text_encoder, text_encoder_2 = clip_text(), clip_text()
    # T5's width is the joint attention width, and that of the two CLIPs side by side (their tokens are padded to it).
    text_encoder_3 = T5EncoderModel(T5Config(vocab_size=64, d_model=64, d_kv=16, d_ff=37, num_layers=2, num_heads=4, relative_attention_num_buckets=8))
    transformer = SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=16, out_channels=16, num_layers=1, attention_head_dim=8,
                                        num_attention_heads=4, caption_projection_dim=32, joint_attention_dim=64, pooled_projection_dim=64)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16, down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, use_quant_conv=False, use_post_quant_conv=False,
                        shift_factor=0.0609, scaling_factor=1.5305, **_SHAPES["tiny"]["vae"])
    return StableDiffusion3Pipeline(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=vae,
                                    text_encoder=text_encoder, tokenizer=tokenizer, text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2,
                                    text_encoder_3=text_encoder_3, tokenizer_3=tokenizer_3)
