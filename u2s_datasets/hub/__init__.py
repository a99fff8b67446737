"""Publish a privacy-safe dataset to the Hugging Face Hub, with its card and provenance.

    from u2s_datasets import Unsafe2Safe, push_safe_dataset
    u2s = Unsafe2Safe()
    safe = ds.map(u2s, batched=True, features=u2s.features(ds.features))
    push_safe_dataset(safe, "org/coco-safe", transform=u2s)

Publishing is where a privacy tool most easily leaks, so the safe path is the default: the
repository is private; the original image, the private caption and columns of file names,
paths or URLs stay behind; other images and media are refused; text that goes out as it is
must be acknowledged; rows that failed anonymization are refused; the safe images go out as
the transform wrote them, checked free of metadata; and the dataset card is uploaded last.

One job per module: ``audit`` (what each column holds), ``prepare`` (rows and columns),
``report`` (the text to acknowledge), ``encode`` (image files and shards), ``provenance``,
``card``, ``upload``, and ``push`` (the one call).
"""

from .audit import looks_like_path
from .card import CARD_FILE, GATING_PROMPT, TAGS, render_card, template_path
from .encode import DATA_DIR, IMAGE_FORMATS, publish_image, reencode, write_shards
from .errors import PublishError, PublishRefused
from .prepare import ORIGINAL_PREFIX, PreparedSplit, find_image_column, prepare_split
from .provenance import PROVENANCE_FILE, Anonymization, build_provenance, config_hash, split_counts, total_counts
from .push import PublishResult, push_safe_dataset, stage
from .report import PrepublishReport
from .upload import upload

__all__ = [
    "push_safe_dataset", "stage", "upload", "PublishResult", "PublishError", "PublishRefused", "PrepublishReport",
    "Anonymization", "build_provenance", "config_hash", "split_counts", "total_counts", "PreparedSplit", "find_image_column",
    "prepare_split", "publish_image", "reencode", "write_shards", "render_card", "template_path", "looks_like_path",
    "CARD_FILE", "DATA_DIR", "GATING_PROMPT", "IMAGE_FORMATS", "ORIGINAL_PREFIX", "PROVENANCE_FILE", "TAGS",
]
