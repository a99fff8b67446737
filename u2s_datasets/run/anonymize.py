"""Run the transform over a whole dataset and sum up what happened (used by the CLI and demo)."""

import json
import os
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import datasets

from .. import __version__
from .. import columns as C

CONFIG_FILE = "u2s_config.json"


@dataclass
class Summary:
    rows: int = 0
    flagged: int = 0
    edited: int = 0
    escalated: int = 0
    passthrough: int = 0
    redacted: int = 0
    errors: int = 0
    seconds: float = 0.0
    categories: dict = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def add(self, statuses, is_private, categories) -> None:
        """Count one batch of output rows."""
        found = Counter(self.categories)
        for status, private, names in zip(statuses, is_private, categories):
            base = C.base_status(status)
            self.rows += 1
            self.flagged += bool(private) and not C.is_error(status)
            self.edited += base == C.STATUS_EDITED
            self.escalated += base == C.STATUS_ESCALATED
            self.passthrough += base == C.STATUS_PASSTHROUGH
            self.redacted += base == C.STATUS_REDACTED
            self.errors += C.is_error(status)
            found.update(names or [])
        self.categories = dict(sorted(found.items()))

    def to_dict(self) -> dict:
        return {**asdict(self), "images_per_second": round(self.images_per_second, 3)}

    def __str__(self) -> str:
        return (
            f"{self.rows} rows: {self.flagged} flagged private, {self.edited} edited, "
            + (f"{self.escalated} escalated (filled after a weak edit), " if self.escalated else "")
            + f"{self.passthrough} passed through, {self.redacted} redacted, {self.errors} errors; "
            f"{self.images_per_second:.2f} images/s"
        )


def anonymize(ds, transform=None, batch_size: int = 8, num_proc=None, desc: str = "Unsafe2Safe", cache_dir=None, **settings):
    """The whole transform done right over a ``Dataset``, ``DatasetDict`` or ``IterableDataset``.

    ``transform`` is an ``Unsafe2Safe``; without one, ``settings`` build it (``preset``,
    ``image_column``, ``editor``, ...). Images are read undecoded, the output is typed, errors
    name dataset rows, several GPUs get one spawned worker each, and datasets' cache files go to
    ``cache_dir`` (default: a temporary folder), never beside the input's own files.

    Returns ``(result, summary)``. For an ``IterableDataset`` nothing runs until it is iterated;
    the summary fills in as rows stream out.
    """
    if transform is None:
        from ..transform import Unsafe2Safe

        transform = Unsafe2Safe(**settings)
    elif settings:
        raise TypeError(f"pass settings to Unsafe2Safe or here, not both: {', '.join(settings)}")
    num_proc = _workers(transform, num_proc)
    start, summary = time.perf_counter(), Summary()
    if isinstance(ds, (datasets.IterableDataset, datasets.IterableDatasetDict)):
        return _map_iterable(ds, transform, batch_size, summary, start), summary
    cache_dir = cache_dir or tempfile.mkdtemp(prefix="u2s-cache-")
    if isinstance(ds, datasets.DatasetDict):
        result = datasets.DatasetDict(
            {name: _map(split, transform, batch_size, num_proc, f"{desc} [{name}]", cache_dir, name) for name, split in ds.items()}
        )
        parts = list(result.values())
    elif isinstance(ds, datasets.Dataset):
        result = _map(ds, transform, batch_size, num_proc, desc, cache_dir, "data")
        parts = [result]
    else:
        raise TypeError(f"anonymize takes a datasets Dataset, DatasetDict or IterableDataset, not {type(ds).__name__}")
    for part in parts:
        summary.add(*_status_columns(part))
    summary.seconds = time.perf_counter() - start
    return result, summary


def _workers(transform, num_proc):
    """One spawned worker per GPU for model-backed runs when the caller did not choose."""
    if num_proc is not None or transform.config.edit.editor in ("blur", "pixelate", "fill", "inpaint"):
        return num_proc
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count <= 1:
        return None
    import multiprocess

    multiprocess.set_start_method("spawn", force=True)  # CUDA cannot be used in forked workers
    return count


def _map(ds, transform, batch_size, num_proc, desc, cache_dir, name):
    if transform.image_column in ds.features and isinstance(ds.features[transform.image_column], datasets.Image):
        ds = ds.cast_column(transform.image_column, datasets.Image(decode=False))
    return ds.map(
        transform,
        batched=True,
        batch_size=batch_size,
        num_proc=num_proc,
        with_indices=True,
        with_rank=num_proc is not None,
        features=transform.features(ds.features),
        cache_file_name=os.path.join(cache_dir, f"{name}-{transform.config.hash()}.arrow"),
        desc=desc,
    )


def _map_iterable(ds, transform, batch_size, summary, start):
    def count(batch):
        summary.add(batch[C.STATUS], batch[C.IS_PRIVATE], batch[C.PRIVACY_CATEGORIES])
        summary.seconds = time.perf_counter() - start
        return {}

    def one(split):
        features = split.features
        if features is not None and isinstance(features.get(transform.image_column), datasets.Image):
            split = split.cast_column(transform.image_column, datasets.Image(decode=False))
            features = split.features
        mapped = split.map(
            transform, batched=True, batch_size=batch_size, with_indices=True,
            features=transform.features(features) if features is not None else None,
        )
        return mapped.map(count, batched=True, batch_size=batch_size)

    if isinstance(ds, datasets.IterableDatasetDict):
        return datasets.IterableDatasetDict({name: one(split) for name, split in ds.items()})
    return one(ds)


def _status_columns(part):
    table = part.select_columns([C.STATUS, C.IS_PRIVATE, C.PRIVACY_CATEGORIES]).to_dict()
    return table[C.STATUS], table[C.IS_PRIVATE], table[C.PRIVACY_CATEGORIES]


def summarize(parts) -> Summary:
    summary = Summary()
    for part in parts:
        summary.add(*_status_columns(part))
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

