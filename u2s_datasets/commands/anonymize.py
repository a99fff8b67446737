"""``u2s anonymize INPUT OUTPUT``: a privacy-safe copy of a dataset or a folder of images."""

import json
import os
import tempfile

import datasets

from .. import columns as C
from ..run.folders import (
    ORIGINALS_FOLDER,
    cache_outside,
    check_output,
    load_input,
    materialize,
    private_columns,
    staged_output,
    write_image_folder,
)
from ..run.cli_options import add_run_arguments, run_from_args
from ..run import anonymize, write_config
from ..transform import Unsafe2Safe


def register(subparsers):
    p = subparsers.add_parser("anonymize", help="write a privacy-safe copy of a dataset or a folder of images")
    p.add_argument("input", help="a folder of images, a parquet file or folder, a save_to_disk folder, an image file, or a dataset id")
    p.add_argument("output", help="a save_to_disk folder, or a folder of images with --format images")
    p.add_argument("--preset", default="local", help="local (offline default) or paper")
    p.add_argument("--editor", help="blur, pixelate, fill, inpaint, or a model-backed editor")
    p.add_argument("--format", choices=("dataset", "images", "parquet"), default="dataset",
                   help="dataset: save_to_disk working copy with every column (default); images: safe images + metadata.jsonl; "
                   "parquet: resumable sharded run (parquet shards + completion markers; --engine local|ray)")
    p.add_argument("--include-private", action="store_true",
                   help="with --format images, also write the original images and the private captions")
    p.add_argument("--image-column", default="image")
    p.add_argument("--class-column", help="column naming each image's class (default: the dataset's ClassLabel column)")
    p.add_argument("--split", help="only this split")
    p.add_argument("--config", help="configuration of a dataset id")
    p.add_argument("--revision", help="revision of a dataset id (branch, tag or commit)")
    p.add_argument("--data-files", action="append", metavar="PATTERN", help="data files of a dataset id; repeatable")
    p.add_argument("--streaming", action="store_true", help="stream a dataset id instead of downloading it whole first")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--num-proc", type=int, help="worker processes (each loads its own models)")
    p.add_argument("--on-error", choices=("redact", "drop", "raise"))
    p.add_argument("--keep-metadata", metavar="NAMES", help="comma-separated metadata to keep: icc, dpi, orientation-baked "
                   "(default: all three; '' for none). GPS, serials, maker notes, thumbnails, XMP, IPTC and comments never stay")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other setting, e.g. --set feather=12")
    add_run_arguments(p)  # also --overwrite: replace an output that already holds data
    p.set_defaults(run=run)


def run(args) -> int:
    if args.include_private and args.format != "images":
        raise ValueError("--include-private goes with --format images; the dataset form keeps the private columns anyway")
    overrides = dict(_parse_setting(s) for s in args.set)
    if args.editor:
        overrides["editor"] = args.editor
    if args.on_error:
        overrides["on_error"] = args.on_error
    if args.keep_metadata is not None:
        overrides["keep_metadata"] = tuple(name.strip() for name in args.keep_metadata.split(",") if name.strip())
    Unsafe2Safe(preset=args.preset, image_column=args.image_column, **overrides)  # bad settings fail before any loading
    sharded = args.format == "parquet"
    if not sharded and (args.engine != "local" or args.resume or args.limit or args.workers or args.ray_address):
        raise ValueError("--engine, --workers, --limit, --resume and --ray-address go with --format parquet (a sharded run)")
    # A sharded run resumes into its own folder; the run itself refuses a folder of other settings.
    check_output(args.output, args.input, args.overwrite or sharded)
    ds = load_input(
        args.input, args.image_column, split=args.split, config=args.config, revision=args.revision,
        data_files=args.data_files, streaming=args.streaming,
    )
    with tempfile.TemporaryDirectory(prefix="u2s-stream-") as stream_cache, cache_outside(ds, args.input):
        if not sharded:  # a sharded run writes a stream's shards as they complete
            ds = materialize(ds, stream_cache)
        class_column, class_names = _class_column(ds, args.class_column)
        transform = Unsafe2Safe(
            preset=args.preset, image_column=args.image_column, class_column=class_column, class_names=class_names, **overrides
        )
        if sharded:
            summary = run_from_args(args, ds, transform, args.output)
            print(summary)
            print(f"written to {args.output} (load with load_dataset('parquet', data_dir={args.output!r}))")
            return 0
        with staged_output(args.output) as staging:
            result, summary = anonymize(ds, transform, batch_size=args.batch_size, num_proc=args.num_proc)
            if args.format == "images":
                write_image_folder(result, staging, args.image_column, args.include_private)
            else:
                result.save_to_disk(staging)  # copies the image files in: no paths into the input
            write_config(staging, transform)
    print(summary)
    if summary.categories:
        print("categories: " + ", ".join(f"{k} {v}" for k, v in summary.categories.items()))
    print(_private_note(result, args))
    print(f"written to {args.output}")
    return 0


def _class_column(ds, given):
    """The column whose class names go into the captions: the one given, or the dataset's ClassLabel column."""
    features = (next(iter(ds.values())).features if isinstance(ds, (datasets.DatasetDict, datasets.IterableDatasetDict)) else ds.features) or {}
    if given is None:
        labels = [name for name, feature in features.items() if isinstance(feature, datasets.ClassLabel)]
        given = "label" if "label" in labels else (labels[0] if labels else None)
    feature = features.get(given) if given else None
    return given, (feature.names if isinstance(feature, datasets.ClassLabel) else None)


def _private_note(result, args) -> str:
    """Which columns hold private data, and where they went."""
    features = next(iter(result.values())).features if isinstance(result, datasets.DatasetDict) else result.features
    private = private_columns(features, args.image_column)
    what = {args.image_column: " (original images)", C.PRIVATE_CAPTION: ""}
    named = ", ".join(name + what.get(name, " (not anonymized)") for name in private)
    if args.format == "dataset":
        return (
            f"private columns: {named}; kept in {args.output}, your working copy "
            f"(the safe images are in {C.SAFE_IMAGE}; `u2s publish` leaves the original images and private captions out)"
        )
    if args.include_private:
        return (
            f"private columns: {named}; written with --include-private: original images under "
            f"{os.path.join(args.output, '[split/]' + ORIGINALS_FOLDER)}, {C.PRIVATE_CAPTION} in metadata.jsonl"
        )
    return f"private columns: {named}; not written (only safe images and public columns are in {args.output})"


def _parse_setting(text: str):
    key, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"--set takes KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value
