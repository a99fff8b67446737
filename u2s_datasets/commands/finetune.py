"""``u2s finetune``: fine-tune an InstructPix2Pix editor on Unsafe2Safe pairs (docs/training.md)."""

from ..train.finetune import FinetuneConfig, finetune
from ..train.pairs import DEFAULT_CLIP_MODEL


def register(subparsers):
    defaults = FinetuneConfig(base_model="")
    p = subparsers.add_parser("finetune", help="fine-tune an InstructPix2Pix editor on pairs (run under `accelerate launch` for many GPUs)")
    p.add_argument("pairs", help="a folder from `u2s pairs`, or one from `u2s anonymize` (pairs are built on the fly)")
    p.add_argument("output_dir", help="the fine-tuned diffusers pipeline goes here, with checkpoints, log and model card")
    p.add_argument("--base-model", required=True, help="the editor to start from (hub id or folder): an InstructPix2Pix pipeline "
                   "such as MagicBrush, or with --editor flux-kontext a FLUX.1 Kontext pipeline")
    p.add_argument("--editor", choices=("ip2p", "flux-kontext", "flux-omini"), default="ip2p",
                   help="ip2p (default; dual prompts, full or LoRA), flux-kontext (LoRA, rank 16 unless --lora) or "
                   "flux-omini (OminiControl subject LoRA on FLUX.1-dev, the paper's recipe; docs/training.md)")
    p.add_argument("--base-revision")
    p.add_argument("--dual-prompt", choices=("paper", "gated", "none"),
                   help=f"ip2p: SafeAttention (paper, default {defaults.dual_prompt}), the zero-gated fusion (gated) or none")
    p.add_argument("--lora", type=int, metavar="RANK", help="train LoRA adapters of this rank instead of the whole UNet")
    p.add_argument("--max-sequence-length", type=int, default=512, help="flux-kontext, flux-omini: T5 tokens of the instruction")
    p.add_argument("--recipe", choices=("default", "paper"), default="default",
                   help="paper: the authors' settings (ip2p: 256 px stretched, flip 0.5, batch 64 x accumulation 4, 200 epochs, "
                   "lr 1e-5; docs/training.md); the options below override it")
    p.add_argument("--resolution", type=int, help="training image side (default: 256 for ip2p, 512 for flux-kontext)")
    p.add_argument("--resize", choices=("crop", "stretch"), help="make images square by centre crop (default) or stretching")
    p.add_argument("--flip-prob", type=float, help=f"horizontal flip of each pair (default {defaults.flip_prob})")
    p.add_argument("--batch-size", type=int, help=f"per process (default {defaults.batch_size})")
    p.add_argument("--gradient-accumulation", type=int, help=f"default {defaults.gradient_accumulation}")
    p.add_argument("--learning-rate", type=float, help="default: 1e-5 for ip2p, 1e-4 for flux-kontext")
    p.add_argument("--lr-scheduler", help=f"a diffusers scheduler name (constant, cosine, ...; default {defaults.lr_scheduler})")
    p.add_argument("--lr-warmup-steps", type=int)
    p.add_argument("--max-steps", type=int, help="optimizer steps (default 1000 without --epochs)")
    p.add_argument("--epochs", type=int, help="passes over the training pairs (with --max-steps: whichever ends first)")
    p.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    p.add_argument("--checkpoints-kept", type=int, default=defaults.checkpoints_kept)
    p.add_argument("--conditioning-dropout", type=float, help=f"ip2p (default {defaults.conditioning_dropout})")
    p.add_argument("--no-ema", action="store_true", help="save the last weights instead of their moving average")
    p.add_argument("--mixed-precision", choices=("auto", "no", "bf16", "fp16"), default=defaults.mixed_precision)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in OUTPUT_DIR")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even where CUDA is available")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--dataloader-workers", type=int, default=defaults.dataloader_workers)
    p.add_argument("--clip-model", default=DEFAULT_CLIP_MODEL, help="CLIP filter for pairs built on the fly; 'none' skips it")
    p.set_defaults(run=run)


COMMON = ("base_revision", "lora", "resolution", "resize", "flip_prob", "learning_rate", "batch_size", "gradient_accumulation",
          "lr_scheduler", "lr_warmup_steps", "max_steps", "epochs", "checkpoint_every", "checkpoints_kept", "mixed_precision", "seed",
          "cpu", "dataloader_workers", "clip_model")


def defaults_dual() -> str:
    return FinetuneConfig(base_model="").dual_prompt


def run(args) -> int:
    # Unset options (None) take the recipe's value, or the trainer's own default.
    settings = {k: getattr(args, k) for k in COMMON if getattr(args, k) is not None}
    if args.no_ema:
        settings["ema"] = False
    if args.editor in ("flux-kontext", "flux-omini"):
        from ..train.kontext import finetune_kontext
        from ..train.omini import finetune_omini

        if args.dual_prompt not in (None, "none"):
            raise ValueError(f"--dual-prompt is for the ip2p editor; {args.editor} takes the instruction alone")
        trainer = {"flux-kontext": finetune_kontext, "flux-omini": finetune_omini}[args.editor]
        output = trainer(args.pairs, args.output_dir, args.base_model, resume=args.resume, recipe=args.recipe,
                         max_sequence_length=args.max_sequence_length, **settings)
    else:
        if args.conditioning_dropout is not None:
            settings["conditioning_dropout"] = args.conditioning_dropout
        output = finetune(args.pairs, args.output_dir, args.base_model, resume=args.resume, recipe=args.recipe,
                          dual_prompt=args.dual_prompt or defaults_dual(), **settings)
    print(f"fine-tuned editor: {output}")
    return 0
