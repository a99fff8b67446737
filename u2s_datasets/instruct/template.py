"""The offline instruction writer: an identity-neutral edit instruction from the review."""

from ..records import Instruction

_ACTIONS = {
    "people_faces": "replace every face with a different, generic face that matches the pose and lighting",
    "appearance_cues": "change identifying clothing, hairstyles and accessories to plain, generic ones",
    "health_indicators": "remove visible signs of medical conditions",
    "text_symbols": "make all text, numbers and logos unreadable",
    "locations_timestamps": "replace recognisable landmarks, signs and dates with generic ones",
    "personal_interactions": "make the people generic while keeping their poses",
    "professional_school": "remove badges, insignia and uniform markings",
    "cultural_political_religious": "replace identifying symbols and dress with neutral ones",
    "private_belongings": "make personal items generic and unidentifiable",
}


class TemplateInstructor:
    def __init__(self, config, rank=None, **shared):
        pass

    def instruct(self, inspections: list) -> list:
        return [self._instruct_one(inspection) for inspection in inspections]

    @staticmethod
    def _instruct_one(inspection) -> Instruction:
        actions = [_ACTIONS[c] for c in inspection.categories if c in _ACTIONS] or ["make every identifying detail generic"]
        instruction = "; ".join(actions)
        instruction = instruction[0].upper() + instruction[1:] + "; keep the layout, objects and actions unchanged."
        return Instruction(instruction=instruction, target_caption=inspection.public_caption)
