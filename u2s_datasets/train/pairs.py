"""Training pairs from a dataset the transform made: source image, instruction, public caption, safe target.

The target is the row's safe image (``targets="safe_image"``): only rows the editor actually
edited become pairs (status ``edited``, notes after ``"; "`` allowed), since passthrough rows
have nothing to learn and failed rows carry a redaction, not an edit. Or it is made by SD3
FlowEdit (``targets="flowedit"``), as the paper made its editor's targets: every private row
whose inspection finished gets one (``train/targets.py``).

A CLIP filter then keeps the pairs whose edit kept the scene (``train/clip_filter.py``):
``"image-cosine"``, the CLIP image similarity of target and source at least ``clip_threshold``
(0.7) and below 1, or ``"clip-ratio"``, the authors' ``clip_edit / clip_orig > 0.7``. The rest
is split deterministically (``train/splits.py``; seed 42): by fractions, by the reference
code's 95/5 or 75/25, and by a source-split column (COCO train2014 / val2014).
"""

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

import datasets

from .. import columns as C
from .clip_filter import CLIP_FILTERS, PairClip, passes_clip_ratio, passes_image_cosine
from .splits import DEFAULT_SOURCE_SPLITS, DEFAULT_SPLIT, check_split, source_pools, split_pairs

logger = logging.getLogger(__name__)

SOURCE_IMAGE = "source_image"
TARGET_IMAGE = "target_image"
LABEL = "label"
CLIP_SIMILARITY = "clip_similarity"
CLIP_ORIG, CLIP_EDIT = "clip_orig", "clip_edit"  # the reference code's names
PAIRS_FILE = "u2s_pairs.json"
DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14"
TARGETS = ("safe_image", "flowedit")
# Read while the pairs are built (FlowEdit prompts and regions, the CLIP ratio's source text); not part of them.
_WORK_COLUMNS = (C.PRIVATE_CAPTION, C.TARGET_CAPTION, C.PRIVACY_REGIONS)
_POOL = "_u2s_source_split"
_INSPECTED = (C.STATUS_EDITED, C.STATUS_ESCALATED, C.STATUS_REDACTED)  # private rows whose triplet was written


@dataclass
class PairStats:
    """What became of the rows: counts per reason, the targets, the filter and the split used."""

    rows: int = 0
    edited: int = 0
    passthrough: int = 0
    failed: int = 0  # error, escalated and redacted_fallback rows
    candidates: int = 0  # rows that became pairs before the filter
    target_failed: int = 0  # FlowEdit targets that could not be made
    filtered_out: int = 0
    outside_splits: int = 0  # rows whose source split is neither of source_splits
    kept: int = 0
    targets: str = "safe_image"
    clip_filter: Optional[str] = None
    clip_model: Optional[str] = None
    clip_threshold: Optional[float] = None
    split: object = DEFAULT_SPLIT  # three fractions, or "95/5" / "75/25"
    split_by: Optional[str] = None
    source_splits: Optional[Sequence[str]] = None
    seed: int = 42
    split_sizes: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def base_status(status: str) -> str:
    return getattr(C, "base_status", lambda s: s.split(";")[0])(status or "")


