"""``u2s pairs``: training pairs (source, instruction, public caption, safe target) from an anonymized dataset."""

import datasets

from ..train.pairs import DEFAULT_CLIP_MODEL, build_pairs, save_pairs


def register(subparsers):
    p = subparsers.add_parser("pairs", help="training pairs for `u2s finetune` from a folder `u2s anonymize` wrote")
    p.add_argument("input", help="a save_to_disk folder written by `u2s anonymize`")
    p.add_argument("output", help="a save_to_disk folder for the pairs (train/validation/test)")
    p.add_argument("--image-column", default="image", help="the source image column (default: image)")
    p.add_argument("--class-column", help="a column with each image's class (default: a ClassLabel column, if any)")
    p.add_argument("--split", help="only this split of a saved DatasetDict")
    p.add_argument("--clip-model", default=DEFAULT_CLIP_MODEL,
                   help=f"CLIP for the quality filter: hub id or local folder (default: {DEFAULT_CLIP_MODEL}); 'none' skips the filter")
    p.add_argument("--clip-threshold", type=float, default=0.7, help="least CLIP similarity of target to source (default: 0.7)")
    p.add_argument("--fractions", type=float, nargs=3, default=(0.9, 0.05, 0.05), metavar=("TRAIN", "VAL", "TEST"),
                   help="split fractions (default: 0.9 0.05 0.05)")
    p.add_argument("--seed", type=int, default=42, help="seed of the split (default: 42)")
    p.set_defaults(run=run)


def run(args) -> int:
    ds = datasets.load_from_disk(args.input)
    if isinstance(ds, datasets.DatasetDict):
        if args.split is None and len(ds) != 1:
            raise ValueError(f"{args.input} holds splits {list(ds)}: choose one with --split")
        ds = ds[args.split or next(iter(ds))]
    clip_model = None if args.clip_model.lower() == "none" else args.clip_model
    pairs, stats = build_pairs(ds, image_column=args.image_column, class_column=args.class_column, clip_model=clip_model,
                               clip_threshold=args.clip_threshold, split=args.fractions, seed=args.seed, with_stats=True)
    save_pairs(pairs, args.output, stats)
    print(f"{stats.kept} pairs from {stats.rows} rows ({stats.edited} edited, {stats.passthrough} passthrough, {stats.failed} failed, "
          f"{stats.filtered_out} filtered out): {stats.split_sizes} -> {args.output}")
    return 0
