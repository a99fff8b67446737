"""The nine privacy categories of the Unsafe2Safe taxonomy, and the finer kinds counted inside them."""

from dataclasses import dataclass


@dataclass(frozen=True)
class PrivacyCategory:
    id: str
    name: str
    description: str


CATEGORIES = (
    PrivacyCategory(
        "people_faces",
        "People and faces",
        "Identifiable people: faces, full bodies, distinctive silhouettes, tattoos or birthmarks.",
    ),
    PrivacyCategory(
        "appearance_cues",
        "Appearance cues",
        "Attributes that hint at identity or demographics: hairstyle, skin, clothing with names or emblems, jewellery.",
    ),
    PrivacyCategory(
        "health_indicators",
        "Health indicators",
        "Signs of medical conditions or disability: wheelchairs, casts, medication, hospital settings.",
    ),
    PrivacyCategory(
        "text_symbols",
        "Text and symbols",
        "Readable text and identifying marks: names, addresses, phone numbers, licence plates, documents, screens, logos.",
    ),
    PrivacyCategory(
        "locations_timestamps",
        "Locations and timestamps",
        "Recognisable places, landmarks, house numbers, street signs, and visible dates or times.",
    ),
    PrivacyCategory(
        "personal_interactions",
        "Personal interactions",
        "Private moments between people: intimacy, family scenes, arguments, children with carers.",
    ),
    PrivacyCategory(
        "professional_school",
        "Professional or school settings",
        "Workplaces, uniforms, badges, classrooms and school insignia that tie a person to an institution.",
    ),
    PrivacyCategory(
        "cultural_political_religious",
        "Cultural, political or religious identifiers",
        "Religious dress or symbols, political signs, flags, protest material, cultural ceremonies.",
    ),
    PrivacyCategory(
        "private_belongings",
        "Private belongings",
        "Personal items that identify an owner: cards, keys, letters, home interiors, vehicles, pets' tags.",
    ),
)

CATEGORY_IDS = tuple(c.id for c in CATEGORIES)

# Finer kinds the local detectors tell apart inside one of the nine, so that filters, captions
# and cards can count them. Each also counts as its parent: a licence plate is text_symbols,
# the category the paper puts plates in, and prompts and parsers see the nine alone.
SUBCATEGORIES = (
    PrivacyCategory(
        "licence_plates",
        "Licence plates",
        "Vehicle registration plates: a plate-shaped line of letters and digits.",
    ),
)
PARENTS = {"licence_plates": "text_symbols"}
REGION_CATEGORY_IDS = CATEGORY_IDS + tuple(c.id for c in SUBCATEGORIES)  # what a region's category may be
_BY_ID = {c.id: c for c in CATEGORIES + SUBCATEGORIES}


def get_category(category_id: str) -> PrivacyCategory:
    try:
        return _BY_ID[category_id]
    except KeyError:
        raise KeyError(f"Unknown privacy category {category_id!r}; known: {', '.join(REGION_CATEGORY_IDS)}") from None


def parent_category(category_id: str) -> str:
    """The taxonomy category a region's category belongs to (itself for the nine)."""
    return PARENTS.get(category_id, category_id)


def with_parents(category_ids) -> list:
    """The categories with each subcategory's parent before it, in order, once each: a row's ``privacy_categories``."""
    return list(dict.fromkeys(c for category in category_ids for c in (parent_category(category), category)))


def taxonomy_text() -> str:
    """The taxonomy as a numbered list, for prompts."""
    return "\n".join(f"{i}. {c.id} ({c.name}): {c.description}" for i, c in enumerate(CATEGORIES, 1))