def build_pairs(ds, image_column: str = "image", class_column: Optional[str] = None, clip_model: Optional[str] = DEFAULT_CLIP_MODEL,
                clip_threshold: float = 0.7, split=DEFAULT_SPLIT, seed: int = 42, batch_size: int = 16,
                device: Optional[str] = None, with_stats: bool = False, *, clip_filter: str = "image-cosine",
                split_by: Optional[str] = None, source_splits: Sequence[str] = DEFAULT_SOURCE_SPLITS,
                targets: str = "safe_image", target_settings: Optional[dict] = None, num_proc: Optional[int] = None):
    """The training pairs of ``ds`` (a dataset ``Unsafe2Safe`` made) as a ``DatasetDict`` of train/validation/test.

    Columns: ``source_image``, ``edit_instruction``, ``public_caption``, ``target_image``,
    ``label`` (when ``class_column`` is given, or the dataset has a ``ClassLabel`` column), and
    the filter's scores: ``clip_similarity`` (``clip_filter="image-cosine"``; None without a
    filter) or ``clip_orig`` and ``clip_edit`` (``"clip-ratio"``). ``clip_model=None`` skips
    the filter (with a warning).

    ``targets="flowedit"`` makes each target with SD3 FlowEdit; ``target_settings`` are settings
    of ``u2s_datasets.config`` for it (``editor_model``, ``num_inference_steps``, ``edit_batch_size``,
    ``edit_scope``, ``device``, ...; the paper's by default), ``num_proc`` its worker processes (one per GPU).
    ``split``: three fractions, ``"95/5"`` or ``"75/25"``; ``split_by`` a column naming each row's
    source split, ``source_splits`` the training and test split's names in it.
    ``with_stats=True`` returns ``(pairs, PairStats)``.
    """
    if isinstance(ds, datasets.DatasetDict):
        raise ValueError(f"build_pairs takes one split; this DatasetDict has {list(ds)}: pass ds['train'], for instance")
    if targets not in TARGETS:
        raise ValueError(f"targets={targets!r} is not one of {', '.join(map(repr, TARGETS))}")
    if clip_filter not in CLIP_FILTERS:
        raise ValueError(f"clip_filter={clip_filter!r} is not one of {', '.join(map(repr, CLIP_FILTERS))}")
    split = check_split(split)
    needed = [image_column, C.STATUS, C.EDIT_INSTRUCTION, C.PUBLIC_CAPTION]
    needed += [C.SAFE_IMAGE] if targets == "safe_image" else []
    needed += [C.PRIVATE_CAPTION] if targets == "flowedit" or (clip_filter == "clip-ratio" and clip_model) else []
    needed += [split_by] if split_by else []
    missing = [c for c in needed if c not in ds.column_names]
    if missing:
        raise KeyError(f"this dataset lacks {missing}: build pairs from the output of Unsafe2Safe (columns {ds.column_names})")
    class_column = class_column or next((n for n, f in ds.features.items() if isinstance(f, datasets.ClassLabel)), None)

    stats = PairStats(rows=len(ds), targets=targets, clip_filter=clip_filter if clip_model else None, clip_model=clip_model,
                      clip_threshold=clip_threshold if clip_model else None, split=split, split_by=split_by,
                      source_splits=tuple(source_splits) if split_by else None, seed=seed)
    statuses = [base_status(s) for s in ds[C.STATUS]]
    stats.edited = sum(s == C.STATUS_EDITED for s in statuses)
    stats.passthrough = sum(s == C.STATUS_PASSTHROUGH for s in statuses)
    stats.failed = stats.rows - stats.edited - stats.passthrough
    wanted = (C.STATUS_EDITED,) if targets == "safe_image" else _INSPECTED
    candidates = [i for i, s in enumerate(statuses) if s in wanted]
    if not candidates:
        what = "edited rows" if targets == "safe_image" else "private rows with their triplet"
        raise ValueError(f"no {what} among {stats.rows} ({stats.edited} edited, {stats.passthrough} passthrough, "
                         f"{stats.failed} failed): nothing to train on")

    pools = None
    if split_by:  # rows of neither source split get no target and no CLIP pass
        pools = source_pools(ds.select_columns([split_by]).select(candidates)[split_by], source_splits, split_by)
        stats.outside_splits = sum(p is None for p in pools)
        if stats.outside_splits:
            logger.warning("%d rows have a %s naming neither %r nor %r: left out", stats.outside_splits, split_by, *source_splits)
        candidates, pools = [r for r, p in zip(candidates, pools) if p is not None], [p for p in pools if p is not None]
        if not candidates:
            raise ValueError(f"no row's {split_by} names {source_splits[0]!r} or {source_splits[1]!r}")

    stats.candidates = len(candidates)
    pairs = _select(ds, candidates, image_column, class_column, targets, pools)
    if targets == "flowedit":
        pairs = _flowedit_targets(pairs, stats, target_settings or {}, num_proc)
    pairs = _filter(pairs, stats, clip_filter, clip_model, clip_threshold, batch_size, device)
    stats.kept = len(pairs)
    if not stats.kept:
        raise ValueError(f"the CLIP filter ({clip_filter}, {clip_model}, threshold {clip_threshold}) removed all {stats.candidates} pairs")

    pools = pairs[_POOL] if split_by else None
    work = [c for c in (*_WORK_COLUMNS, _POOL) if c in pairs.column_names]
    result = datasets.DatasetDict({name: part.remove_columns(work) for name, part in split_pairs(pairs, split, seed, pools).items()})
    stats.split_sizes = {name: len(part) for name, part in result.items()}
    for part in result.values():  # travels with the splits, through save_to_disk too
        part.info.description = json.dumps({"u2s_pairs": stats.to_dict()})
    logger.info("Pairs: %s", stats.to_dict())
    return (result, stats) if with_stats else result


def _select(ds, rows, image_column, class_column, targets, pools):
    """The candidate rows under the pairs' column names, with the work columns the later steps read."""
    keep = {image_column: SOURCE_IMAGE, C.EDIT_INSTRUCTION: C.EDIT_INSTRUCTION, C.PUBLIC_CAPTION: C.PUBLIC_CAPTION}
    if targets == "safe_image":
        keep[C.SAFE_IMAGE] = TARGET_IMAGE
    if class_column:
        keep[class_column] = LABEL
    keep.update({c: c for c in _WORK_COLUMNS if c in ds.column_names})
    # Flattened: one table of the kept columns (a column added in memory would leave an empty block behind otherwise).
    pairs = ds.select(rows).select_columns(list(keep)).flatten_indices().rename_columns({k: v for k, v in keep.items() if k != v})
    pairs = pairs.cast_column(SOURCE_IMAGE, datasets.Image())
    if targets == "safe_image":
        pairs = pairs.cast_column(TARGET_IMAGE, datasets.Image())
    if pools is not None:
        pairs = pairs.add_column(_POOL, pools, feature=datasets.Value("string"))
    return pairs


