"""Unsafe2Safe: the ``datasets.map`` callable that adds a privacy-safe image and its triplet."""

import hashlib
import logging
from typing import Optional, Sequence

import cv2
import numpy as np

from . import columns as C
from .config import resolve_config
from .edit.masks import region_mask
from .images import ImageError, compose, dataset_image, decode, encode, passthrough_bytes, redacted_like, to_rgb
from .records import EditRequest, Inspection
from .registry import resolve

logger = logging.getLogger(__name__)


class Unsafe2Safe:
    """Turn a batch of images into privacy-safe images plus the Unsafe2Safe triplet.

    Use it with ``ds.map(Unsafe2Safe(), batched=True)``; add ``with_rank=True, num_proc=N``
    to spread model-backed presets over GPUs. The object holds configuration only: models
    load on the first call in each process and are never pickled, so the map fingerprint
    depends on the settings alone.

    Args:
        preset: ``"local"`` (offline detectors and classical region editing) or ``"paper"``.
        image_column: the column holding the images (PIL, ``{"bytes", "path"}``, arrays or paths).
        class_column: optional column with the class of each image; the public caption keeps it.
        class_names: names for integer class ids (e.g. ``ds.features["label"].names``).
        **overrides: any setting of ``u2s_datasets.config`` (``editor="pixelate"``, ``on_error="drop"``, ...).
    """

    def __init__(
        self,
        preset: str = "local",
        image_column: str = "image",
        class_column: Optional[str] = None,
        class_names: Optional[Sequence[str]] = None,
        **overrides,
    ):
        self.config = resolve_config(preset, **overrides)
        self.image_column = image_column
        self.class_column = class_column
        self.class_names = tuple(class_names) if class_names is not None else None
        self._stages = None
        self._stages_rank = None

    # -- pickling: configuration only, so fingerprints are stable and workers load their own models
    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._stages = None
        self._stages_rank = None

    def __repr__(self):
        return f"Unsafe2Safe(preset={self.config.preset!r}, image_column={self.image_column!r}, config_hash={self.config.hash()!r})"

    def features(self, input_features=None):
        """The output ``datasets.Features`` for a dataset with ``input_features``."""
        if input_features is not None and self.image_column not in input_features:
            raise KeyError(self._missing_column_message(list(input_features)))
        return C.output_features(input_features)

    # -- the batch
    def __call__(self, batch: dict, rank: Optional[int] = None) -> dict:
        if self.image_column not in batch:
            raise KeyError(self._missing_column_message(list(batch.keys())))
        values = list(batch[self.image_column])
        rows = [_Row(i) for i in range(len(values))]
        for row, value in zip(rows, values):
            try:
                row.decoded = decode(value, self.config.output.max_image_pixels)
                row.rgb = to_rgb(row.decoded.image)
            except ImageError as e:
                row.fail(str(e), size=e.size)
        self._raise_if_asked(rows, values)

        inspector, instructor, editor = self._load_stages(rank)
        labels = self._class_labels(batch, len(values))
        live = [r for r in rows if r.error is None]
        self._run_inspection(inspector, live, labels)
        private = [r for r in live if r.error is None and r.inspection.is_private]
        self._run_instruction(instructor, private)
        self._run_editor(editor, [r for r in private if r.error is None])
        self._raise_if_asked(rows, values)
        failed = [r for r in rows if r.error is not None]
        if failed:
            logger.warning("%d of %d rows failed (first: row %d, %s)", len(failed), len(rows), failed[0].index, failed[0].error)
        return self._output(batch, rows)

    # -- stages
    def _load_stages(self, rank):
        if self._stages is None or self._stages_rank != rank:
            inspector = resolve("inspector", self.config.inspect.stage1_backend)(self.config, rank=rank)
            instructor = resolve("instructor", self.config.instruct.instructor)(self.config, rank=rank, inspector=inspector)
            editor = resolve("editor", self.config.edit.editor)(self.config, rank=rank)
            self._stages, self._stages_rank = (inspector, instructor, editor), rank
        return self._stages

    def _run_inspection(self, inspector, rows, labels):
        results = _batched_with_row_retry(
            lambda batch: inspector.inspect([r.rgb for r in batch], [labels[r.index] for r in batch]), rows, "inspection"
        )
        for row, result in zip(rows, results):
            if isinstance(result, Exception):
                row.inspection = Inspection.failed(f"inspection failed ({type(result).__name__}: {result})")
            else:
                row.inspection = result
            if row.inspection.error:
                row.fail(row.inspection.error)

    def _run_instruction(self, instructor, rows):
        results = _batched_with_row_retry(lambda batch: instructor.instruct([r.inspection for r in batch]), rows, "instruction")
        for row, result in zip(rows, results):
            if isinstance(result, Exception):
                row.fail(f"instruction failed ({type(result).__name__}: {result})")
            else:
                row.instruction = result

    def _run_editor(self, editor, rows):
        settings = self.config.edit
        for row in rows:
            boxes = [r.box for r in row.inspection.regions]
            row.mask = region_mask(row.rgb.size, boxes, settings.region_margin, settings.feather) if settings.edit_scope == "regions" else None
        seeded = getattr(editor, "uses_seed", True)  # hashing every image costs time the classical editors don't need
        requests = [EditRequest(r.rgb, r.inspection, r.instruction, r.mask, self._row_seed(r) if seeded else 0) for r in rows]
        by_row = {id(req): row for req, row in zip(requests, rows)}
        results = _batched_with_row_retry(editor.edit, requests, "editing")
        for request, result in zip(requests, results):
            row = by_row[id(request)]
            if isinstance(result, Exception):
                # Known private, editor failed twice: the whole image is redacted.
                row.status = C.STATUS_REDACTED
                row.safe = compose(row.decoded.image, redacted_like(row.decoded.image), None)
                continue
            if result.size != row.rgb.size:
                result = result.resize(row.rgb.size)
            safe = compose(row.decoded.image, result, row.mask)
            if _unchanged(row.decoded.image, safe, row.mask):
                # An editor that changed nothing has not made the row safe.
                logger.warning("the editor left a private image unchanged; redacting it")
                safe, row.status = compose(row.decoded.image, redacted_like(row.decoded.image), None), C.STATUS_REDACTED
            else:
                row.status = C.STATUS_EDITED
            row.safe = safe

    def _row_seed(self, row) -> int:
        # Same row, same seed, whatever the batch, batch size or worker.
        digest = hashlib.sha256(str(self.config.edit.seed).encode() + row.rgb.tobytes()).digest()
        return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF

    # -- output
    def _output(self, batch, rows) -> dict:
        output = self.config.output
        kept = [r for r in rows if not (r.error is not None and output.on_error == "drop")]
        out = {name: [] for name in C.OUTPUT_FEATURES}
        for row in kept:
            for name, value in row.columns(output).items():
                out[name].append(value)
        if len(kept) != len(rows):
            # Dropping rows: every input column must shrink with them.
            for name in batch.keys():
                if name not in out:
                    column = batch[name]
                    out[name] = [column[r.index] for r in kept]
        return out

    def _raise_if_asked(self, rows, values):
        if self.config.output.on_error != "raise":
            return
        for row in rows:
            if row.error is not None:
                raise ValueError(f"Row {row.index} of the batch ({_describe(values[row.index])}): {row.error}")

    def _class_labels(self, batch, n) -> list:
        if self.class_column is None:
            return [None] * n
        if self.class_column not in batch:
            raise KeyError(f"class_column {self.class_column!r} is not in the dataset; columns: {', '.join(batch.keys())}")
        labels = []
        for index, value in enumerate(batch[self.class_column]):
            if isinstance(value, (int, np.integer)) and self.class_names is not None:
                if value < 0:  # datasets' ClassLabel marks a missing label with -1
                    value = None
                elif value >= len(self.class_names):
                    raise ValueError(f"Row {index} of the batch: class id {value} is out of range for {len(self.class_names)} class_names")
                else:
                    value = self.class_names[int(value)]
            labels.append(None if value is None else str(value))
        return labels

    def _missing_column_message(self, existing) -> str:
        return (
            f"Image column {self.image_column!r} not found; the dataset has: {', '.join(existing) or '(no columns)'}. "
            "Pass image_column= to Unsafe2Safe."
        )


