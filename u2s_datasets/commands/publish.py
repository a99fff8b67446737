"""``u2s publish SAVED_DATASET REPO_ID``: share a dataset saved after ``Unsafe2Safe``, safely."""

import json
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

CONFIG_FILE = "u2s_config.json"  # written by ``u2s anonymize`` next to the dataset it saves


def register(subparsers):
    parser = subparsers.add_parser(
        "publish",
        help="publish a privacy-safe dataset to the Hugging Face Hub (private by default)",
        description=(
            "Publish a dataset saved with save_to_disk after Unsafe2Safe: the safe image becomes the image column, "
            "the original images, private captions, paths and URLs stay behind, other images are refused, text published as it is "
            "must be acknowledged, and the dataset card is uploaded last. "
            "The token comes from HF_TOKEN or `hf auth login`."
        ),
    )
    parser.add_argument("saved_dataset", help="folder written by Dataset.save_to_disk / DatasetDict.save_to_disk")
    parser.add_argument("repo_id", help="the dataset repository, namespace/name")
    parser.add_argument("--dry-run", metavar="STAGING_DIR", help="write the files that would be uploaded here; upload nothing")
    parser.add_argument("--public", action="store_true", help="create the repository public (default: private)")
    parser.add_argument("--gated", choices=("auto", "manual"), help="ask users for access, approved automatically or by hand")
    parser.add_argument("--keep-column", action="append", default=[], metavar="NAME",
                        help="publish this column as it is although it is private or unchecked (original images, private_caption, "
                             "other image columns, paths or URLs, a text column); repeatable")
    parser.add_argument("--allow-text-columns", action="store_true",
                        help="publish the source's text columns and class names as they are, after reading the report of what they hold")
    parser.add_argument("--drop-failed", action="store_true", help="leave out rows that failed anonymization instead of refusing")
    parser.add_argument("--image-format", choices=("auto", "png", "jpeg", "webp"), default="auto",
                        help="auto (default): JPEG, PNG and WebP images go out as the transform wrote them, others as lossless PNG; "
                             "png, jpeg, webp: every image in that format")
    parser.add_argument("--image-column", help="the source's image column, when the saved config does not say")
    parser.add_argument("--config", metavar="FILE", help=f"the run's {CONFIG_FILE} (default: looked up next to the dataset)")
    parser.add_argument("--license", help="license of the data (default: the source's)")
    parser.add_argument("--source-dataset", help="hub id of the dataset this one was made from")
    parser.add_argument("--pretty-name", help="the dataset's display name")
    parser.add_argument("--task-category", action="append", default=None, metavar="NAME", help="card task category; repeatable")
    parser.add_argument("--metrics", metavar="FILE", help="JSON file of evaluation results to show on the card")
    parser.add_argument("--require-review", action="store_true", help="refuse unless every flagged row was reviewed and applied")
    parser.set_defaults(run=run)


def find_config(saved_dataset: Path, given=None):
    """The ``u2s_config.json`` of a saved dataset: given, inside its folder, or beside it."""
    if given:
        path = Path(given)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        return path
    for path in (saved_dataset / CONFIG_FILE, saved_dataset.parent / CONFIG_FILE):
        if path.is_file():
            return path
    return None


def run(args) -> int:
    from datasets import load_from_disk

    from ..hub import Anonymization, PublishError, push_safe_dataset
    from ..review import REVIEW_FILE, card_figures, require_review, review_status, review_summary

    saved = Path(args.saved_dataset)
    if not saved.is_dir():
        raise FileNotFoundError(f"{saved} is not a folder written by save_to_disk")
    ds = load_from_disk(str(saved))

    config_path = find_config(saved, args.config)
    if config_path is not None:
        with open(config_path, encoding="utf-8") as f:
            anonymization = Anonymization.from_mapping(json.load(f), source=CONFIG_FILE)
        logger.info("Anonymization settings from %s (config hash %s)", config_path, anonymization.config_hash)
    else:
        logger.warning("No %s found next to %s: the card will say the anonymization settings are unknown", CONFIG_FILE, saved)
        anonymization = Anonymization.unknown()

    metrics = None
    if args.metrics:
        with open(args.metrics, encoding="utf-8") as f:
            metrics = json.load(f)

    # Review (u2s_datasets/review/status.py): the gate, the counts on the card, and the regions it removed.
    review = None
    if args.require_review:
        review = require_review(str(saved))
    elif (saved / REVIEW_FILE).is_file():
        review = review_status(str(saved))

    try:
        result = push_safe_dataset(
            ds,
            args.repo_id,
            private=not args.public,
            gated=args.gated,
            keep_columns=tuple(args.keep_column),
            allow_text_columns=args.allow_text_columns,
            drop_failed=args.drop_failed,
            dry_run=args.dry_run,
            image_format=args.image_format,
            image_column=args.image_column,
            license=args.license,
            source_dataset=args.source_dataset,
            pretty_name=args.pretty_name,
            task_categories=args.task_category,
            metrics=metrics,
            review=card_figures(str(saved), review) if review else None,
            transform=anonymization,
        )
    except (PublishError, FileExistsError) as e:
        print(f"u2s publish: error: {e}", file=sys.stderr)
        return 1
    total = result.counts["total"]
    summary = (f"{total['rows']} rows ({total['flagged']} flagged private, {total['edited']} edited, "
               f"{total['dropped_failed']} failed rows left out)")
    if result.staging_dir:
        print(f"Dry run: staged {len(result.files)} files for {args.repo_id} in {result.staging_dir}: {summary}")
    else:
        print(f"Published {args.repo_id} ({'public' if args.public else 'private'}): {summary}\n{result.url}")
    if review:
        print(f"Review{' (complete, as --require-review asks)' if args.require_review else ''}: {review_summary(review)}")
    return 0

