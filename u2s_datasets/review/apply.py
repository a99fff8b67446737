"""``apply_review``: write the review's decisions into a saved output, re-rendering only the rows they change."""

import datetime
import hashlib
import json
import logging
import os
import shutil
import tempfile

import datasets
from tqdm.auto import tqdm

from .. import columns as C
from ..imaging.decode import ImageError
from . import decisions
from .rerender import Rerenderer, transform_of_run
from .saved import CONFIG_FILE, SavedOutput

logger = logging.getLogger(__name__)
_SAVED_FILES = ("dataset_info.json", "state.json", "dataset_dict.json")


def apply_review(folder: str, out: str = None) -> dict:
    """Re-render the rows whose review changes them and record the review in the run's ``u2s_config.json``.

    The rows are rewritten in ``folder`` (through a temporary folder and a rename) or, with ``out``,
    into a new folder that also receives the review file and run record. Returns what was done.
    """
    output = SavedOutput(folder)
    lines = decisions.read(folder)
    reviews = decisions.replay(lines)
    changed = [row for row in output.rows if row.key in reviews and reviews[row.key].changes(row)]
    summary = {"rows_reviewed": sum(1 for row in output.rows if row.key in reviews), "rows_rerendered": 0, "failed": []}
    new_columns = {}
    if changed:
        renderer = Rerenderer(transform_of_run(output.run))
        for row in tqdm(changed, desc="Re-rendering reviewed rows", unit="row"):
            original = _original(output, row)
            try:
                new_columns[(row.split, row.index)] = renderer.columns(original, row, reviews[row.key])
            except ImageError as e:
                logger.warning("%s: the original image cannot be read again (%s); the row is left as it was", row.name, e)
                summary["failed"].append(row.key)
    summary["rows_rerendered"] = len(new_columns)
    summary["rows"] = [decisions.row_key(split, index) for split, index in sorted(new_columns)]
    record = _provenance(folder, lines, summary, output.run)
    target = out or folder
    if new_columns or out:
        _write(output, new_columns, target)
    run_path = os.path.join(target, CONFIG_FILE)
    if output.run or os.path.exists(run_path):
        with open(run_path, "w", encoding="utf-8") as f:
            json.dump({**output.run, "review": record}, f, indent=2)
    return summary


def _original(output, row):
    column = output.image_column
    ds = output.splits[row.split].select_columns([column]).cast_column(column, datasets.Image(decode=False))
    return ds[row.index][column]


def _provenance(folder, lines, summary, run) -> dict:
    path = os.path.join(folder, decisions.REVIEW_FILE)
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest() if os.path.exists(path) else None
    edit = (run.get("config") or {}).get("edit") or {}
    return {
        "applied_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "review_file": decisions.REVIEW_FILE,
        "review_file_sha256": digest,
        "decisions": len(lines),
        "reviewers": sorted({line.get("reviewer", "unknown") for line in lines}),
        "rows_reviewed": summary["rows_reviewed"],
        "rows_rerendered": summary["rows_rerendered"],
        "rerendered": summary["rows"],
        "editor": edit.get("editor"),
        "seed": edit.get("seed"),
        "stage1_rerun": False,
    }


def _write(output, new_columns, target):
    """The whole dataset with the new rows, saved beside ``target`` and then moved into its place."""
    parent = os.path.dirname(os.path.abspath(target))
    staging = tempfile.mkdtemp(prefix=".u2s-review-", dir=parent)
    try:
        splits = {}
        for split, ds in output.splits.items():
            splits[split] = _with_rows(ds, split, output.image_column, new_columns, staging)
        saved = os.path.join(staging, "dataset")
        result = splits[""] if list(splits) == [""] else datasets.DatasetDict(splits)
        result.save_to_disk(saved)
        for name in os.listdir(output.folder):  # the review file, the run record and anything else kept there
            source = os.path.join(output.folder, name)
            if name not in _SAVED_FILES and not name.endswith(".arrow") and name not in output.splits and os.path.isfile(source):
                shutil.copy2(source, os.path.join(saved, name))
        _replace(saved, target, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _with_rows(ds, split, image_column, new_columns, staging):
    indices = {index: columns for (row_split, index), columns in new_columns.items() if row_split == split}
    features = ds.features
    if not indices:
        return ds
    raw = ds.cast_column(image_column, datasets.Image(decode=False)).cast_column(C.SAFE_IMAGE, datasets.Image(decode=False))

    names = list(C.OUTPUT_FEATURES)

    def replace(batch, batch_indices):
        out = {name: list(batch[name]) for name in names}
        for position, index in enumerate(batch_indices):
            for name, value in indices.get(index, {}).items():
                out[name][position] = value
        return out

    cache = os.path.join(staging, f"map-{split or 'data'}.arrow")
    mapped = raw.map(replace, batched=True, with_indices=True, features=raw.features, cache_file_name=cache,
                     desc=f"Writing reviewed rows{' of ' + split if split else ''}")
    return mapped.cast_column(image_column, features[image_column]).cast_column(C.SAFE_IMAGE, features[C.SAFE_IMAGE])


def _replace(saved, target, staging):
    if not os.path.exists(target):
        os.rename(saved, target)
        return
    old = os.path.join(staging, "previous")
    os.rename(target, old)
    try:
        os.rename(saved, target)
    except OSError:
        os.rename(old, target)
        raise
