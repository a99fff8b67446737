"""One row's way through the transform, and the fail-closed helpers that run stages on rows."""

import logging
import threading

import cv2
import numpy as np

from . import columns as C
from .imaging.encode import encode, kept_metadata, passthrough_bytes
from .imaging.compose import redacted_like
from .imaging.metadata_policy import policy_of

logger = logging.getLogger(__name__)


class Row:
    """Where one row stands as it moves through the stages; ``finish`` turns it into output columns."""

    def __init__(self, index, dataset_index=None):
        self.index, self.dataset_index = index, dataset_index
        self.decoded = self.views = self.rgb = self.inspection = self.instruction = self.mask = self.safe = None
        self.given_regions = None  # the row's value of ``regions_column``, read when its image is decoded
        self.error = self.error_size = None
        self.status = C.STATUS_PASSTHROUGH
        self.notes = []
        self.columns = None

    @property
    def name(self) -> str:
        return f"Row {self.dataset_index} of the dataset" if self.dataset_index is not None else f"Row {self.index} of the batch"

    def fail(self, reason, size=None):
        self.error, self.error_size = reason, size

    def finish(self, output) -> None:
        """Encode the output image and fill ``columns``; the decoded pixels are let go."""
        self.columns = self._columns(output)
        self.decoded = self.views = self.rgb = self.safe = self.mask = None

    def _columns(self, output) -> dict:
        inspection = self.inspection
        if self.error is not None:
            redacted = redacted_like(self.decoded.image if self.decoded else None, size=self.error_size)
            safe = _image(encode(redacted, None, output.jpeg_quality)) if redacted is not None else None
            return _row_columns(safe, True, [], "", "", "", [], C.STATUS_ERROR_PREFIX + self.error)
        if not inspection.is_private:
            safe = _image(passthrough_bytes(self.decoded, output.jpeg_quality, policy_of(output)))  # may add notes to decoded.notes
            status = C.with_notes(C.STATUS_PASSTHROUGH, self.decoded.notes + self.notes)
            return _row_columns(safe, False, [], inspection.private_caption, inspection.public_caption, "", [], status)
        safe = _image(self._encoded_safe(output))
        notes = self.decoded.notes + self.notes
        return _row_columns(
            safe,
            True,
            list(inspection.categories),
            inspection.private_caption,
            inspection.public_caption,
            self.instruction.instruction if self.instruction else "",
            [r.as_column() for r in inspection.regions],
            C.with_notes(self.status, notes),
            target_caption=self.instruction.target_caption if self.instruction else "",
        )

    def _encoded_safe(self, output) -> bytes:
        decoded, policy = self.decoded, policy_of(output)
        if (
            self.status == C.STATUS_EDITED or self.status == C.STATUS_ESCALATED
        ) and self.mask is not None and decoded.format == "JPEG" and decoded.source_bytes and output.image_format == "auto":
            # Only the JPEG blocks the regions touch are coded again; every other block is the input's own.
            try:
                from .imaging.jpeg_lossless import UnsupportedJpeg, edit_jpeg_region
            except ImportError:
                pass
            else:
                try:
                    return edit_jpeg_region(decoded.source_bytes, self.safe, self.mask, keep_icc=policy.icc, keep_dpi=policy.dpi)
                except UnsupportedJpeg as e:
                    logger.info("JPEG blocks cannot be kept (%s); re-encoding the image", e)
        return encode(self.safe, decoded.format, output.jpeg_quality, output.image_format, decoded.notes, kept_metadata(decoded, policy))


def _image(data: bytes) -> dict:
    return {"bytes": data, "path": None}


def _row_columns(safe, is_private, categories, private_caption, public_caption, instruction, regions, status, target_caption="") -> dict:
    return {
        C.SAFE_IMAGE: safe,
        C.IS_PRIVATE: is_private,
        C.PRIVACY_CATEGORIES: categories,
        C.PRIVATE_CAPTION: private_caption,
        C.PUBLIC_CAPTION: public_caption,
        C.EDIT_INSTRUCTION: instruction,
        C.TARGET_CAPTION: target_caption,
        C.PRIVACY_REGIONS: regions,
        C.STATUS: status,
    }


def unchanged(original, safe, mask) -> bool:
    """True when no pixel of ``safe`` differs from ``original`` where the mask selects (everywhere without one)."""
    if original.mode != safe.mode:
        original = original.convert(safe.mode)
    if mask is not None:
        x, y, w, h = cv2.boundingRect((mask > 0).astype(np.uint8))
        original, safe = original.crop((x, y, x + w, y + h)), safe.crop((x, y, x + w, y + h))
    return original.tobytes() == safe.tobytes()


def batched_with_row_retry(run, items, what, check=None) -> list:
    """``run(items)`` on the whole batch; if it raises, each item alone once. Failures come back as exceptions.

    ``check(result)`` returns a reason when a result is unusable (an editor returning None).
    """
    if not items:
        return []

    def checked(results, expected):
        results = list(results) if results is not None else []
        if len(results) != expected:
            raise RuntimeError(f"{what} returned {len(results)} results for {expected} images")
        return [RuntimeError(reason) if check and (reason := check(r)) else r for r in results]

    try:
        return checked(run(items), len(items))
    except TimeoutError as timeout:
        logger.warning("%s: %s; its %d rows fail closed", what, timeout, len(items))
        return [timeout] * len(items)  # one stalled call is enough: no retries that stall too
    except Exception as batch_error:
        logger.warning("%s failed on a batch of %d (%s); retrying each row alone", what, len(items), batch_error)
    results = []
    for item in items:
        try:
            results.append(checked(run([item]), 1)[0])
        except Exception as row_error:
            logger.warning("%s failed on a row: %s: %s", what, type(row_error).__name__, row_error)
            results.append(row_error)
    return results


def call_with_timeout(function, seconds, what):
    """``function`` bounded by ``seconds`` (None: no bound); past it, TimeoutError.

    The call runs in a daemon thread: a stalled backend cannot be stopped from Python, but its
    rows are not waited for and fail closed.
    """
    if seconds is None:
        return function

    def bounded(*args):
        outcome = {}

        def target():
            try:
                outcome["value"] = function(*args)
            except BaseException as e:  # handed to the caller's thread
                outcome["error"] = e

        worker = threading.Thread(target=target, daemon=True, name=f"u2s {what}")
        worker.start()
        worker.join(seconds)
        if worker.is_alive():
            raise TimeoutError(f"{what} took longer than {seconds:g} s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    return bounded
