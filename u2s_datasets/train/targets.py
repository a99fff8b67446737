"""FlowEdit training targets: each pair's safe target made by SD3 FlowEdit, as the paper made its editor's.

``FlowEditTargets`` is a ``datasets.map`` callable (batched, ``with_rank`` for several GPUs):
it holds settings only, loads the editor on its first call in each process, on
``cuda:{rank % n}``, and writes the target as lossless PNG. The edit goes from the row's
private caption to its public caption with the edit (``edit.flowedit.target_prompt``); the
whole image is kept (``edit_scope="global"``, the paper's targets) unless ``edit_scope="regions"``
asks for the edit only inside the row's privacy regions. A row the editor fails on (error,
timeout, output identical to the source) gets no target and an error instead: it never
becomes a pair whose target is not an edit.
"""

import hashlib
import io
import logging

from .. import columns as C
from ..config import resolve_config
from ..edit.masks import region_mask
from ..imaging.compose import compose
from ..records import EditRequest, Inspection, Instruction, Region
from ..registry import resolve
from ..rows import batched_with_row_retry, call_with_timeout

logger = logging.getLogger(__name__)

TARGET_ERROR = "_u2s_target_error"
# The paper's FlowEdit targets: whole images, seed 42.
TARGET_DEFAULTS = dict(editor="flowedit", edit_scope="global", seed=42)


def flowedit_config(**settings):
    """The editor configuration of FlowEdit targets: ``settings`` over the paper's (any setting of ``u2s_datasets.config``)."""
    return resolve_config(**{**TARGET_DEFAULTS, **settings})


class FlowEditTargets:
    """``pairs.map(FlowEditTargets(...), batched=True)``: adds the target image column and an error per row (None when made)."""

    def __init__(self, source_column: str, target_column: str, **settings):
        self.config = flowedit_config(**settings)
        self.source_column, self.target_column = source_column, target_column
        self._editor = None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._editor = None

    def editor(self, rank=None):
        if self._editor is None:
            self._editor = resolve("editor", self.config.edit.editor)(self.config, rank=rank)
        return self._editor

    def __call__(self, batch, rank=None) -> dict:
        settings = self.config.edit
        sources = [image.convert("RGB") for image in batch[self.source_column]]
        requests = [self._request(batch, i, image) for i, image in enumerate(sources)]
        run = call_with_timeout(self.editor(rank).edit, settings.edit_timeout, "FlowEdit")
        results = batched_with_row_retry(run, requests, "FlowEdit targets", check=lambda r: None if r is not None else "no image")
        targets, errors = [], []
        for source, request, result in zip(sources, requests, results):
            if not isinstance(result, Exception):
                result = compose(source, result.resize(source.size), request.mask)
                if result.tobytes() == source.tobytes():
                    result = RuntimeError("the editor changed nothing")
            if isinstance(result, Exception):
                targets.append(None)
                errors.append(f"{type(result).__name__}: {str(result)[:200]}")
            else:
                targets.append({"bytes": _png(result), "path": None})
                errors.append(None)
        return {self.target_column: targets, TARGET_ERROR: errors}

    def _request(self, batch, i, image) -> EditRequest:
        settings = self.config.edit
        regions = [Region(r["category"], tuple(r["box"])) for r in _value(batch, C.PRIVACY_REGIONS, i) or []]
        inspection = Inspection(True, [], _value(batch, C.PRIVATE_CAPTION, i) or "", _value(batch, C.PUBLIC_CAPTION, i) or "", regions)
        instruction = Instruction(_value(batch, C.EDIT_INSTRUCTION, i) or "", _value(batch, C.TARGET_CAPTION, i) or "")
        mask = None
        if settings.edit_scope == "regions":
            mask = region_mask(image.size, [r.box for r in regions], settings.region_margin, settings.feather)
        return EditRequest(image, inspection, instruction, mask, row_seed(settings.seed, image))


def _value(batch, column, i):
    return batch[column][i] if column in batch else None


def row_seed(seed: int, image) -> int:
    """Same row, same noise, whatever its batch or worker: a digest of the seed and the pixels."""
    digest = hashlib.sha256(str(seed).encode() + image.tobytes()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def add_flowedit_targets(pairs, source_column: str, target_column: str, settings: dict, num_proc=None):
    """``pairs`` with a FlowEdit target per row and the error column (rows still to be dropped by the caller)."""
    import datasets

    maker = FlowEditTargets(source_column, target_column, **settings)
    if num_proc is not None:
        import multiprocess

        multiprocess.set_start_method("spawn", force=True)  # CUDA cannot start in forked workers
    features = datasets.Features({**pairs.features, target_column: datasets.Image(), TARGET_ERROR: datasets.Value("string")})
    return pairs.map(maker, batched=True, batch_size=maker.config.edit.edit_batch_size, with_rank=num_proc is not None, num_proc=num_proc,
                     features=features, desc="FlowEdit targets")
