"""Run the transform over a whole dataset and sum up what happened (used by the CLI and demo)."""

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field

import datasets

from . import __version__
from . import columns as C

CONFIG_FILE = "u2s_config.json"


@dataclass
class Summary:
    rows: int = 0
    flagged: int = 0
    edited: int = 0
    passthrough: int = 0
    redacted: int = 0
    errors: int = 0
    seconds: float = 0.0
    categories: dict = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        return (
            f"{self.rows} rows: {self.flagged} flagged private, {self.edited} edited, {self.passthrough} passed through, "
            f"{self.redacted} redacted, {self.errors} errors; {self.images_per_second:.2f} images/s"
        )


def anonymize(ds, transform, batch_size: int = 8, num_proc=None, desc: str = "Unsafe2Safe"):
    """``ds.map`` with the transform over a Dataset or each split of a DatasetDict; returns (result, Summary)."""
    start = time.perf_counter()
    if isinstance(ds, datasets.DatasetDict):
        result = datasets.DatasetDict({name: _map(split, transform, batch_size, num_proc, f"{desc} [{name}]") for name, split in ds.items()})
        parts = list(result.values())
    else:
        result = _map(ds, transform, batch_size, num_proc, desc)
        parts = [result]
    summary = summarize(parts)
    summary.seconds = time.perf_counter() - start
    return result, summary


def _map(ds, transform, batch_size, num_proc, desc):
    # Undecoded images: a corrupt file reaches the transform (and gets a status) instead of
    # crashing inside the dataset's decoder; passthrough rows keep their exact bytes.
    if isinstance(ds.features.get(transform.image_column), datasets.Image):
        ds = ds.cast_column(transform.image_column, datasets.Image(decode=False))
    features = transform.features(ds.features)
    return ds.map(
        transform,
        batched=True,
        batch_size=batch_size,
        num_proc=num_proc,
        with_rank=num_proc is not None,
        features=features,
        desc=desc,
    )


def summarize(parts) -> Summary:
    summary, categories = Summary(), Counter()
    for part in parts:
        table = part.select_columns([C.STATUS, C.IS_PRIVATE, C.PRIVACY_CATEGORIES]).to_dict()
        statuses = table[C.STATUS]
        summary.rows += len(statuses)
        summary.flagged += sum(bool(p) for p, s in zip(table[C.IS_PRIVATE], statuses) if not C.is_error(s))
        summary.edited += statuses.count(C.STATUS_EDITED)
        summary.passthrough += statuses.count(C.STATUS_PASSTHROUGH)
        summary.redacted += statuses.count(C.STATUS_REDACTED)
        summary.errors += sum(C.is_error(s) for s in statuses)
        for found in table[C.PRIVACY_CATEGORIES]:
            categories.update(found)
    summary.categories = dict(sorted(categories.items()))
    return summary


def write_config(folder: str, transform) -> None:
    """The settings that made a saved dataset, beside it, for publishing and provenance."""
    payload = {
        "config": transform.config.to_dict(),
        "config_hash": transform.config.hash(),
        "image_column": transform.image_column,
        "package_version": __version__,
    }
    with open(os.path.join(folder, CONFIG_FILE), "w") as f:
        json.dump(payload, f, indent=2)

