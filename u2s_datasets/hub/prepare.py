"""Rows and columns: only what is safe to share, or what the user named, reaches the shards."""

import logging
from dataclasses import dataclass, field
from typing import Optional, Sequence

from .. import columns as C
from .audit import ColumnAudit, audit_columns
from .errors import PublishRefused
from .provenance import Anonymization

logger = logging.getLogger(__name__)

ORIGINAL_PREFIX = "original_"  # a kept original image column is published under this prefix
PATH_COLUMNS = ("file_name", "filename", "file_path", "filepath", "path", "image_path", "image_file", "url", "image_url")
OWN_COLUMNS = tuple(C.OUTPUT_FEATURES)  # written by the transform; public_caption/edit_instruction: docs/publishing.md
PRIVATE_COLUMNS = getattr(C, "PRIVATE_COLUMNS", (C.PRIVATE_CAPTION,))  # describe private content: out unless kept


@dataclass
class PreparedSplit:
    name: str
    dataset: object  # datasets.Dataset: safe columns only, the safe image under the image column (not decoded)
    image_column: str
    dropped_failed: int
    dropped_columns: list
    kept_columns: list  # private or unchecked columns kept on request, as published
    text_findings: list = field(default_factory=list)  # audit.TextFinding not acknowledged by name
    as_is_columns: list = field(default_factory=list)  # source columns published unchanged


def find_image_column(ds, anonymization: Anonymization, image_column: Optional[str] = None) -> str:
    """The source's image column: given, recorded by the run, the one other image column, or ``"image"``."""
    from datasets import Image

    if image_column or anonymization.image_column:
        return image_column or anonymization.image_column
    others = [name for name, feature in ds.features.items() if name != C.SAFE_IMAGE and isinstance(feature, Image)]
    if len(others) > 1:
        raise ValueError(f"Cannot tell which column held the source images ({', '.join(others)}); pass image_column=")
    return others[0] if others else "image"


def prepare_split(ds, name: str, image_column: str, keep_columns: Sequence[str] = (), drop_failed: bool = False) -> PreparedSplit:
    """The safe image as the image column; failed rows, private columns, paths and URLs out; unchecked media refused."""
    from datasets import Image

    for required in (C.SAFE_IMAGE, C.STATUS):
        if required not in ds.column_names:
            raise PublishRefused(
                f"Split {name!r} has no {required!r} column: it was not mapped with Unsafe2Safe "
                f"(columns: {', '.join(ds.column_names)})"
            )
    unknown = [c for c in keep_columns if c not in ds.column_names]
    if unknown:
        raise PublishRefused(f"keep_columns names columns that split {name!r} does not have: {', '.join(unknown)}")
    keep = set(keep_columns)
    ds, dropped_failed = _without_failed_rows(ds, name, drop_failed)

    private = [c for c in (image_column, *PRIVATE_COLUMNS) if c in ds.column_names]
    dropped = [c for c in private if c not in keep]
    source_columns = [c for c in ds.column_names if c not in OWN_COLUMNS and c != image_column]
    audit = audit_columns(ds, source_columns)

    stray = [c for c in audit.media if c not in keep]
    if stray:
        raise PublishRefused(
            f"Split {name!r} has columns that hold images or other media nobody anonymized: "
            f"{_describe_media(audit, stray)}. Remove them (ds.remove_columns), or name them in keep_columns "
            "(--keep-column) to publish them as they are."
        )
    paths = [c for c in _path_columns(ds, audit) if c not in keep]
    if paths:
        logger.warning(
            "Dropping column(s) %s of split %r: they hold file names, paths or URLs (%s), which can name people, places "
            "or where the originals live. Pass them in keep_columns to publish them.",
            ", ".join(map(repr, paths)), name, _describe_paths(audit, paths),
        )
    dropped += paths
    ds = ds.remove_columns(dropped)

    kept = []
    for column in [c for c in ds.column_names if c in keep and (c not in OWN_COLUMNS or c in PRIVATE_COLUMNS)]:
        published = column
        if column == image_column:  # the image column is the safe one; the original moves aside
            published = ORIGINAL_PREFIX + column
            if published in ds.column_names:
                raise PublishRefused(
                    f"Split {name!r} already has a column {published!r}, so the kept original images cannot be published "
                    "under that name; rename or remove it first."
                )
            ds = ds.rename_column(column, published)
        kept.append(published)
        logger.warning("Keeping column %r of split %r as asked (published as %r): it holds %s", column, name, published,
                       _what_kept(column, image_column, audit))

    _warn_about_generated_text(ds, name)
    text = [f for f in audit.text if f.column not in keep and f.column in ds.column_names]
    as_is = [c for c in ds.column_names if c not in OWN_COLUMNS and c not in kept]
    ds = ds.rename_column(C.SAFE_IMAGE, image_column).cast_column(image_column, Image(decode=False))
    return PreparedSplit(name, ds, image_column, dropped_failed, dropped, kept, text, as_is)


