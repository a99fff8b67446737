"""Train/validation/test splits of training pairs: by fractions, or as the reference code cuts them.

- Fractions ``(train, validation, test)``: shuffled with the seed, cut in that order.
- ``"95/5"`` (the SD editor's data loader) and ``"75/25"`` (the FLUX / OminiControl loader): the
  training pool in the order pandas' ``DataFrame.sample(frac=1, random_state=seed)`` gives
  (``numpy.random.RandomState(seed).permutation``); ``95/5`` keeps the first 95 % for training,
  ``75/25`` the first 25 % for validation, as each loader does.
- ``split_by``: a column naming each row's source split (a COCO file path, or a split column):
  rows whose value contains ``source_splits[0]`` (``train2014``) form the training pool, those
  containing ``source_splits[1]`` (``val2014``) the test split, in their own order. With
  fractions the pool is cut train : validation in the ratio of the first two.
"""

import logging
from typing import Optional, Sequence, Union

import datasets
import numpy as np

logger = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "validation", "test")
DEFAULT_SPLIT = (0.9, 0.05, 0.05)
DEFAULT_SOURCE_SPLITS = ("train2014", "val2014")
# name: (validation fraction, whether validation is cut from the front of the shuffled pool)
RATIO_SPLITS = {"95/5": (0.05, False), "75/25": (0.25, True)}


def check_split(split) -> Union[tuple, str]:
    if isinstance(split, str):
        if split not in RATIO_SPLITS:
            raise ValueError(f"split={split!r} is not one of {', '.join(map(repr, RATIO_SPLITS))} or three fractions")
        return split
    split = tuple(float(f) for f in split)
    if len(split) != 3 or any(f < 0 for f in split) or abs(sum(split) - 1.0) > 1e-6:
        raise ValueError(f"split={split} must be three non-negative fractions (train, validation, test) summing to 1")
    return split


def source_pools(values: Sequence, source_splits: Sequence[str] = DEFAULT_SOURCE_SPLITS, column: str = "") -> list:
    """Per row: "train" (its value contains the training split's name), "test", or None (neither)."""
    train_name, test_name = source_splits
    pools = []
    for index, value in enumerate(values):
        text = "" if value is None else str(value)
        found = [pool for pool, name in (("train", train_name), ("test", test_name)) if name in text]
        if len(found) == 2:
            raise ValueError(f"row {index}: {column} {text!r} names both {train_name!r} and {test_name!r}")
        pools.append(found[0] if found else None)
    return pools


def split_pairs(pairs: datasets.Dataset, split=DEFAULT_SPLIT, seed: int = 42, pools: Optional[list] = None) -> datasets.DatasetDict:
    """``pairs`` as train/validation/test (an empty validation or test split is left out: it does not load back from disk).

    ``pools``: per row "train" / "test" / None from ``source_pools``; None rows are left out.
    """
    split = check_split(split)
    if pools is None and not isinstance(split, str):
        return _by_fractions(pairs, split, seed)
    pools = pools if pools is not None else ["train"] * len(pairs)
    train_pool = [i for i, p in enumerate(pools) if p == "train"]
    test_rows = [i for i, p in enumerate(pools) if p == "test"]
    if not train_pool:
        raise ValueError("no pairs in the training pool: check --split-by and --source-splits")
    order = [train_pool[i] for i in np.random.RandomState(seed).permutation(len(train_pool))]
    n = len(order)
    if isinstance(split, str):
        fraction, validation_first = RATIO_SPLITS[split]
        if validation_first:
            cut = int(fraction * n)
            train, validation = order[cut:], order[:cut]
        else:
            cut = int((1 - fraction) * n)
            train, validation = order[:cut], order[cut:]
    else:
        cut = int(split[0] / (split[0] + split[1]) * n) if split[0] + split[1] > 0 else 0
        train, validation = order[:cut], order[cut:]
    if not train:
        raise ValueError(f"the split {split} leaves no training pairs among {n}")
    parts = {"train": train, "validation": validation, "test": test_rows}
    return datasets.DatasetDict({name: pairs.select(rows) for name, rows in parts.items() if name == "train" or rows})


def _by_fractions(pairs, fractions, seed) -> datasets.DatasetDict:
    """Shuffle with ``seed``, then cut train/validation/test by ``fractions`` (validation and test rounded down)."""
    shuffled = pairs.shuffle(seed=seed).flatten_indices()
    n = len(shuffled)
    n_val, n_test = int(n * fractions[1]), int(n * fractions[2])
    n_train = n - n_val - n_test
    bounds = {"train": (0, n_train), "validation": (n_train, n_train + n_val), "test": (n_train + n_val, n)}
    return datasets.DatasetDict({name: shuffled.select(list(range(*bounds[name]))) for name in SPLIT_NAMES
                                 if name == "train" or bounds[name][1] > bounds[name][0]})
