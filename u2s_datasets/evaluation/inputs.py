"""Inputs checked once, at the edge: clear errors naming the row and the problem."""

import os

import numpy as np
from PIL import Image

from ..imaging.decode import ImageError, decode
from ..imaging.modes import to_rgb

MAX_PIXELS = 178_956_970  # PIL's own decompression-bomb limit

_IMAGE_TYPES = (Image.Image, np.ndarray, dict, str, os.PathLike, bytes, bytearray, memoryview)


def as_rgb(value, where: str) -> np.ndarray:
    """Any image form ``datasets`` knows -> an HxWx3 uint8 array. ``where`` names the row in errors."""
    if value is None:
        raise ValueError(f"{where}: image is missing (None)")
    if not isinstance(value, _IMAGE_TYPES):
        raise TypeError(f"{where}: expected an image (PIL image, array, path, bytes or {{'bytes', 'path'}} dict), "
                        f"got {type(value).__name__}")
    try:
        return np.asarray(to_rgb(decode(value, MAX_PIXELS).image))
    except ImageError as e:
        raise ValueError(f"{where}: {e}") from None


def check_same_length(**columns) -> int:
    """All columns have one value per row; returns the row count."""
    lengths = {}
    for name, column in columns.items():
        if column is None:
            continue
        if isinstance(column, (str, bytes)) or not hasattr(column, "__len__"):
            raise TypeError(f"{name} must be a list with one value per row, got {type(column).__name__}")
        lengths[name] = len(column)
    if len(set(lengths.values())) > 1:
        raise ValueError("inputs differ in length: " + ", ".join(f"{k}={v}" for k, v in lengths.items()))
    return next(iter(lengths.values()), 0)


def check_pairs(predictions, references, **others) -> int:
    """Safe images (``predictions``) and originals (``references``), row for row; returns the row count."""
    n = check_same_length(predictions=predictions, references=references, **others)
    for i in range(n):
        for name, column in (("predictions", predictions), ("references", references)):
            value = column[i]
            if value is None:
                raise ValueError(f"{name}[{i}]: image is missing (None)")
            if not isinstance(value, _IMAGE_TYPES):
                raise TypeError(f"{name}[{i}]: expected an image, got {type(value).__name__}")
    return n


def check_texts(texts, name: str):
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{i}]: expected a string, got {type(text).__name__}")


def load_pairs(predictions, references) -> tuple:
    """Decoded (safe, original) arrays; the safe image is resized to the original's size when they differ."""
    safes, originals = [], []
    for i, (safe, original) in enumerate(zip(predictions, references)):
        original = as_rgb(original, f"references[{i}] (original image)")
        safe = as_rgb(safe, f"predictions[{i}] (safe image)")
        if safe.shape != original.shape:
            safe = np.asarray(Image.fromarray(safe).resize((original.shape[1], original.shape[0]), Image.BICUBIC))
        safes.append(safe)
        originals.append(original)
    return safes, originals


def mean_or_none(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None
