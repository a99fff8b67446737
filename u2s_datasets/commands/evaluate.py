"""``u2s evaluate ORIGINAL [SAFE]``: the evaluation suite over a saved dataset or two image folders."""

import logging
import os
import sys

logger = logging.getLogger(__name__)

METRICS = ("privacy", "quality", "cheating", "utility")
NAME_COLUMNS = ("file_name", "name")  # rows are named by these in the report when present
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
    parser.add_argument("--protocol", choices=("u2s", "paper", "project"), default="u2s",
                        help="paper: the authors' definitions, figures comparable with the paper's tables (docs/evaluation.md); "
                             "u2s: this project's figures ('project' is its former name)")
    parser.add_argument("--paper-prompts", help="privacy, paper protocol: a folder with the authors' prompt files "
                                                "(default: the copies shipped with this package)")
    parser.add_argument("--face-pack", help="privacy, paper protocol: the antelopev2 folder or hub id (SCRFD + ArcFace ONNX)")
    parser.add_argument("--lpips-backbone", help="cheating: VGG16 weights (hub id or folder) for LPIPS-VGG")
    parser.add_argument("--judge-model", help="privacy: transformers VLM for the unlinkability judge")
    parser.add_argument("--judge-revision")
    parser.add_argument("--utility-backbone", default="hist-hog", choices=("hist-hog", "transformers"))
    parser.add_argument("--utility-recipe", choices=("default", "paper"), default="default",
                        help="utility: how the MAE classifier fine-tunes; paper: the authors' MAE recipe (100 epochs, lr 5e-4, "
                             "batch 64 x 4, RandAugment, drop path, layer decay; docs/evaluation.md). It fine-tunes MAE "
                             "(--backbone-model, default facebook/vit-mae-base) whatever --utility-backbone says")
    parser.add_argument("--utility-epochs", type=int, help="utility: epochs, over the recipe's")
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
    results, rows, pairs, stopped = {}, None, None, None
    if any(m != "utility" for m in metrics):
        rows = _load_rows(args)
        pairs = list(zip(rows["names"], rows["original"], rows["safe"]))
    for metric in metrics:
        try:
            _check_models(args, metric)
            results[metric] = _compute(args, metric, rows)
        except ModelUnavailable as e:
            stopped = str(e)
            break
    settings = _run_settings(args.original)
    paths = write_report(results, args.out, pairs=pairs, worst=args.worst, regions=(rows or {}).get("regions"),
                         settings=settings, stopped=stopped)
    for result_name, result in results.items():
        figures = {k: v for k, v in result.items() if isinstance(v, float)}
        print(result_name + ": " + ", ".join(f"{k}={v:.4f}" for k, v in figures.items()))
    print(f"wrote {paths['metrics']}, {paths['markdown']}, {paths['html']}")
    if stopped:
        print(f"u2s evaluate: error: {stopped}", file=sys.stderr)
        return 2
    return 0


def _compute(args, metric, rows) -> dict:
    model = dict(device=args.device, local_files_only=args.local_files_only)
    clip = dict(clip_model=args.clip_model, clip_revision=args.clip_revision)
    try:
        if metric == "privacy":
            from ..evaluation.privacy import compute_privacy

            judge = dict(judge=True, vlm_model=args.judge_model, vlm_revision=args.judge_revision) if args.judge_model else {}
            return compute_privacy(rows["safe"], rows["original"], protocol=args.protocol, face_pack=args.face_pack,
                                   paper_prompts=args.paper_prompts, **judge, **model)
        if metric == "cheating":
            from ..evaluation.cheating import compute_cheating

            return compute_cheating(rows["safe"], rows["original"], regions=rows.get("regions"), clip=not args.no_clip,
                                    lpips_backbone=args.lpips_backbone, **clip, **model)
        if metric == "quality":
            from ..evaluation.quality import compute_quality

            if rows.get("captions") is None:
                raise ValueError(f"the quality metric needs public captions: no column {args.caption_column!r} in the dataset")
            return compute_quality(rows["safe"], rows["original"], rows["captions"], source_captions=rows.get("source_captions"),
                                   **clip, **model)
        return _utility(args, model)
    except OSError as e:  # transformers and huggingface_hub say "cannot load" with OSError and its subclasses
        model_id, flag = _model_of(args, metric)
        if model_id is None:
            raise
        raise ModelUnavailable(f"{metric}: cannot load the model {model_id} ({_first_line(e)}); {flag}") from None


# ----------------------------------------------------------------------------- models that may be missing

class ModelUnavailable(RuntimeError):
    """A metric's model cannot be loaded here (offline and not in the cache, or a missing folder)."""


def _model_of(args, metric):
    """The downloaded model a metric needs with these options, and how to do without it; (None, None) if none."""
    from ..evaluation.quality import DEFAULT_CLIP

    if metric == "privacy" and args.judge_model:
        return args.judge_model, "leave out --judge-model to skip the VLM judge"
    if metric == "cheating" and not args.no_clip:
        return args.clip_model or DEFAULT_CLIP, "skip it with --no-clip (or give a local folder with --clip-model)"
    if metric == "quality":
        return args.clip_model or DEFAULT_CLIP, "skip it by leaving quality out of --metrics (or give a local folder with --clip-model)"
    if metric == "utility" and args.utility_backbone == "transformers" and args.backbone_model:
        return args.backbone_model, "skip it with --utility-backbone hist-hog"
    return None, None


def _check_models(args, metric):
    """Fail before any work when a hub model is neither a folder nor cached and the hub may not be asked."""
    model_id, flag = _model_of(args, metric)
    if model_id is None or os.path.isdir(model_id):
        return
    offline = args.local_files_only or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if not offline:
        return  # loading will ask the hub; a failure there is caught as it happens
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(model_id, "config.json"), str):
        raise ModelUnavailable(f"{metric}: cannot load the model {model_id} (offline and not in the Hugging Face cache); {flag}")


def _first_line(error) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:200]


def _run_settings(original):
    """The anonymization settings recorded beside a saved dataset, if there are any."""
    if not _is_dataset_folder(original):
        return None
    from ..review.saved import load_run

    return load_run(original).get("config")


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
        names = next((c for c in NAME_COLUMNS if c in ds.column_names), None)
        rows["names"] = [str(n) for n in ds[names]] if names else [f"row {i}" for i in range(len(ds))]
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
        protocol=args.protocol, recipe=args.utility_recipe, epochs=args.utility_epochs, **model,
    )