class _Row:
    """Where one row stands as it moves through the stages."""

    def __init__(self, index):
        self.index = index
        self.decoded = self.rgb = self.inspection = self.instruction = self.mask = self.safe = None
        self.error = self.error_size = None
        self.status = C.STATUS_PASSTHROUGH

    def fail(self, reason, size=None):
        self.error, self.error_size = reason, size

    def columns(self, output) -> dict:
        inspection = self.inspection
        if self.error is not None:
            redacted = redacted_like(self.decoded.image if self.decoded else None, size=self.error_size)
            safe = dataset_image(encode(redacted, None, output.jpeg_quality)) if redacted is not None else None
            return _row_columns(safe, True, [], "", "", "", [], C.STATUS_ERROR_PREFIX + self.error)
        if not inspection.is_private:
            safe = dataset_image(passthrough_bytes(self.decoded, output.jpeg_quality))
            return _row_columns(safe, False, [], inspection.private_caption, inspection.public_caption, "", [], C.STATUS_PASSTHROUGH)
        safe = dataset_image(encode(self.safe, self.decoded.format, output.jpeg_quality, output.image_format))
        return _row_columns(
            safe,
            True,
            list(inspection.categories),
            inspection.private_caption,
            inspection.public_caption,
            self.instruction.instruction if self.instruction else "",
            [r.as_column() for r in inspection.regions],
            self.status,
        )


