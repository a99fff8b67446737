"""What the stages hand to each other, one record per image."""

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class Region:
    """A private area of an image, in pixel coordinates of the original image."""

    category: str
    box: tuple  # (x0, y0, x1, y1), ints, x1/y1 exclusive
    score: float = 1.0
    label: str = ""  # what it is ("face", or the text read there); never written to the dataset

    def as_column(self) -> dict:
        return {"category": self.category, "box": [int(v) for v in self.box], "score": float(self.score)}


@dataclass
class ReviewItem:
    item: str
    reason: str
    category: str


@dataclass
class Inspection:
    """Stage-1 verdict for one image. ``error`` set means the verdict could not be reached."""

    is_private: bool
    categories: list = field(default_factory=list)
    private_caption: str = ""
    public_caption: str = ""
    regions: list = field(default_factory=list)  # list[Region]
    review: list = field(default_factory=list)  # list[ReviewItem]
    error: Optional[str] = None

    @classmethod
    def failed(cls, reason: str) -> "Inspection":
        # Fail closed: an image we could not inspect is treated as private.
        return cls(is_private=True, error=reason)


@dataclass
class Instruction:
    """Stage-1 output of the instructor: the edit instruction and a single-prompt target caption."""

    instruction: str
    target_caption: str = ""


@dataclass
class EditRequest:
    """One private image for the editor: the RGB working image and everything known about it."""

    image: object  # PIL.Image.Image, RGB
    inspection: Inspection
    instruction: Instruction
    mask: Optional[object] = None  # HxW float32 in [0, 1] over the regions, or None when none are known
    seed: int = 0
