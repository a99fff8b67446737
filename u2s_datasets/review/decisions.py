"""Review decisions: one JSON line each in ``OUTPUT/review.jsonl``, appended as they are made.

A row's reviewed state is the replay of its lines in order. Regions are named by category and
box, never by position, so replaying the file after it has been applied changes nothing: a
deleted region is already gone, an added one is already there.
"""

import datetime
import getpass
import json
import os
import threading
from dataclasses import dataclass, field
from typing import Optional

from .. import taxonomy

REVIEW_FILE = "review.jsonl"
ACTIONS = ("accept", "redact_image", "delete_region", "add_region", "reset")
REDACTED_NOTE = "redacted by reviewer"  # the status note of a row a reviewer had redacted whole
CATEGORY_IDS = taxonomy.REGION_CATEGORY_IDS  # a drawn region is one of these (licence plates included)
BOX_TOLERANCE = 0.01  # pixels; boxes come back from float32 columns

_append_lock = threading.Lock()


class DecisionError(ValueError):
    """A decision that cannot be recorded: unknown row, action or box."""


@dataclass
class RowReview:
    """What reviewers decided about one row, replayed from its decision lines."""

    verdict: Optional[str] = None  # "accept" | "redact_image" | None
    deleted: list = field(default_factory=list)  # [{"category", "box"}] of stored regions
    added: list = field(default_factory=list)  # [{"category", "box", "score"}]
    drawn: list = field(default_factory=list)  # regions first named by an add_region: drawn, not the run's
    named: list = field(default_factory=list)  # every region a line named, in order of first mention
    reviewers: list = field(default_factory=list)
    decisions: int = 0
    last_time: Optional[str] = None

    @property
    def reviewed(self) -> bool:
        return self.decisions > 0

    @property
    def removed(self) -> list:
        """The run's own regions this review deletes (each once; regions the reviewer drew are not counted)."""
        removed = []
        for region in self.deleted:
            if not any(same_region(region, r) for r in removed + self.drawn):
                removed.append(region)
        return removed

    def regions(self, stored: list) -> list:
        """The stored regions without the deleted ones, plus the added ones not stored yet."""
        kept = [r for r in stored if not any(same_region(r, d) for d in self.deleted)]
        return kept + [a for a in self.added if not any(same_region(a, r) for r in kept)]

    def changes(self, row) -> bool:
        """True when applying this review would change the row (a ``saved.RowFacts``): its regions or image."""
        redacted = REDACTED_NOTE in row.notes
        if self.verdict == "redact_image" or redacted:
            return (self.verdict == "redact_image") != redacted
        return not _same_regions(self.regions(row.regions), row.regions)


def row_key(split: str, row: int) -> str:
    """How a row is named in counts and messages: ``"3"``, or ``"train/3"`` in a DatasetDict."""
    return f"{split}/{row}" if split else str(row)


def os_user() -> str:
    """The operating-system account running this process ("unknown" where there is none to name)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return "unknown"


def decision(split: str, row: int, action: str, reviewer: str, category=None, box=None, os_user: str = None) -> dict:
    """A checked decision line (without bounds checks, which need the image).

    ``reviewer`` is the name the reviewer typed (self-declared); ``os_user``, when given, the
    account that ran the review server, recorded beside it.
    """
    if action not in ACTIONS:
        raise DecisionError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if not isinstance(row, int) or isinstance(row, bool) or row < 0:
        raise DecisionError(f"row must be a non-negative integer, got {row!r}")
    line = {"split": split or "", "row": row, "action": action, "reviewer": str(reviewer or "unknown"),
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if os_user is not None:
        line["os_user"] = str(os_user)
    if action in ("delete_region", "add_region"):
        if not category or not isinstance(category, str):
            raise DecisionError(f"{action} needs a category")
        if action == "add_region" and category not in CATEGORY_IDS:
            raise DecisionError(f"unknown category {category!r}; one of {', '.join(CATEGORY_IDS)}")
        line["category"] = category
        line["box"] = _box(box)
    return line


def append(folder: str, line: dict) -> None:
    """Add one decision to the folder's review file, durably, before the page hears back."""
    with _append_lock, open(os.path.join(folder, REVIEW_FILE), "a", encoding="utf-8") as f:
        f.write(json.dumps(line, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read(folder: str) -> list:
    """Every decision line of the folder's review file ([] without one); a broken line is an error."""
    path = os.path.join(folder, REVIEW_FILE)
    if not os.path.exists(path):
        return []
    lines = []
    with open(path, encoding="utf-8") as f:
        for number, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                lines.append(json.loads(text))
            except json.JSONDecodeError as e:
                raise DecisionError(f"{REVIEW_FILE} line {number} is not JSON ({e})") from None
    return lines


def replay(lines: list) -> dict:
    """row key -> RowReview, the lines taken in order."""
    reviews = {}
    for line in lines:
        key = row_key(line.get("split", ""), line["row"])
        review = reviews.setdefault(key, RowReview())
        action = line["action"]
        if action == "reset":
            reviews[key] = review = RowReview(drawn=review.drawn, named=review.named, decisions=review.decisions,
                                              reviewers=review.reviewers)
        elif action in ("accept", "redact_image"):
            review.verdict = action
        elif action == "delete_region":
            region = {"category": line["category"], "box": line["box"]}
            _name(review, region, drawn=False)
            review.added = [a for a in review.added if not same_region(a, region)]
            review.deleted.append(region)
        elif action == "add_region":
            region = {"category": line["category"], "box": line["box"], "score": 1.0}
            _name(review, region, drawn=True)
            review.deleted = [d for d in review.deleted if not same_region(d, region)]
            review.added.append(region)
        review.decisions += 1
        review.last_time = line.get("time")
        if line.get("reviewer") and line["reviewer"] not in review.reviewers:
            review.reviewers.append(line["reviewer"])
    return reviews


def _name(review: RowReview, region: dict, drawn: bool) -> None:
    """Remember a region's first mention: an add_region first means the reviewer drew it."""
    if not any(same_region(region, r) for r in review.named):
        region = {"category": region["category"], "box": region["box"]}
        review.named.append(region)
        if drawn:
            review.drawn.append(region)


def _box(box) -> list:
    try:
        values = [int(round(float(v))) for v in box]  # pixel edges, as the detectors write them
    except (TypeError, ValueError):
        raise DecisionError(f"a box is four numbers [x0, y0, x1, y1], got {box!r}") from None
    if len(values) != 4 or values[2] <= values[0] or values[3] <= values[1]:
        raise DecisionError(f"a box is [x0, y0, x1, y1] with x1 > x0 and y1 > y0, got {box!r}")
    return values


def same_region(a: dict, b: dict) -> bool:
    return a["category"] == b["category"] and all(abs(float(x) - float(y)) <= BOX_TOLERANCE for x, y in zip(a["box"], b["box"]))


def _same_regions(a: list, b: list) -> bool:
    return len(a) == len(b) and all(same_region(x, y) for x, y in zip(a, b))