def _row_columns(safe, is_private, categories, private_caption, public_caption, instruction, regions, status) -> dict:
    return {
        C.SAFE_IMAGE: safe,
        C.IS_PRIVATE: is_private,
        C.PRIVACY_CATEGORIES: categories,
        C.PRIVATE_CAPTION: private_caption,
        C.PUBLIC_CAPTION: public_caption,
        C.EDIT_INSTRUCTION: instruction,
        C.PRIVACY_REGIONS: regions,
        C.STATUS: status,
    }


def _unchanged(original, safe, mask) -> bool:
    """True when no pixel of ``safe`` differs from ``original`` where the mask selects (everywhere without one)."""
    if original.mode != safe.mode:
        original = original.convert(safe.mode)
    if mask is not None:
        x, y, w, h = cv2.boundingRect((mask > 0).astype(np.uint8))
        original, safe = original.crop((x, y, x + w, y + h)), safe.crop((x, y, x + w, y + h))
    return original.tobytes() == safe.tobytes()


def _batched_with_row_retry(run, items, what) -> list:
    """``run(items)`` on the whole batch; if it raises, each item alone once. Failures come back as exceptions."""
    if not items:
        return []
    try:
        results = list(run(items))
        if len(results) != len(items):
            raise RuntimeError(f"{what} returned {len(results)} results for {len(items)} images")
        return results
    except Exception as batch_error:
        logger.warning("%s failed on a batch of %d (%s); retrying each row alone", what, len(items), batch_error)
    results = []
    for item in items:
        try:
            results.append(run([item])[0])
        except Exception as row_error:
            logger.warning("%s failed on a row: %s: %s", what, type(row_error).__name__, row_error)
            results.append(row_error)
    return results


def _describe(value) -> str:
    if isinstance(value, dict):
        return f"path={value.get('path')!r}" if value.get("path") else "bytes"
    if isinstance(value, str):
        return f"path={value!r}"
    return type(value).__name__
