"""One reviewed row made again from its original image, its reviewed regions and the run's editor and seed.

Stage 1 does not run: the regions are the stored ones with the reviewer's changes. The mask,
the seed and the compositing are those of ``Unsafe2Safe``, so an unchanged region list would
give the same image back.
"""

import logging
from types import SimpleNamespace

from .. import columns as C
from ..edit.masks import region_mask
from ..imaging.compose import compose, redacted_like
from ..imaging.decode import decode
from ..imaging.modes import inspection_views
from ..imaging.metadata_policy import policy_of
from ..records import EditRequest, Inspection, Instruction, Region
from ..registry import resolve
from ..rows import Row, unchanged
from ..transform import Unsafe2Safe
from .decisions import REDACTED_NOTE

logger = logging.getLogger(__name__)


def transform_of_run(run: dict) -> Unsafe2Safe:
    """The run's ``Unsafe2Safe`` rebuilt from its ``u2s_config.json`` record."""
    config = run.get("config")
    if not isinstance(config, dict):
        raise ValueError("the run record (u2s_config.json) is missing: the editor and seed of the run are unknown")
    settings = {key: value for section, values in config.items() if isinstance(values, dict) for key, value in values.items()}
    transform = Unsafe2Safe(preset=config.get("preset", "local"), image_column=run.get("image_column") or "image", **settings)
    recorded = run.get("config_hash")
    if recorded and recorded != transform.config.hash():
        logger.warning("the run's config hash %s does not match its settings (%s)", recorded, transform.config.hash())
    return transform


class Rerenderer:
    """Re-renders rows with the editor of one run; the editor loads once."""

    def __init__(self, transform: Unsafe2Safe):
        self.transform = transform
        self.config = transform.config
        self.editor = resolve("editor", self.config.edit.editor)(self.config)
        self.instructor = resolve("instructor", "template")(self.config)

    def columns(self, original, facts, review) -> dict:
        """The output columns of one row (a ``saved.RowFacts``) after its ``review``."""
        # Decoded as the run decoded it, so the stored boxes fall where they were found.
        decoded = decode(original, self.config.output.max_image_pixels, policy_of(self.config.output).bake_orientation)
        row = Row(facts.index, facts.index)
        row.decoded, row.views = decoded, inspection_views(decoded.image)
        row.rgb = row.views[0]
        regions = review.regions(facts.regions)
        # A flagged row stays private unless the reviewer deleted what made it so.
        private = review.verdict == "redact_image" or bool(regions) or (facts.is_private and not review.deleted)
        row.inspection = Inspection(private, _categories(facts, review, regions), facts.private_caption, facts.public_caption,
                                    [Region(r["category"], tuple(r["box"]), r.get("score", 1.0)) for r in regions])
        who = ", ".join(review.reviewers) or "unknown"
        if review.verdict == "redact_image":
            row.instruction = Instruction(facts.edit_instruction)
            row.safe, row.status = compose(decoded.image, redacted_like(decoded.image), None), C.STATUS_REDACTED
            row.notes = [REDACTED_NOTE, f"reviewed by {who}"]
        elif not private:
            row.notes = [f"every region removed in review by {who}"]
        else:
            self._edit(row, facts)
            row.notes.append(f"regions reviewed by {who}")
        row.finish(self.config.output)
        return row.columns

    def _edit(self, row, facts):
        settings = self.config.edit
        generated = self.instructor.instruct([row.inspection])[0]
        keep_stored = facts.edit_instruction and self.config.instruct.instructor != "template"
        row.instruction = Instruction(facts.edit_instruction, generated.target_caption) if keep_stored else generated
        boxes = [r.box for r in row.inspection.regions]
        row.mask = region_mask(row.rgb.size, boxes, settings.region_margin, settings.feather) if settings.edit_scope == "regions" else None
        # The seed rule of the transform itself, so a row gets the seed its first rendering had.
        seed = self.transform._row_seed(SimpleNamespace(rgb=row.rgb)) if getattr(self.editor, "uses_seed", True) else 0
        result = self.editor.edit([EditRequest(row.rgb, row.inspection, row.instruction, row.mask, seed)])[0]
        if result.size != row.rgb.size:
            result = result.resize(row.rgb.size)
        safe = compose(row.decoded.image, result, row.mask)
        if unchanged(row.decoded.image, safe, row.mask):
            logger.warning("Row %d: the editor left the reviewed regions unchanged; redacting the image", facts.index)
            row.safe, row.status = compose(row.decoded.image, redacted_like(row.decoded.image), None), C.STATUS_REDACTED
            row.notes.append("editor changed nothing")
        else:
            row.safe, row.status = safe, C.STATUS_EDITED


def _categories(facts, review, regions) -> list:
    """The stored categories, less those whose every region was deleted, plus those of added regions."""
    left = {r["category"] for r in regions}
    gone = {d["category"] for d in review.deleted} - left
    kept = [c for c in facts.categories if c not in gone]
    return list(dict.fromkeys(kept + [r["category"] for r in regions]))
