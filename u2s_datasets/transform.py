"""Unsafe2Safe: the ``datasets.map`` callable that adds a privacy-safe image and its triplet."""

import hashlib
import logging
import os
from typing import Optional, Sequence

import numpy as np

from . import batch_io
from . import columns as C
from .config import resolve_config
from .edit.masks import region_mask
from .inspect import column_regions
from .imaging.decode import ImageError, decode
from .imaging.compose import compose, redacted_like
from .imaging.modes import inspection_views, to_rgb
from .imaging.metadata_policy import policy_of
from .overlap import run_parts
from .records import EditRequest, Inspection
from .registry import resolve
from .rows import Row, batched_with_row_retry, call_with_timeout, unchanged

logger = logging.getLogger(__name__)


class Unsafe2Safe:
    """Turn a batch of images into privacy-safe images plus the Unsafe2Safe triplet.

    Use it with ``ds.map(Unsafe2Safe(), batched=True)``; add ``with_rank=True, num_proc=N``
    to spread model-backed presets over GPUs, ``with_indices=True`` to have errors name the
    dataset's row. The object holds configuration only: models load on the first call in each
    process and are never pickled, so the map fingerprint depends on the settings alone.

    Args:
        preset: ``"local"`` (offline detectors and classical region editing) or ``"paper"``.
        image_column: the column holding the images (PIL, ``{"bytes", "path"}``, arrays or paths).
        class_column: optional column with the class of each image; the public caption keeps it.
            Without one, a dataset's only ``ClassLabel`` column is used.
        class_names: names for integer class ids (default: the ``ClassLabel``'s names).
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
        if not isinstance(image_column, str) or not image_column:
            raise TypeError(f"image_column must be a column name, got {image_column!r}")
        if self.config.inspect.regions_column == image_column:
            raise ValueError(f"regions_column={image_column!r} is the image column; name the column that holds the boxes")
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
    def __call__(self, batch, *args) -> dict:
        """``batch`` from ``ds.map(..., batched=True)``; ``args`` are datasets' indices and/or rank."""
        indices, rank = _indices_and_rank(args)
        table = batch_io.arrow_of(batch)
        names = table.column_names if table is not None else list(batch.keys())
        if self.image_column not in names:
            raise KeyError(self._missing_column_message(names))
        values = batch_io.image_values(batch, table, self.image_column)
        labels = self._class_labels(batch, table, len(values), indices)
        rows = [Row(i, None if indices is None else indices[i]) for i in range(len(values))]
        for row, given in zip(rows, column_regions.column_values(self.config, batch, table, names, len(values))):
            row.given_regions = given
        stages = self._load_stages(rank)
        # Parts are prepared and encoded in a worker while the editor edits (overlap.py).
        grey = getattr(stages[0], "reads_grey", False)
        run_parts(self._parts(rows, values, grey), lambda part: self._prepare_part(stages, part, labels),
                  lambda part: self._run_editor(stages[2], part), lambda part: self._finish_part(stages, part),
                  overlap=self.config.model.overlap, small=self._shares_memory)
        failed = [r for r in rows if r.error is not None]
        if failed:
            logger.warning("%d of %d rows failed (first: %s: %s)", len(failed), len(rows), failed[0].name, failed[0].error)
        kept = [r for r in rows if not (r.error is not None and self.config.output.on_error == "drop")]
        columns = {name: [r.columns[name] for r in kept] for name in C.OUTPUT_FEATURES}
        if table is not None:
            return batch_io.output_table(table, [r.index for r in kept], columns)
        return self._output_dict(batch, rows, kept, columns)

    def _parts(self, rows, values, grey: bool = False):
        """Rows decoded and grouped so that the decoded pixels of one group stay under the budget.

        ``grey``: the inspector reads single-channel views, so a grey image is seen in "L" (a
        quarter of an RGB view's memory) and turned to RGB only if it is edited.
        """
        budget, part, pixels = self.config.output.batch_pixel_budget, [], 0
        bake = policy_of(self.config.output).bake_orientation
        for row, value in zip(rows, values):
            try:
                row.decoded = decode(value, self.config.output.max_image_pixels, bake)
                row.views = inspection_views(row.decoded.image, grey=grey)
                row.rgb = row.views[0]
            except ImageError as e:
                row.fail(_without_directories(str(e), value), size=e.size)
                self._raise_if_asked(row)
            size = row.decoded.image.size[0] * row.decoded.image.size[1] if row.decoded else 0
            if part and pixels + size > budget:
                yield part
                part, pixels = [], 0
            part.append(row)
            pixels += size
        if part:
            yield part

    def _shares_memory(self, rows) -> bool:
        """Whether a part is small enough to be alive next to two others within the pixel budget."""
        pixels = sum(r.decoded.image.size[0] * r.decoded.image.size[1] for r in rows if r.decoded is not None)
        return 3 * pixels <= self.config.output.batch_pixel_budget

    def _prepare_part(self, stages, rows, labels) -> list:
        """Inspect and instruct ``rows``; the rows that need no edit are encoded now. Returns the rows to edit."""
        inspector, instructor, _, _ = stages
        live = [r for r in rows if r.error is None]
        column_regions.read_into_rows(self.config, live)  # a malformed box fails its row here
        live = [r for r in live if r.error is None]
        if inspector is not None:
            self._run_inspection(inspector, live, labels)
        column_regions.add_to_rows(self.config, live, labels)
        private = [r for r in live if r.error is None and r.inspection.is_private]
        self._run_instruction(instructor, private)
        for row in rows:
            self._raise_if_asked(row)
        to_edit = [r for r in private if r.error is None]
        settings = self.config.edit
        for row in to_edit:
            row.rgb = to_rgb(row.rgb)  # editors work on RGB (grey views are kept in "L" until here)
            boxes = [r.box for r in row.inspection.regions]
            row.mask = region_mask(row.rgb.size, boxes, settings.region_margin, settings.feather) if settings.edit_scope == "regions" else None
        editing = {id(r) for r in to_edit}
        for row in rows:
            if id(row) not in editing:
                row.finish(self.config.output)  # encode now, so decoded pixels never pile up
        return to_edit

    def _finish_part(self, stages, rows):
        """Verify the edited ``rows`` and encode them."""
        verifier = stages[3]
        if verifier is not None:
            self._verify(verifier, [r for r in rows if r.status == C.STATUS_EDITED])
        for row in rows:
            row.finish(self.config.output)

    # -- stages
    def _load_stages(self, rank):
        if self._stages is None or self._stages_rank != rank:
            inspector = None
            if not self._given_only:  # regions_mode="only": the column's boxes are the whole of stage 1
                inspector = resolve("inspector", self.config.inspect.stage1_backend)(self.config, rank=rank)
            instructor = resolve("instructor", self.config.instruct.instructor)(self.config, rank=rank, inspector=inspector)
            editor = resolve("editor", self.config.edit.editor)(self.config, rank=rank)
            verifier = None
            if self.config.edit.verify_edits:
                from .inspect.verify import EditVerifier

                verifier = EditVerifier(self.config)
            self._stages, self._stages_rank = (inspector, instructor, editor, verifier), rank
        return self._stages

    def _run_inspection(self, inspector, rows, labels):
        # Every view of a row (images with alpha have several) is inspected; any finding counts.
        views = [(row, view) for row in rows for view in row.views]
        results = batched_with_row_retry(
            lambda batch: inspector.inspect([view for _, view in batch], [labels[row.index] for row, _ in batch]), views, "inspection"
        )
        per_row = {}
        for (row, _), result in zip(views, results):
            if isinstance(result, Exception):
                result = Inspection.failed(f"inspection failed ({type(result).__name__}: {result})")
            per_row.setdefault(row.index, []).append(result)
        for row in rows:
            row.inspection = _merged(per_row[row.index])
            if row.inspection.error:
                row.fail(row.inspection.error)

    @property
    def _given_only(self) -> bool:
        return self.config.inspect.regions_column is not None and self.config.inspect.regions_mode == "only"

    def _run_instruction(self, instructor, rows):
        results = batched_with_row_retry(lambda batch: instructor.instruct([r.inspection for r in batch]), rows, "instruction")
        for row, result in zip(rows, results):
            if isinstance(result, Exception):
                row.fail(f"instruction failed ({type(result).__name__}: {result})")
            else:
                row.instruction = result

    def _run_editor(self, editor, rows):
        """Edit ``rows`` (their masks are built by ``_prepare_part``)."""
        settings = self.config.edit
        seeded = getattr(editor, "uses_seed", True)  # hashing every image costs time the classical editors don't need
        requests = [EditRequest(r.rgb, r.inspection, r.instruction, r.mask, self._row_seed(r) if seeded else 0) for r in rows]
        run = call_with_timeout(editor.edit, settings.edit_timeout, "the editor")
        results = batched_with_row_retry(run, requests, "editing", check=_is_image)
        for row, result in zip(rows, results):
            if isinstance(result, Exception):
                # Known private, editor failed: the whole image is redacted.
                self._redact(row, f"editor failed ({type(result).__name__}: {str(result)[:160]})")
                continue
            if result.size != row.rgb.size:
                result = result.resize(row.rgb.size)
            safe = compose(row.decoded.image, result, row.mask)
            if unchanged(row.decoded.image, safe, row.mask):
                logger.warning("the editor left a private image unchanged; redacting it")
                self._redact(row, "editor changed nothing")
            else:
                row.safe, row.status = safe, C.STATUS_EDITED

    def _verify(self, verifier, rows):
        """Look for faces and text again in the edited regions; fill what is still there."""
        for row in rows:
            leaks = verifier.leaks(row.rgb, row.safe, row.inspection.regions)
            if not leaks:
                continue
            logger.warning("%s: still recognisable after editing (%s); filling the regions", row.name, ", ".join(leaks))
            if row.mask is None and not row.inspection.regions:
                self._redact(row, "still recognisable after editing: " + ", ".join(leaks))
                continue
            mask = row.mask if row.mask is not None else region_mask(
                row.rgb.size, [r.box for r in row.inspection.regions], self.config.edit.region_margin, self.config.edit.feather
            )
            fill = resolve("editor", "fill")(self.config).edit([EditRequest(row.rgb, row.inspection, row.instruction, mask)])[0]
            row.safe = compose(row.safe, fill, mask)
            row.status = C.STATUS_ESCALATED
            row.notes.append("filled: " + ", ".join(leaks))

    def _redact(self, row, why):
        row.safe = compose(row.decoded.image, redacted_like(row.decoded.image), None)
        row.status = C.STATUS_REDACTED
        row.notes.append(why)

    def _row_seed(self, row) -> int:
        # Same row, same seed, whatever the batch, batch size or worker.
        digest = hashlib.sha256(str(self.config.edit.seed).encode() + row.rgb.tobytes()).digest()
        return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF

    # -- output of plain (non-Arrow) batches: IterableDataset.map and direct calls
    def _output_dict(self, batch, rows, kept, columns) -> dict:
        out = dict(columns)
        out[C.SAFE_IMAGE] = [_pil_or_none(image) for image in columns[C.SAFE_IMAGE]]
        if len(kept) != len(rows):
            # Dropping rows: every input column must shrink with them.
            for name in batch.keys():
                if name not in out:
                    column = batch[name]
                    out[name] = [column[r.index] for r in kept]
        return out

    def _raise_if_asked(self, row):
        if self.config.output.on_error == "raise" and row.error is not None:
            raise ValueError(f"{row.name}: {row.error}")

    def _class_labels(self, batch, table, n, indices) -> list:
        features = batch_io.features_of(table)
        column = self.class_column or batch_io.single_class_label_column(features)
        if column is None:
            return [None] * n
        names = self.class_names or batch_io.class_names_from(features, column)
        if column not in (table.column_names if table is not None else batch.keys()):
            raise KeyError(f"class_column {column!r} is not in the dataset; columns: {', '.join(batch.keys())}")
        values = table.column(column).to_pylist() if table is not None else batch[column]
        labels = []
        for index, value in enumerate(values):
            if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and names is not None:
                if value < 0:  # datasets' ClassLabel marks a missing label with -1
                    value = None
                elif value >= len(names):
                    row = f"Row {indices[index]} of the dataset" if indices is not None else f"Row {index} of the batch"
                    raise ValueError(f"{row}: class id {value} is out of range for {len(names)} class names")
                else:
                    value = names[int(value)]
            labels.append(None if value is None else str(value))
        return labels

    def _missing_column_message(self, existing) -> str:
        return (
            f"Image column {self.image_column!r} not found; the dataset has: {', '.join(existing) or '(no columns)'}. "
            "Pass image_column= to Unsafe2Safe."
        )


