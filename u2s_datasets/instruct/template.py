"""The offline instruction writer: an identity-neutral edit instruction from the review.

With a generative editor the instruction asks for new, generic content; with a classical
region editor it says what that editor does to each region, so the triplet never claims an
edit that did not happen ("faces blurred", not "replaced with a generic face").
"""

from ..records import Instruction

_GENERATIVE = {
    "people_faces": "replace every face with a different, generic face that matches the pose and lighting",
    "appearance_cues": "change identifying clothing, hairstyles and accessories to plain, generic ones",
    "health_indicators": "remove visible signs of medical conditions",
    "text_symbols": "make all text, numbers and logos unreadable",
    "locations_timestamps": "replace recognisable landmarks, signs and dates with generic ones",
    "personal_interactions": "make the people generic while keeping their poses",
    "professional_school": "remove badges, insignia and uniform markings",
    "cultural_political_religious": "replace identifying symbols and dress with neutral ones",
    "private_belongings": "make personal items generic and unidentifiable",
    "licence_plates": "replace licence plates with blank plates",
}

# What each classical editor does to a region, and what the regions of each category hold.
_REGION_VERBS = {
    "blur": "blur",
    "pixelate": "pixelate",
    "fill": "cover with a solid colour",
    "inpaint": "paint over from the surroundings",
}
_REGION_CONTENT = {"people_faces": "every face", "text_symbols": "all text", "licence_plates": "every licence plate"}


class TemplateInstructor:
    def __init__(self, config, rank=None, **shared):
        self.verb = _REGION_VERBS.get(config.edit.editor)

    def instruct(self, inspections: list) -> list:
        return [self._instruct_one(inspection) for inspection in inspections]

    def _instruct_one(self, inspection) -> Instruction:
        if self.verb is not None:
            targets = [_REGION_CONTENT.get(c, "the private content") for c in inspection.categories]
            targets = list(dict.fromkeys(targets)) or ["the private content"]
            instruction = f"{self.verb} {_joined(targets)}"
        else:
            actions = [_GENERATIVE[c] for c in inspection.categories if c in _GENERATIVE] or ["make every identifying detail generic"]
            instruction = "; ".join(actions)
        instruction = instruction[0].upper() + instruction[1:] + "; keep the layout, objects and actions unchanged."
        return Instruction(instruction=instruction, target_caption=inspection.public_caption)


def _joined(items) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
