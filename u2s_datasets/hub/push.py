"""``push_safe_dataset``: prepare -> write shards -> provenance -> card (together: ``stage``) -> upload."""

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

from .card import CARD_FILE, render_card
from .encode import IMAGE_FORMATS, write_shards
from .errors import PublishError
from .prepare import ORIGINAL_PREFIX, find_image_column, prepare_split
from .provenance import PROVENANCE_FILE, Anonymization, as_anonymization, build_provenance, split_counts, total_counts
from .report import PrepublishReport
from .upload import upload

logger = logging.getLogger(__name__)

GATED_CHOICES = ("auto", "manual")


@dataclass
class PublishResult:
    repo_id: str
    files: list  # paths in the repository, in upload order (the card last)
    counts: dict  # as in provenance.json
    staging_dir: Optional[str] = None  # the dry run's folder
    url: Optional[str] = None  # the repository, when uploaded
    commits: list = field(default_factory=list)  # commit ids, when uploaded


def stage(splits: Mapping, folder: Path, repo_id: str, anonymization: Anonymization, *, image_column=None, keep_columns=(),
          drop_failed=False, allow_text_columns=False, image_format="auto", image_quality=90, max_shard_size=500 * 2**20,
          source_dataset=None, license=None, pretty_name=None, task_categories=None, metrics=None, review=None, private=True,
          gated=None) -> tuple:
    """Write every file that would be uploaded into ``folder``; returns (repo paths, card last; counts).

    Every split is checked before the first file is written, so a refusal leaves the folder empty.
    """
    folder = Path(folder)
    prepared = {}
    for name, ds in splits.items():
        column = find_image_column(ds, anonymization, image_column)
        prepared[name] = prepare_split(ds, name, column, keep_columns, drop_failed)
    _same_columns_everywhere(prepared)
    report = PrepublishReport({name: p.text_findings for name, p in prepared.items() if p.text_findings})
    report.check(allow_text_columns)

    max_pixels = anonymization.max_image_pixels
    split_files, per_split = {}, {}
    for name, p in prepared.items():
        split_files[name], image_files = write_shards(p, folder, image_format, image_quality, max_shard_size, max_pixels)
        per_split[name] = split_counts(p.dataset, p.dropped_failed, image_files)
    counts = {"total": total_counts(per_split), "splits": per_split}

    first = next(iter(prepared.values()))
    publishing = {
        "image_column": first.image_column,
        "image_format": image_format,
        "image_quality": image_quality,
        "dropped_columns": _union(p.dropped_columns for p in prepared.values()),
        "kept_columns": _union(p.kept_columns for p in prepared.values()),
        "original_images_kept_as": ORIGINAL_PREFIX + first.image_column if first.image_column in keep_columns else None,
        "as_is_columns": _union(p.as_is_columns for p in prepared.values()),
        "text_report": report.as_record(),
        "private": private,
        "gated": gated or False,
        "splits": dict(split_files),
    }
    provenance = build_provenance(anonymization, counts, publishing, source_dataset=source_dataset, license=license, metrics=metrics,
                                  review=review)
    with open(folder / PROVENANCE_FILE, "w", encoding="utf-8") as f:
        json.dump(provenance, f, indent=2, sort_keys=False)
        f.write("\n")

    from datasets import Features, Image

    features = Features({**first.dataset.features, first.image_column: Image()})
    card = render_card(folder, repo_id, provenance, split_files, features, pretty_name=pretty_name, task_categories=task_categories, gated=gated)
    card.save(folder / CARD_FILE)
    data_paths = [path for files in split_files.values() for path in files]
    return data_paths + [PROVENANCE_FILE, CARD_FILE], counts


def _same_columns_everywhere(prepared: Mapping) -> None:
    """A column dropped from one split is dropped from all: every split keeps one schema, and nothing leaks by split."""
    dropped = _union(p.dropped_columns for p in prepared.values())
    for split in prepared.values():
        extra = [c for c in dropped if c in split.dataset.column_names and c != split.image_column]
        if extra:
            logger.warning("Dropping column(s) %s of split %r too: they were dropped from another split", ", ".join(map(repr, extra)), split.name)
            split.dataset = split.dataset.remove_columns(extra)
            split.dropped_columns += [c for c in extra if c not in split.dropped_columns]
            split.as_is_columns = [c for c in split.as_is_columns if c not in extra]
            split.text_findings = [f for f in split.text_findings if f.column not in extra]


def _union(lists) -> list:
    return list(dict.fromkeys(item for items in lists for item in items))


