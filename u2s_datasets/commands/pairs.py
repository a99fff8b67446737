"""``u2s pairs``: training pairs (source, instruction, public caption, safe target) from an anonymized dataset."""

import datasets

from ..train.clip_filter import CLIP_FILTERS
from ..train.pairs import DEFAULT_CLIP_MODEL, TARGETS, build_pairs, save_pairs
from ..train.splits import DEFAULT_SOURCE_SPLITS, RATIO_SPLITS
from .anonymize import _parse_setting


def register(subparsers):
    p = subparsers.add_parser("pairs", help="training pairs for `u2s finetune` from a folder `u2s anonymize` wrote")
    p.add_argument("input", help="a save_to_disk folder written by `u2s anonymize`")
    p.add_argument("output", help="a save_to_disk folder for the pairs (train/validation/test)")
    p.add_argument("--image-column", default="image", help="the source image column (default: image)")
    p.add_argument("--class-column", help="a column with each image's class (default: a ClassLabel column, if any)")
    p.add_argument("--split", help="only this split of a saved DatasetDict (with --split-by and no --split: all of them)")
    p.add_argument("--targets", choices=TARGETS, default="safe_image",
                   help="safe_image: the anonymized image (edited rows only; default); flowedit: made by SD3 FlowEdit, as the paper's")
    p.add_argument("--flowedit-model", help="the SD3 pipeline for --targets flowedit: hub id or folder "
                   "(default: stabilityai/stable-diffusion-3-medium-diffusers)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a FlowEdit setting, e.g. --set edit_batch_size=4 --set edit_scope=regions")
    p.add_argument("--num-proc", type=int, help="FlowEdit worker processes (one per GPU)")
    p.add_argument("--filter", dest="clip_filter", choices=CLIP_FILTERS, default="image-cosine",
                   help="image-cosine: CLIP image similarity of target and source (default); clip-ratio: the reference code's "
                   "clip_edit / clip_orig")
    p.add_argument("--clip-model", default=DEFAULT_CLIP_MODEL,
                   help=f"CLIP for the quality filter: hub id or local folder (default: {DEFAULT_CLIP_MODEL}); 'none' skips the filter")
    p.add_argument("--clip-threshold", type=float, default=0.7, help="the filter's threshold (default: 0.7)")
    cut = p.add_mutually_exclusive_group()
    cut.add_argument("--fractions", type=float, nargs=3, default=(0.9, 0.05, 0.05), metavar=("TRAIN", "VAL", "TEST"),
                     help="split fractions (default: 0.9 0.05 0.05)")
    cut.add_argument("--ratio", choices=tuple(RATIO_SPLITS), help="train/validation as the reference code cuts it: 95/5 (the SD "
                     "editor's) or 75/25 (the FLUX path's)")
    p.add_argument("--split-by", metavar="COLUMN", help="a column naming each row's source split (a COCO file path, for instance): "
                   "the training pool and the test split come from it")
    p.add_argument("--source-splits", nargs=2, default=DEFAULT_SOURCE_SPLITS, metavar=("TRAIN", "TEST"),
                   help="names in --split-by of the training pool and the test split (default: train2014 val2014)")
    p.add_argument("--seed", type=int, default=42, help="seed of the split (default: 42)")
    p.set_defaults(run=run)


def run(args) -> int:
    ds = datasets.load_from_disk(args.input)
    if isinstance(ds, datasets.DatasetDict):
        if args.split is None and len(ds) != 1 and not args.split_by:
            raise ValueError(f"{args.input} holds splits {list(ds)}: choose one with --split, or take them all with --split-by")
        # With --split-by the source split is read from that column: every split of the input is a candidate.
        ds = ds[args.split] if args.split else datasets.concatenate_datasets(list(ds.values()))
    if args.targets != "flowedit" and (args.set or args.flowedit_model or args.num_proc):
        raise ValueError("--flowedit-model, --set and --num-proc go with --targets flowedit")
    settings = dict(_parse_setting(s) for s in args.set)
    if args.flowedit_model:
        settings["editor_model"] = args.flowedit_model
    clip_model = None if args.clip_model.lower() == "none" else args.clip_model
    pairs, stats = build_pairs(ds, image_column=args.image_column, class_column=args.class_column, clip_model=clip_model,
                               clip_threshold=args.clip_threshold, split=args.ratio or args.fractions, seed=args.seed, with_stats=True,
                               clip_filter=args.clip_filter, split_by=args.split_by, source_splits=tuple(args.source_splits),
                               targets=args.targets, target_settings=settings, num_proc=args.num_proc)
    save_pairs(pairs, args.output, stats)
    made = f", {stats.target_failed} FlowEdit failures" if args.targets == "flowedit" else ""
    outside = f", {stats.outside_splits} outside {'/'.join(args.source_splits)}" if args.split_by else ""
    print(f"{stats.kept} pairs from {stats.rows} rows ({stats.edited} edited, {stats.passthrough} passthrough, {stats.failed} failed, "
          f"{stats.filtered_out} filtered out{made}{outside}): {stats.split_sizes} -> {args.output}")
    return 0
