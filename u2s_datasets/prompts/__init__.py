"""Prompt templates of stage 1, as text files next to this module, filled with ``str.format``."""

from functools import lru_cache
from importlib import resources

from ..taxonomy import taxonomy_text

MAX_CAPTION_WORDS = 50
MAX_REVIEW_ITEMS = 5
MAX_INSTRUCTION_WORDS = 45
MAX_TARGET_WORDS = 50  # the target caption stays strictly below this


@lru_cache(maxsize=None)
def template(name: str) -> str:
    return resources.files(__name__).joinpath(f"{name}.txt").read_text(encoding="utf-8")


BOX_RULES = {
    "normalized_1000": "it is the item's box [x0, y0, x1, y1] in coordinates from 0 to 1000 relative to the image width (x) "
    "and height (y), with (0, 0) at the top left.",
    "pixels": "it is the item's box [x0, y0, x1, y1] in pixels of this {width}x{height} image, with (0, 0) at the top left.",
}


def inspection_prompt(class_label=None, box_format="normalized_1000", size=None) -> str:
    """The inspection request; ``size`` is the (width, height) of the image as sent, for pixel boxes."""
    width, height = size or (0, 0)
    subject = template("inspect_subject").format(label=class_label).strip() + "\n" if class_label else ""
    return template("inspect").format(
        taxonomy=taxonomy_text(),
        subject_note=subject,
        max_caption_words=MAX_CAPTION_WORDS,
        max_review=MAX_REVIEW_ITEMS,
        box_rule=BOX_RULES[box_format].format(width=width, height=height),
    )


def inspection_repair_prompt(problem: str) -> str:
    return template("repair").format(problem=problem)


def instruction_prompt(inspection) -> str:
    review = "\n".join(f"- {r.item} ({r.category or 'private'}): {r.reason}" for r in inspection.review)
    if not review:
        review = "\n".join(f"- {c}" for c in inspection.categories) or "- (none listed; make every identifying detail generic)"
    return template("instruct").format(
        review=review,
        public_caption=inspection.public_caption or "(none)",
        max_instruction_words=MAX_INSTRUCTION_WORDS,
        max_target_words=MAX_TARGET_WORDS,
    )


def instruction_repair_prompt(problem: str) -> str:
    return template("instruct_repair").format(problem=problem)