def _flowedit_targets(pairs, stats, settings, num_proc):
    from .targets import TARGET_ERROR, add_flowedit_targets

    made = add_flowedit_targets(pairs, SOURCE_IMAGE, TARGET_IMAGE, settings, num_proc)
    errors = made[TARGET_ERROR]
    failed = [e for e in errors if e]
    stats.target_failed = len(failed)
    if failed:
        logger.warning("FlowEdit could not make %d of %d targets (first: %s); those rows are left out", len(failed), len(errors), failed[0])
    if len(failed) == len(errors):
        raise ValueError(f"FlowEdit made none of the {len(errors)} targets: {failed[0]}")
    return made.select([i for i, e in enumerate(errors) if not e]).remove_columns(TARGET_ERROR)


def _filter(pairs, stats, clip_filter, clip_model, threshold, batch_size, device):
    """``pairs`` with the filter's scores, and only the pairs it keeps."""
    if clip_model is None:
        logger.warning("No CLIP filter (clip_model=None): every pair is kept, whatever its edit")
        return pairs.add_column(CLIP_SIMILARITY, [None] * len(pairs), feature=datasets.Value("float32"))
    scorer = PairClip(clip_model, device, batch_size)
    if clip_filter == "image-cosine":
        similarities = scorer.image_cosines(pairs, SOURCE_IMAGE, TARGET_IMAGE)
        pairs = pairs.add_column(CLIP_SIMILARITY, similarities, feature=datasets.Value("float32"))
        passed = [i for i, s in enumerate(similarities) if passes_image_cosine(s, threshold)]
    else:
        from ..edit.flowedit import target_text

        targets = [target_text(p, i, t) for p, i, t in zip(pairs[C.PUBLIC_CAPTION], pairs[C.EDIT_INSTRUCTION], _texts(pairs, C.TARGET_CAPTION))]
        clip_orig = scorer.clip_scores(pairs, SOURCE_IMAGE, [t or "" for t in pairs[C.PRIVATE_CAPTION]], "CLIP scores (sources)")
        clip_edit = scorer.clip_scores(pairs, TARGET_IMAGE, targets, "CLIP scores (targets)")
        pairs = pairs.add_column(CLIP_ORIG, clip_orig, feature=datasets.Value("float32"))
        pairs = pairs.add_column(CLIP_EDIT, clip_edit, feature=datasets.Value("float32"))
        passed = [i for i, (e, o) in enumerate(zip(clip_edit, clip_orig)) if passes_clip_ratio(e, o, threshold)]
    stats.filtered_out = len(pairs) - len(passed)
    return pairs.select(passed)


def _texts(pairs, column) -> list:
    return pairs[column] if column in pairs.column_names else [""] * len(pairs)


def save_pairs(pairs: datasets.DatasetDict, folder: str, stats: PairStats) -> None:
    """``save_to_disk`` plus ``u2s_pairs.json`` (counts, filter, split) beside it, for people and scripts."""
    pairs.save_to_disk(folder)
    with open(os.path.join(folder, PAIRS_FILE), "w") as f:
        json.dump(stats.to_dict(), f, indent=2)


def pair_stats(pairs: datasets.DatasetDict) -> dict:
    """The ``PairStats`` that ``build_pairs`` recorded in the splits' info, as a dict ({} when absent)."""
    try:
        return json.loads(next(iter(pairs.values())).info.description or "{}").get("u2s_pairs", {})
    except (ValueError, StopIteration, AttributeError):
        return {}


def load_pairs(folder: str, **build_options):
    """Pairs from a ``save_pairs`` folder, or built on the fly from a folder ``u2s anonymize`` wrote.

    Returns ``(DatasetDict, stats dict)``.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder!r} is not a folder made by `u2s pairs` or `u2s anonymize`")
    loaded = datasets.load_from_disk(folder)
    if isinstance(loaded, datasets.DatasetDict) and "train" in loaded and SOURCE_IMAGE in loaded["train"].column_names:
        return loaded, pair_stats(loaded)
    if isinstance(loaded, datasets.DatasetDict):
        if len(loaded) != 1:
            raise ValueError(f"{folder!r} holds splits {list(loaded)}; build pairs from one with `u2s pairs --split`")
        loaded = next(iter(loaded.values()))
    image_column = _image_column(folder, loaded)
    pairs, stats = build_pairs(loaded, image_column=image_column, with_stats=True, **build_options)
    return pairs, stats.to_dict()


def _image_column(folder: str, ds) -> str:
    from ..run import CONFIG_FILE

    path = os.path.join(folder, CONFIG_FILE)
    if os.path.isfile(path):
        with open(path) as f:
            return json.load(f).get("image_column", "image")
    if "image" in ds.column_names:
        return "image"
    candidates = [n for n, f in ds.features.items() if isinstance(f, datasets.Image) and n != C.SAFE_IMAGE]
    if len(candidates) != 1:
        raise ValueError(f"cannot tell the source image column of {folder!r} (image columns {candidates}); run `u2s pairs --image-column`")
    return candidates[0]
