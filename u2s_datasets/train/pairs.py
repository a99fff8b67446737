"""Training pairs from a dataset the transform made: source image, instruction, public caption, safe target.

Only rows the editor actually edited become pairs (status ``edited``, notes after ``"; "``
allowed): passthrough rows have nothing to learn and failed rows carry a redaction, not an
edit. A CLIP filter then keeps the pairs whose edit kept the scene: the CLIP image
similarity of the target to its source must reach ``clip_threshold`` (0.7, as in the
paper), and a target whose CLIP embedding equals its source's (an edit that changed
nothing CLIP can see) is dropped. The rest is split deterministically (seed 42).
"""

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

import datasets
import numpy as np
from tqdm.auto import tqdm

from .. import columns as C

logger = logging.getLogger(__name__)

SOURCE_IMAGE = "source_image"
TARGET_IMAGE = "target_image"
LABEL = "label"
CLIP_SIMILARITY = "clip_similarity"
PAIRS_FILE = "u2s_pairs.json"
DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14"
DEFAULT_SPLIT = (0.9, 0.05, 0.05)  # train / validation / test
SPLIT_NAMES = ("train", "validation", "test")


@dataclass
class PairStats:
    """What became of the rows: counts per reason, the filter and the split used."""

    rows: int = 0
    edited: int = 0
    passthrough: int = 0
    failed: int = 0  # error and redacted_fallback rows
    filtered_out: int = 0
    kept: int = 0
    clip_model: Optional[str] = None
    clip_threshold: Optional[float] = None
    split: Sequence[float] = DEFAULT_SPLIT
    seed: int = 42
    split_sizes: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def base_status(status: str) -> str:
    return getattr(C, "base_status", lambda s: s.split(";")[0])(status or "")


def build_pairs(ds, image_column: str = "image", class_column: Optional[str] = None, clip_model: Optional[str] = DEFAULT_CLIP_MODEL,
                clip_threshold: float = 0.7, split: Sequence[float] = DEFAULT_SPLIT, seed: int = 42, batch_size: int = 16,
                device: Optional[str] = None, with_stats: bool = False):
    """The training pairs of ``ds`` (a dataset ``Unsafe2Safe`` made) as a ``DatasetDict`` of train/validation/test.

    Columns: ``source_image``, ``edit_instruction``, ``public_caption``, ``target_image``,
    ``label`` (when ``class_column`` is given, or the dataset has a ``ClassLabel`` column)
    and ``clip_similarity`` (None without the filter). ``clip_model=None`` skips the filter
    (with a warning). ``with_stats=True`` returns ``(pairs, PairStats)``.
    """
    if isinstance(ds, datasets.DatasetDict):
        raise ValueError(f"build_pairs takes one split; this DatasetDict has {list(ds)}: pass ds['train'], for instance")
    missing = [c for c in (image_column, C.SAFE_IMAGE, C.STATUS, C.EDIT_INSTRUCTION, C.PUBLIC_CAPTION) if c not in ds.column_names]
    if missing:
        raise KeyError(f"this dataset lacks {missing}: build pairs from the output of Unsafe2Safe (columns {ds.column_names})")
    if len(split) != 3 or any(f < 0 for f in split) or abs(sum(split) - 1.0) > 1e-6:
        raise ValueError(f"split={tuple(split)} must be three non-negative fractions (train, validation, test) summing to 1")
    class_column = class_column or next((n for n, f in ds.features.items() if isinstance(f, datasets.ClassLabel)), None)

    stats = PairStats(rows=len(ds), clip_model=clip_model, clip_threshold=clip_threshold if clip_model else None,
                      split=tuple(split), seed=seed)
    statuses = [base_status(s) for s in ds[C.STATUS]]
    stats.edited = sum(s == C.STATUS_EDITED for s in statuses)
    stats.passthrough = sum(s == C.STATUS_PASSTHROUGH for s in statuses)
    stats.failed = stats.rows - stats.edited - stats.passthrough
    edited = [i for i, s in enumerate(statuses) if s == C.STATUS_EDITED]
    if not edited:
        raise ValueError(f"no edited rows among {stats.rows} ({stats.passthrough} passthrough, {stats.failed} failed): nothing to train on")

    keep = {image_column: SOURCE_IMAGE, C.EDIT_INSTRUCTION: C.EDIT_INSTRUCTION, C.PUBLIC_CAPTION: C.PUBLIC_CAPTION, C.SAFE_IMAGE: TARGET_IMAGE}
    if class_column:
        keep[class_column] = LABEL
    pairs = ds.select(edited).select_columns(list(keep)).rename_columns({k: v for k, v in keep.items() if k != v})
    pairs = pairs.cast_column(SOURCE_IMAGE, datasets.Image()).cast_column(TARGET_IMAGE, datasets.Image())

    if clip_model is None:
        logger.warning("No CLIP filter (clip_model=None): every edited pair is kept, whatever its edit")
        similarities = [None] * len(pairs)
    else:
        similarities = clip_similarities(pairs, clip_model, batch_size, device)
    pairs = pairs.add_column(CLIP_SIMILARITY, similarities, feature=datasets.Value("float32"))
    if clip_model is not None:
        passed = [i for i, s in enumerate(similarities) if passes_clip_filter(s, clip_threshold)]
        stats.filtered_out = len(pairs) - len(passed)
        pairs = pairs.select(passed)
    stats.kept = len(pairs)
    if not stats.kept:
        raise ValueError(f"the CLIP filter ({clip_model}, threshold {clip_threshold}) removed all {stats.edited} edited pairs")

    result = split_pairs(pairs, split, seed)
    stats.split_sizes = {name: len(part) for name, part in result.items()}
    for part in result.values():  # travels with the splits, through save_to_disk too
        part.info.description = json.dumps({"u2s_pairs": stats.to_dict()})
    logger.info("Pairs: %s", stats.to_dict())
    return (result, stats) if with_stats else result