def _indices_and_rank(args):
    """datasets passes ``indices`` (with_indices) then ``rank`` (with_rank), positionally."""
    indices, rank = None, None
    for arg in args:
        if isinstance(arg, (list, tuple, range, np.ndarray)):
            indices = list(arg)
        elif isinstance(arg, int) or arg is None:
            rank = arg
        else:
            raise TypeError(f"unexpected argument {arg!r}: Unsafe2Safe takes (batch, [indices], [rank])")
    return indices, rank


def _merged(inspections: list) -> Inspection:
    """One verdict from the inspections of several views of an image: private if any view is."""
    first = inspections[0]
    if len(inspections) == 1:
        return first
    failed = next((i for i in inspections if i.error), None)
    if failed is not None:
        return failed
    private = [i for i in inspections if i.is_private]
    if not private:
        return first
    main = private[0]
    categories = list(dict.fromkeys(c for i in private for c in i.categories))
    regions = [r for i in private for r in i.regions]
    review = [item for i in private for item in i.review]
    return Inspection(True, categories, main.private_caption, main.public_caption, regions, review)


def _is_image(result) -> Optional[str]:
    from PIL import Image

    return None if isinstance(result, Image.Image) else f"the editor returned {type(result).__name__}, not an image"


def _pil_or_none(image):
    from .imaging.encode import dataset_image

    return None if image is None else dataset_image(image["bytes"])


def _without_directories(message: str, value) -> str:
    """Error messages name files, never the folders above them (a folder name can name a person)."""
    path = value.get("path") if isinstance(value, dict) else value if isinstance(value, (str, os.PathLike)) else None
    if path:
        message = message.replace(str(path), os.path.basename(str(path)))
    return message
