"""Names and types of the columns the transform adds."""

from datasets import Features, Image, List, Value

SAFE_IMAGE = "safe_image"
IS_PRIVATE = "is_private"
PRIVACY_CATEGORIES = "privacy_categories"
PRIVATE_CAPTION = "private_caption"
PUBLIC_CAPTION = "public_caption"
EDIT_INSTRUCTION = "edit_instruction"
PRIVACY_REGIONS = "privacy_regions"
STATUS = "u2s_status"

STATUS_EDITED = "edited"
STATUS_PASSTHROUGH = "passthrough"
STATUS_REDACTED = "redacted_fallback"
STATUS_ERROR_PREFIX = "error: "

OUTPUT_FEATURES = Features(
    {
        SAFE_IMAGE: Image(),
        IS_PRIVATE: Value("bool"),
        PRIVACY_CATEGORIES: List(Value("string")),
        PRIVATE_CAPTION: Value("string"),
        PUBLIC_CAPTION: Value("string"),
        EDIT_INSTRUCTION: Value("string"),
        PRIVACY_REGIONS: List({"category": Value("string"), "box": List(Value("int32"), length=4), "score": Value("float32")}),
        STATUS: Value("string"),
    }
)


def output_features(input_features=None) -> Features:
    """The input's features with the added columns (which replace any of the same name)."""
    merged = dict(input_features or {})
    merged.update(OUTPUT_FEATURES)
    return Features(merged)


def is_error(status: str) -> bool:
    return status.startswith(STATUS_ERROR_PREFIX)


