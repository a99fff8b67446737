"""``u2s evaluate ORIGINAL [SAFE]``: the evaluation suite over a saved dataset or two image folders."""

import logging
import os

logger = logging.getLogger(__name__)

METRICS = ("privacy", "quality", "cheating", "utility")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def register(subparsers):
    parser = subparsers.add_parser(
        "evaluate",
        help="measure privacy, quality, cheating and utility of a safe dataset",
        description="ORIGINAL is a dataset folder written by save_to_disk (with the original image column and, "
        "unless SAFE is given, the safe image column) or a folder of images; SAFE is a dataset or image folder "
        "with the safe images (folders are matched by file name).",
    )
    parser.add_argument("original")
    parser.add_argument("safe", nargs="?")
    parser.add_argument("--metrics", default="privacy,cheating", help=f"comma-separated, from: {', '.join(METRICS)}")
    parser.add_argument("--out", required=True, help="folder for metrics.json, report.md and report.html")
    parser.add_argument("--split", help="split of a saved DatasetDict to evaluate (default: test, else the first)")
    parser.add_argument("--image-column", default="image")
    parser.add_argument("--safe-column", default="safe_image")
    parser.add_argument("--caption-column", default="public_caption", help="quality: public captions")
    parser.add_argument("--source-caption-column", default="private_caption", help="quality: private captions")
    parser.add_argument("--regions-column", default="privacy_regions", help="cheating: private regions")
    parser.add_argument("--label-column", default="label", help="utility: class labels")
    parser.add_argument("--train-split", default="train", help="utility: the split to train on")
    parser.add_argument("--test-split", default="test", help="utility: the real split to test on")
    parser.add_argument("--limit", type=int, help="evaluate the first N rows only")
    parser.add_argument("--clip-model", help="CLIP hub id or folder (quality, cheating)")
    parser.add_argument("--clip-revision")
    parser.add_argument("--no-clip", action="store_true", help="cheating: skip CLIP image similarity")
    parser.add_argument("--judge-model", help="privacy: transformers VLM for the unlinkability judge")
    parser.add_argument("--judge-revision")
    parser.add_argument("--utility-backbone", default="hist-hog", choices=("hist-hog", "transformers"))
    parser.add_argument("--backbone-model")
    parser.add_argument("--backbone-revision")
    parser.add_argument("--device")
    parser.add_argument("--local-files-only", action="store_true")
    parser.add_argument("--worst", type=int, default=6, help="how many worst leaks to show side by side")
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..evaluation.report import write_report

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ValueError(f"unknown metric(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(METRICS)}")
    model = dict(device=args.device, local_files_only=args.local_files_only)
    clip = dict(clip_model=args.clip_model, clip_revision=args.clip_revision)
    results, pairs = {}, None
    paired = [m for m in metrics if m != "utility"]
    if paired:
        rows = _load_rows(args)
        originals, safes = rows["original"], rows["safe"]
        pairs = list(zip(rows["names"], originals, safes))
        if "privacy" in metrics:
            from ..evaluation.privacy import compute_privacy

            judge = dict(judge=True, vlm_model=args.judge_model, vlm_revision=args.judge_revision) if args.judge_model else {}
            results["privacy"] = compute_privacy(safes, originals, **judge, **model)
        if "cheating" in metrics:
            from ..evaluation.cheating import compute_cheating

            results["cheating"] = compute_cheating(safes, originals, regions=rows.get("regions"), clip=not args.no_clip,
                                                   **clip, **model)
        if "quality" in metrics:
            from ..evaluation.quality import compute_quality

            if rows.get("captions") is None:
                raise ValueError(f"the quality metric needs public captions: no column {args.caption_column!r} in the dataset")
            results["quality"] = compute_quality(safes, originals, rows["captions"],
                                                 source_captions=rows.get("source_captions"), **clip, **model)
    if "utility" in metrics:
        results["utility"] = _utility(args, model)
    paths = write_report(results, args.out, pairs=pairs, worst=args.worst)
    for result_name, result in results.items():
        figures = {k: v for k, v in result.items() if isinstance(v, float)}
        print(result_name + ": " + ", ".join(f"{k}={v:.4f}" for k, v in figures.items()))
    print(f"wrote {paths['metrics']}, {paths['markdown']}, {paths['html']}")
    return 0