def push_safe_dataset(
    ds,
    repo_id: str,
    *,
    private: bool = True,
    gated: Optional[str] = None,
    keep_columns: Sequence[str] = (),
    allow_text_columns: bool = False,
    drop_failed: bool = False,
    dry_run: Optional[Union[str, os.PathLike]] = None,
    image_format: str = "auto",
    image_quality: int = 90,
    image_column: Optional[str] = None,
    license: Optional[str] = None,
    source_dataset: Optional[str] = None,
    pretty_name: Optional[str] = None,
    task_categories: Optional[Sequence[str]] = None,
    metrics: Optional[Mapping] = None,
    review: Optional[Mapping] = None,
    transform=None,
    token: Optional[str] = None,
    endpoint: Optional[str] = None,
    max_shard_size: Union[int, str] = "500MB",
) -> PublishResult:
    """Publish a dataset mapped with ``Unsafe2Safe`` to the Hub, safely.

    Args:
        ds: a ``Dataset`` or ``DatasetDict`` (all splits are published).
        repo_id: the dataset repository, ``"org/name"``.
        private: create the repository private (the default). An existing public repository is refused.
        gated: ``"auto"`` or ``"manual"`` to ask users for access, with the card's gating prompt.
        keep_columns: publish these columns as they are although they are private or unchecked by default (the
            original image column, ``private_caption``, columns of file names, paths or URLs, other image or media
            columns, binary image data, text columns). Each one kept is warned about and named on the card.
            ``edit_instruction`` is published: one written by a language model can quote a private item (docs/publishing.md).
        allow_text_columns: publish the source's text columns and class names as they are. Without it, a dataset that
            has any (other than those in ``keep_columns``) is refused with a report of what they hold.
        drop_failed: leave out rows whose ``u2s_status`` is an error instead of refusing to publish.
        dry_run: a folder: write exactly the files that would be uploaded there, and touch no network.
        image_format: ``"auto"`` (JPEG, PNG and WebP published as the transform wrote them; others as lossless PNG),
            or ``"png"``, ``"jpeg"``, ``"webp"`` to have every image in that format.
        image_quality: encoder quality for lossy new encodes.
        image_column: the source's image column, when neither the transform nor the dataset tells it.
        license: the dataset's license; by default the source's (``ds.info.license``), else ``"unknown"``.
        source_dataset: the id of the dataset this one was made from.
        pretty_name, task_categories: card metadata.
        metrics: results of the evaluation suite, shown on the card and kept in provenance.json.
        review: the counts of a human review (``u2s_datasets.review.card_figures(folder)``), shown on the card
            (regions removed by review among them) and kept in provenance.json.
        transform: the ``Unsafe2Safe`` used (or its saved ``u2s_config.json`` record), for the card and provenance.
        token: a Hub token; by default huggingface_hub's usual sources (``HF_TOKEN``, ``hf auth login``).
        endpoint: the Hub endpoint; by default ``HF_ENDPOINT`` or huggingface.co.
        max_shard_size: largest parquet shard, in bytes or as ``"500MB"``.
    """
    from datasets import Dataset, DatasetDict
    from datasets.utils.py_utils import convert_file_size_to_int
    from huggingface_hub import constants

    if isinstance(ds, DatasetDict):
        splits = dict(ds)
    elif isinstance(ds, Dataset):
        splits = {str(ds.split) if ds.split else "train": ds}
    else:
        raise TypeError(f"push_safe_dataset publishes a datasets.Dataset or DatasetDict, not {type(ds).__name__}")
    if not splits:
        raise ValueError("The DatasetDict has no splits to publish")
    if "/" not in repo_id:
        raise ValueError(f"repo_id must be 'namespace/name', got {repo_id!r}")
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format={image_format!r} is not one of {', '.join(IMAGE_FORMATS)}")
    if gated not in (None, False, *GATED_CHOICES):
        raise ValueError(f"gated={gated!r} is not one of {', '.join(GATED_CHOICES)}")
    if isinstance(keep_columns, str):
        keep_columns = (keep_columns,)
    if dry_run is None and constants.is_offline_mode():
        raise PublishError("The Hub is unreachable in offline mode (HF_HUB_OFFLINE is set); use dry_run=FOLDER to stage the files")

    anonymization = as_anonymization(transform)
    if not anonymization.known:
        logger.warning("No record of the anonymization settings was given (transform=); the card will say they are unknown")
    first = next(iter(splits.values()))
    license = license or getattr(first.info, "license", None) or None
    if license is None:
        logger.warning("The source's license is unknown; the card says 'unknown'. Pass license= to set it")
    options = dict(
        image_column=image_column, keep_columns=tuple(keep_columns), drop_failed=drop_failed,
        allow_text_columns=allow_text_columns, image_format=image_format, image_quality=image_quality,
        max_shard_size=convert_file_size_to_int(max_shard_size), source_dataset=source_dataset, license=license,
        pretty_name=pretty_name, task_categories=task_categories, metrics=metrics, review=review, private=private, gated=gated,
    )

    if dry_run is not None:
        folder = Path(dry_run)
        if folder.exists() and any(folder.iterdir()):
            raise FileExistsError(f"The staging folder {folder} is not empty; give a new or empty folder")
        folder.mkdir(parents=True, exist_ok=True)
        try:
            files, counts = stage(splits, folder, repo_id, anonymization, **options)
        except Exception:  # e.g. a kept file unreadable in a later split: no half-staged dataset is left
            for path in list(folder.iterdir()):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            raise
        logger.info("Staged %d files for %s in %s (dry run, nothing uploaded)", len(files), repo_id, folder)
        return PublishResult(repo_id, files, counts, staging_dir=str(folder))

    with tempfile.TemporaryDirectory(prefix="u2s-publish-") as tmp:
        files, counts = stage(splits, Path(tmp), repo_id, anonymization, **options)
        url, commits = upload(Path(tmp), files, repo_id, private=private, gated=gated, token=token, endpoint=endpoint)
    logger.info("Published %s: %d rows in %d files", repo_id, counts["total"]["rows"], len(files))
    return PublishResult(repo_id, files, counts, url=url, commits=commits)