def _without_failed_rows(ds, name, drop_failed):
    failed = [(i, s) for i, s in enumerate(ds[C.STATUS]) if not s or C.is_error(s)]
    if failed and not drop_failed:
        first, status = failed[0]
        raise PublishRefused(
            f"{len(failed)} of {len(ds)} rows of split {name!r} failed anonymization (first: row {first}, "
            f"u2s_status {status!r}). Refusing to publish them; pass drop_failed=True (--drop-failed) to leave them out."
        )
    if failed:
        logger.warning("Dropping %d of %d rows of split %r that failed anonymization", len(failed), len(ds), name)
        bad = {index for index, _ in failed}
        ds = ds.select([i for i in range(len(ds)) if i not in bad], keep_in_memory=True)
    return ds, len(failed)


def _warn_about_generated_text(ds, name):
    """Captions and instructions a model wrote are published; one that quotes an address or a URL is worth a look."""
    generated = audit_columns(ds, [C.PUBLIC_CAPTION, C.EDIT_INSTRUCTION, C.TARGET_CAPTION], keep_text_with_paths=True)
    for finding in generated.text:
        urls = sum(f.urls for f in generated.paths if f.field == finding.field)
        found = [f"{n} {what}" for n, what in ((finding.emails, "e-mail addresses"), (finding.phones, "phone numbers"),
                                                (urls, "URLs")) if n]
        if found:
            logger.warning("Column %r of split %r was written by the anonymization and holds %s; read those rows before "
                           "publishing (docs/publishing.md)", finding.column, name, ", ".join(found))


def _path_columns(ds, audit: ColumnAudit) -> list:
    """Named like file names, paths or URLs (``file_name`` of image folders), or holding such values anywhere."""
    named = [c for c in ds.column_names if c.lower() in PATH_COLUMNS and c not in OWN_COLUMNS and c not in audit.media]
    return list(dict.fromkeys(named + audit.path_columns()))


def _describe_media(audit: ColumnAudit, columns) -> str:
    return "; ".join(f"{c!r} ({', '.join(f'{what} at {where}' for where, what in audit.media[c])})" for c in columns)


def _describe_paths(audit: ColumnAudit, columns) -> str:
    found = []
    for f in audit.paths:
        if f.column in columns:
            kinds = [f"{n} {what}" for n, what in ((f.paths, "paths"), (f.urls, "URLs")) if n]
            found.append(f"{f.field}: {', '.join(kinds)}")
    return "; ".join(found) or "named so"


def _what_kept(column, image_column, audit: ColumnAudit) -> str:
    if column == image_column:
        return "the ORIGINAL, un-anonymized images"
    if column == C.PRIVATE_CAPTION:
        return "private captions that describe what was removed"
    if column in audit.media:
        return f"images or media that were NOT anonymized ({_describe_media(audit, [column])})"
    if any(f.column == column for f in audit.paths):
        return f"file names, paths or URLs ({_describe_paths(audit, [column])})"
    return "data published as it is, not anonymized"