# ----------------------------------------------------------------------------- inputs

def _is_dataset_folder(path: str) -> bool:
    return os.path.isdir(path) and any(
        os.path.exists(os.path.join(path, f)) for f in ("dataset_info.json", "dataset_dict.json", "state.json")
    )


def _load_dataset(path: str, split):
    import datasets

    loaded = datasets.load_from_disk(path)
    if isinstance(loaded, datasets.DatasetDict):
        if split is None:
            split = "test" if "test" in loaded else next(iter(loaded))
        if split not in loaded:
            raise KeyError(f"split {split!r} not in {path} (splits: {', '.join(loaded)})")
        loaded = loaded[split]
    elif split is not None and split != "train":
        logger.warning("%s holds a single split; --split %s is ignored", path, split)
    return loaded


def _column(ds, name, where, required=True):
    if name in ds.column_names:
        return ds[name]
    if required:
        raise KeyError(f"no column {name!r} in {where} (columns: {', '.join(ds.column_names)})")
    return None


def _load_rows(args) -> dict:
    if not os.path.exists(args.original):
        raise FileNotFoundError(f"no such dataset or folder: {args.original}")
    if _is_dataset_folder(args.original):
        ds = _load_dataset(args.original, args.split)
        if args.limit:
            ds = ds.select(range(min(args.limit, len(ds))))
        rows = {"original": _column(ds, args.image_column, args.original)}
        if args.safe:
            safe_ds = _load_dataset(args.safe, args.split)
            if args.limit:
                safe_ds = safe_ds.select(range(min(args.limit, len(safe_ds))))
            if len(safe_ds) != len(ds):
                raise ValueError(f"{args.original} has {len(ds)} rows but {args.safe} has {len(safe_ds)}")
            source = safe_ds
        else:
            source = ds
        rows["safe"] = _column(source, args.safe_column, args.safe or args.original)
        rows["captions"] = _column(source, args.caption_column, "", required=False)
        rows["source_captions"] = _column(source, args.source_caption_column, "", required=False)
        rows["regions"] = _column(source, args.regions_column, "", required=False)
        rows["names"] = [f"row {i}" for i in range(len(ds))]
        return rows
    if not args.safe:
        raise ValueError(f"{args.original} is an image folder: give the folder of safe images as SAFE")
    names = _matched_names(args.original, args.safe)
    if args.limit:
        names = names[: args.limit]
    return {"original": [os.path.join(args.original, n) for n in names],
            "safe": [os.path.join(args.safe, n) for n in names], "names": names}


def _matched_names(original_dir: str, safe_dir: str) -> list:
    def images(folder):
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"no such folder: {folder}")
        return {n for n in os.listdir(folder) if n.lower().endswith(IMAGE_SUFFIXES)}

    originals, safes = images(original_dir), images(safe_dir)
    common = sorted(originals & safes)
    if not common:
        raise ValueError(f"no image file names in common between {original_dir} and {safe_dir}")
    missing = len(originals - safes)
    if missing:
        logger.warning("%d original images have no safe image of the same name and are skipped", missing)
    return common


def _utility(args, model) -> dict:
    import datasets

    from ..evaluation.utility import compute_utility

    if not _is_dataset_folder(args.original):
        raise ValueError("the utility metric needs a saved DatasetDict with train and test splits")
    loaded = datasets.load_from_disk(args.original)
    if not isinstance(loaded, datasets.DatasetDict) or args.train_split not in loaded or args.test_split not in loaded:
        raise KeyError(f"the utility metric needs splits {args.train_split!r} and {args.test_split!r} in {args.original}")
    train, test = loaded[args.train_split], loaded[args.test_split]
    safe_train = train
    if args.safe:
        safe_loaded = datasets.load_from_disk(args.safe)
        safe_train = safe_loaded[args.train_split] if isinstance(safe_loaded, datasets.DatasetDict) else safe_loaded
    return compute_utility(
        _column(safe_train, args.safe_column, "the safe training split"),
        _column(train, args.image_column, "the training split"),
        _column(train, args.label_column, "the training split"),
        _column(test, args.image_column, "the test split"),
        _column(test, args.label_column, "the test split"),
        backbone=args.utility_backbone, backbone_model=args.backbone_model, backbone_revision=args.backbone_revision,
        **model,
    )
