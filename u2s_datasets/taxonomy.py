"""The nine privacy categories of the Unsafe2Safe taxonomy."""

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
_BY_ID = {c.id: c for c in CATEGORIES}


def get_category(category_id: str) -> PrivacyCategory:
    try:
        return _BY_ID[category_id]
    except KeyError:
        raise KeyError(f"Unknown privacy category {category_id!r}; known: {', '.join(CATEGORY_IDS)}") from None


def taxonomy_text() -> str:
    """The taxonomy as a numbered list, for prompts."""
    return "\n".join(f"{i}. {c.id} ({c.name}): {c.description}" for i, c in enumerate(CATEGORIES, 1))
