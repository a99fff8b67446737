"""Prompt templates of stage 1, as text files next to this module, filled with ``str.format``."""

from functools import lru_cache
from importlib import resources

from ..taxonomy import CATEGORIES

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


# Examples per category, in the spirit of the paper's taxonomy: what a recall-first reviewer must not miss.
CATEGORY_EXAMPLES = {
    "people_faces": "faces, including small, partly hidden or reflected ones; groups and teams, even without visible faces",
    "appearance_cues": "visible skin in private contexts, tattoos, distinctive hairstyles, clothing with names or emblems",
    "health_indicators": "casts, bandages, wheelchairs, medication, hospital beds",
    "text_symbols": "name tags (even blurred), screens, documents, licence plates, mail, receipts (even partly legible)",
    "locations_timestamps": "homes, bedrooms, house numbers, street signs, landmarks, visible dates and times",
    "personal_interactions": "emotional expressions, intimate or family moments, arguments, children with carers",
    "professional_school": "offices, classrooms, uniforms, badges, school insignia",
    "cultural_political_religious": "religious dress or symbols, political signs, flags, ceremonies",
    "private_belongings": "cards, keys, letters, home interiors, vehicles, hobbies and the gear that shows them",
}


def system_prompt(role: str) -> str:
    """The system message of each stage-1 request: ``"inspect"``, ``"flag"`` or ``"instruct"``."""
    return template(f"system_{role}").strip()


def categories_text() -> str:
    """The taxonomy as a numbered list, each category with its examples."""
    return "\n".join(f"{i}. {c.id} ({c.name}): {c.description} Examples: {CATEGORY_EXAMPLES[c.id]}."
                     for i, c in enumerate(CATEGORIES, 1))


def _subject_note(class_label) -> str:
    return template("inspect_subject").format(label=class_label).strip() + "\n" if class_label else ""


def flag_prompt(class_label=None) -> str:
    """The separate flagging request (verdict and categories only), as the paper runs it before captioning."""
    return template("flag").format(taxonomy=categories_text(), subject_note=_subject_note(class_label))


def flag_repair_prompt(problem: str) -> str:
    return template("flag_repair").format(problem=problem)


def inspection_prompt(class_label=None, box_format="normalized_1000", size=None) -> str:
    """The inspection request; ``size`` is the (width, height) of the image as sent, for pixel boxes."""
    width, height = size or (0, 0)
    focus = f"the same scene centred on the {class_label}" if class_label else "the same scene centred on its main subject"
    return template("inspect").format(
        taxonomy=categories_text(),
        subject_note=_subject_note(class_label),
        public_focus=focus,
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