def passes_clip_filter(similarity: float, threshold: float) -> bool:
    """The edit kept the scene (similarity at least ``threshold``) and changed something CLIP sees (below 1)."""
    return threshold <= similarity < 1.0 - 1e-6


def split_pairs(pairs, fractions: Sequence[float], seed: int) -> datasets.DatasetDict:
    """Shuffle with ``seed``, then cut train/validation/test by ``fractions`` (validation and test rounded down, left out when empty)."""
    shuffled = pairs.shuffle(seed=seed).flatten_indices()
    n = len(shuffled)
    n_val, n_test = int(n * fractions[1]), int(n * fractions[2])
    n_train = n - n_val - n_test
    bounds = {"train": (0, n_train), "validation": (n_train, n_train + n_val), "test": (n_train + n_val, n)}
    # Empty validation/test splits are left out (a zero-row split does not load back from disk).
    return datasets.DatasetDict({name: shuffled.select(list(range(*bounds[name]))) for name in SPLIT_NAMES
                                 if name == "train" or bounds[name][1] > bounds[name][0]})


def clip_similarities(pairs, clip_model: str, batch_size: int = 16, device: Optional[str] = None) -> list:
    """Cosine similarity of the CLIP image embeddings of each target and its source."""
    import torch
    from transformers import CLIPModel, CLIPProcessor

    from ..devices import resolve_device

    device = resolve_device(device, None)
    try:
        model = CLIPModel.from_pretrained(clip_model).to(device).eval()
        processor = CLIPProcessor.from_pretrained(clip_model)
    except OSError as e:
        raise ValueError(f"could not load the CLIP model {clip_model!r} for the pair filter ({e}); "
                         "give a local folder with --clip-model, or --clip-model none to skip the filter") from None
    out = []
    for start in tqdm(range(0, len(pairs), batch_size), desc="CLIP filter", unit="batch"):
        batch = pairs[start : start + batch_size]
        images = [im.convert("RGB") for im in batch[SOURCE_IMAGE] + batch[TARGET_IMAGE]]
        with torch.inference_mode():
            pixels = processor(images=images, return_tensors="pt")["pixel_values"].to(device, model.dtype)
            features = model.get_image_features(pixel_values=pixels)
            features = getattr(features, "pooler_output", features).float()
        features = torch.nn.functional.normalize(features, dim=-1)
        half = len(images) // 2
        out.extend((features[:half] * features[half:]).sum(-1).cpu().tolist())
    return [float(np.clip(s, -1.0, 1.0)) for s in out]


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
    from ..runner import CONFIG_FILE

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
