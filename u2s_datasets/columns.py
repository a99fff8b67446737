"""Names and types of the columns the transform adds."""

from datasets import Features, Image, List, Value

SAFE_IMAGE = "safe_image"
IS_PRIVATE = "is_private"
PRIVACY_CATEGORIES = "privacy_categories"
PRIVATE_CAPTION = "private_caption"
PUBLIC_CAPTION = "public_caption"
EDIT_INSTRUCTION = "edit_instruction"
TARGET_CAPTION = "target_caption"  # the scene after the edit, in one prompt (single-prompt editors)
PRIVACY_REGIONS = "privacy_regions"
STATUS = "u2s_status"

# A status is one of these, optionally followed by "; " and notes (what was converted or dropped).
STATUS_EDITED = "edited"  # changed, and (with verify_edits) nothing private is found again in the edited regions
STATUS_ESCALATED = "escalated"  # the editor's output still showed private content; the regions were filled instead
STATUS_PASSTHROUGH = "passthrough"
STATUS_REDACTED = "redacted_fallback"
STATUS_ERROR_PREFIX = "error: "
NOTE_SEPARATOR = "; "

OUTPUT_FEATURES = Features(
    {
        SAFE_IMAGE: Image(),
        IS_PRIVATE: Value("bool"),
        PRIVACY_CATEGORIES: List(Value("string")),
        PRIVATE_CAPTION: Value("string"),
        PUBLIC_CAPTION: Value("string"),
        EDIT_INSTRUCTION: Value("string"),
        TARGET_CAPTION: Value("string"),
        PRIVACY_REGIONS: List({"category": Value("string"), "box": List(Value("float32"), length=4), "score": Value("float32")}),
        STATUS: Value("string"),
    }
)

# Columns that describe private content: never published unless kept on purpose.
PRIVATE_COLUMNS = (PRIVATE_CAPTION,)


def output_features(input_features=None) -> Features:
    """The input's features with the added columns (which replace any of the same name)."""
    merged = dict(input_features or {})
    merged.update(OUTPUT_FEATURES)
    return Features(merged)


def with_notes(status: str, notes) -> str:
    return NOTE_SEPARATOR.join([status, *notes]) if notes else status


def base_status(status: str) -> str:
    """The status without its notes: ``"passthrough; first of 3 frames kept"`` -> ``"passthrough"``."""
    if status is None or is_error(status):
        return status
    return status.split(NOTE_SEPARATOR, 1)[0]


def is_error(status: str) -> bool:
    return status.startswith(STATUS_ERROR_PREFIX)
