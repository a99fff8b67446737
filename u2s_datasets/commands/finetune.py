"""``u2s finetune``: fine-tune an InstructPix2Pix editor on Unsafe2Safe pairs (docs/training.md)."""

from ..train.finetune import FinetuneConfig, finetune
from ..train.pairs import DEFAULT_CLIP_MODEL


DEFAULTS = FinetuneConfig(base_model="")


def register(subparsers):
    defaults = DEFAULTS
    p = subparsers.add_parser("finetune", help="fine-tune an InstructPix2Pix editor on pairs (run under `accelerate launch` for many GPUs)")
    p.add_argument("pairs", help="a folder from `u2s pairs`, or one from `u2s anonymize` (pairs are built on the fly)")
    p.add_argument("output_dir", help="the fine-tuned diffusers pipeline goes here, with checkpoints, log and model card")
    p.add_argument("--base-model", required=True, help="the editor to start from (hub id or folder): an InstructPix2Pix pipeline "
                   "such as MagicBrush, or with --editor flux-kontext a FLUX.1 Kontext pipeline")
    p.add_argument("--editor", choices=("ip2p", "flux-kontext"), default="ip2p",
                   help="ip2p (default; dual prompts, full or LoRA) or flux-kontext (LoRA, rank 16 unless --lora)")
    p.add_argument("--base-revision")
    p.add_argument("--dual-prompt", choices=("paper", "gated", "none"), default=defaults.dual_prompt)
    p.add_argument("--lora", type=int, metavar="RANK", help="train LoRA adapters of this rank instead of the whole UNet")
    p.add_argument("--max-sequence-length", type=int, default=512, help="flux-kontext: T5 tokens of the instruction")
    p.add_argument("--resolution", type=int, default=defaults.resolution)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size, help="per process")
    p.add_argument("--gradient-accumulation", type=int, default=defaults.gradient_accumulation)
    p.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    p.add_argument("--lr-scheduler", default=defaults.lr_scheduler, help="a diffusers scheduler name (constant, cosine, ...)")
    p.add_argument("--lr-warmup-steps", type=int, default=defaults.lr_warmup_steps)
    p.add_argument("--max-steps", type=int, default=defaults.max_steps)
    p.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    p.add_argument("--checkpoints-kept", type=int, default=defaults.checkpoints_kept)
    p.add_argument("--conditioning-dropout", type=float, default=defaults.conditioning_dropout)
    p.add_argument("--no-ema", action="store_true", help="save the last weights instead of their moving average")
    p.add_argument("--mixed-precision", choices=("auto", "no", "bf16", "fp16"), default=defaults.mixed_precision)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in OUTPUT_DIR")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even where CUDA is available")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--dataloader-workers", type=int, default=defaults.dataloader_workers)
    p.add_argument("--clip-model", default=DEFAULT_CLIP_MODEL, help="CLIP filter for pairs built on the fly; 'none' skips it")
    p.set_defaults(run=run)


COMMON = ("base_revision", "lora", "resolution", "batch_size", "gradient_accumulation", "lr_scheduler", "lr_warmup_steps", "max_steps",
          "checkpoint_every", "checkpoints_kept", "mixed_precision", "seed", "cpu", "dataloader_workers", "clip_model")


def run(args) -> int:
    settings = {k: getattr(args, k) for k in COMMON}
    settings["ema"] = not args.no_ema
    if args.editor == "flux-kontext":
        from ..train.kontext import finetune_kontext

        explicit = {k: getattr(args, k) for k in ("learning_rate", "resolution") if getattr(args, k) != getattr(DEFAULTS, k)}
        settings.update(lora=args.lora or 16, max_sequence_length=args.max_sequence_length, **explicit)
        if not explicit.get("resolution"):
            settings.pop("resolution")
        output = finetune_kontext(args.pairs, args.output_dir, args.base_model, resume=args.resume, **settings)
    else:
        settings.update(dual_prompt=args.dual_prompt, learning_rate=args.learning_rate, conditioning_dropout=args.conditioning_dropout)
        output = finetune(args.pairs, args.output_dir, args.base_model, resume=args.resume, **settings)
    print(f"fine-tuned editor: {output}")
    return 0
