"""Regions a dataset already holds (``regions_column``): read, checked, and merged with stage 1's.

Each row's value is a list of boxes ``[x0, y0, x1, y1]``, or of ``{"box" (or "bbox"), "category",
"score"}``; ``category`` is ``people_faces`` when not given. Boxes are in pixels of the image as
decoded (after EXIF rotation when it is applied), or relative to its width and height (DataComp's
``face_bboxes``). ``regions_format="auto"`` tells them apart per row and only when the numbers
leave no doubt. A box that is not four finite numbers, is empty, or lies outside the image raises
``RegionsError`` naming the box: the transform fails that row closed.
"""

import math
from typing import Optional

import numpy as np

from ..records import Inspection, Region, ReviewItem
from ..taxonomy import REGION_CATEGORY_IDS, get_category, parent_category, with_parents

DEFAULT_CATEGORY = "people_faces"
RELATIVE_SLACK = 0.01  # relative boxes a detector drew a hair past the border still count as relative


class RegionsError(ValueError):
    """A row's regions cannot be used; the message names the column, the box and the problem."""


def read_regions(value, size: tuple, column: str, regions_format: str = "auto") -> Optional[list]:
    """The ``Region``s in ``value`` in integer pixels of an image of ``size``; None when the value is missing."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise RegionsError(f"regions_column {column!r} holds {type(value).__name__}, not a list of boxes")
    entries = [_entry(column, i, item) for i, item in enumerate(value)]
    relative = _relative(column, [coords for _, coords, _ in entries], regions_format)
    return [Region(category, _pixel_box(column, i, coords, relative, size), score)
            for i, (category, coords, score) in enumerate(entries)]


def _entry(column, index, item) -> tuple:
    """(category, four floats, score) of one box as the column holds it."""
    where = f"regions_column {column!r}: box {index}"
    category, score = DEFAULT_CATEGORY, 1.0
    if isinstance(item, dict):
        category = item.get("category") or DEFAULT_CATEGORY
        if category not in REGION_CATEGORY_IDS:
            raise RegionsError(f"{where}: unknown category {category!r}; known: {', '.join(REGION_CATEGORY_IDS)}")
        score = item.get("score", 1.0)
        if not _number(score) or not 0 <= score <= 1:
            raise RegionsError(f"{where}: score {score!r} is not a number from 0 to 1")
        item = item.get("box", item.get("bbox"))
        if item is None:
            raise RegionsError(f"{where}: a dict needs a 'box' (or 'bbox') [x0, y0, x1, y1]")
    if isinstance(item, np.ndarray):
        item = item.tolist()
    if not isinstance(item, (list, tuple)) or len(item) != 4 or not all(_number(v) for v in item):
        shown = [round(v, 4) if isinstance(v, float) else v for v in item] if isinstance(item, (list, tuple)) else item
        raise RegionsError(f"{where} is {shown!r}, not four finite numbers [x0, y0, x1, y1]")
    x0, y0, x1, y1 = (float(v) for v in item)
    if x1 <= x0 or y1 <= y0:
        raise RegionsError(f"{where} {_shown((x0, y0, x1, y1))} is empty: x1 must exceed x0 and y1 must exceed y0")
    return category, (x0, y0, x1, y1), float(score)


def _shown(coords) -> list:
    return [round(v, 4) for v in coords]  # float32 columns would show 0.30000001192092896


def _number(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)


def _relative(column, boxes, regions_format) -> bool:
    if regions_format != "auto":
        return regions_format == "relative"
    kinds = set()
    for coords in boxes:
        if max(abs(v) for v in coords) > 1 + RELATIVE_SLACK:
            kinds.add("pixels")
        elif not all(v.is_integer() for v in coords):
            kinds.add("relative")
    if kinds == {"pixels", "relative"}:
        raise RegionsError(f"regions_column {column!r}: this row mixes relative boxes (within 0..1) with pixel boxes; "
                           "set regions_format='pixels' or 'relative'")
    if boxes and not kinds:  # only 0s and 1s: a whole image, or boxes of a pixel
        raise RegionsError(f"regions_column {column!r}: boxes of only 0 and 1 can be pixels or relative; "
                           "set regions_format='pixels' or 'relative'")
    return kinds == {"relative"}


def _pixel_box(column, index, coords, relative, size) -> tuple:
    width, height = size
    where = f"regions_column {column!r}: box {index} {_shown(coords)}"
    if relative:
        if min(coords) < -RELATIVE_SLACK or max(coords) > 1 + RELATIVE_SLACK:
            raise RegionsError(f"{where}: relative coordinates must lie within 0..1")
        coords = (coords[0] * width, coords[1] * height, coords[2] * width, coords[3] * height)
    x0, y0, x1, y1 = coords
    box = (max(0, math.floor(x0)), max(0, math.floor(y0)), min(width, math.ceil(x1)), min(height, math.ceil(y1)))
    if box[2] <= box[0] or box[3] <= box[1]:
        raise RegionsError(f"{where} lies outside the {width}x{height} image")
    return box


def with_given_regions(inspection: Inspection, given: list, column: str, done: Optional[str] = None) -> Inspection:
    """``inspection`` with the ``given`` regions added: private when there are any, categories and
    review items for them, and captions that name those stage 1 did not find itself."""
    if not given:
        return inspection
    new = [g for g in given if not any(_same(g, r) for r in inspection.regions)]
    categories = with_parents(list(inspection.categories) + [g.category for g in given])
    private_caption, public_caption = inspection.private_caption, inspection.public_caption
    if new:
        counts = _counts(new)
        found = {r.category for r in inspection.regions}  # "1 more face" beside faces stage 1 counted itself
        private_caption = _extended(private_caption, [_private_phrase(c, n, c in found) for c, n in counts], inspection.is_private)
        public_caption = _extended(public_caption, [_public_phrase(c, n, done, c in found) for c, n in counts], inspection.is_private)
    review = list(inspection.review) + [
        ReviewItem(f"{n} {_noun(c, n)}", f"marked in the dataset's {column!r} column", c) for c, n in _counts(given)
    ]
    return Inspection(True, categories, private_caption, public_caption, list(inspection.regions) + list(given), review)


def _same(a: Region, b: Region) -> bool:
    """Two boxes of one finding: the same category family, overlapping by half their union."""
    if parent_category(a.category) != parent_category(b.category):
        return False
    ix = max(0, min(a.box[2], b.box[2]) - max(a.box[0], b.box[0]))
    iy = max(0, min(a.box[3], b.box[3]) - max(a.box[1], b.box[1]))
    area = lambda r: (r.box[2] - r.box[0]) * (r.box[3] - r.box[1])  # noqa: E731
    inter = ix * iy
    return inter >= 0.5 * (area(a) + area(b) - inter)


def _counts(regions) -> list:
    counts = {}
    for region in regions:
        counts[region.category] = counts.get(region.category, 0) + 1
    return list(counts.items())


_NOUNS = {"people_faces": ("face", "faces"), "licence_plates": ("licence plate", "licence plates"),
          "text_symbols": ("area of text", "areas of text")}


def _noun(category, n) -> str:
    if category in _NOUNS:
        return _NOUNS[category][n != 1]
    return f"{'area' if n == 1 else 'areas'} of {get_category(category).name.lower()}"


def _private_phrase(category, n, more=False) -> str:
    return f"{n} {'more ' if more else ''}{_noun(category, n)}"


def _public_phrase(category, n, done, more=False) -> str:
    if category == "people_faces":
        whose = "whose face is" if n == 1 else "whose faces are"
        return f"{n} {'more ' if more else ''}{'person' if n == 1 else 'people'} {whose} {done or 'not recognisable'}"
    return f"{n if more or n > 1 else 'a'} {'more ' if more else ''}{done or 'unrecognisable'} {_noun(category, n)}"


def _extended(caption: str, phrases: list, already_private: bool) -> str:
    joined = " and ".join(phrases)
    if caption.endswith("."):
        return f"{caption} It also shows {joined}."
    return f"{caption} {'and' if already_private else 'with'} {joined}"


# -- the transform's rows


def column_values(config, batch, table, names, n) -> list:
    """Each row's value of ``regions_column`` (None for every row without one)."""
    column = config.inspect.regions_column
    if column is None:
        return [None] * n
    if column not in names:
        raise KeyError(f"regions_column {column!r} not found; the dataset has: {', '.join(names)}")
    return table.column(column).to_pylist() if table is not None else list(batch[column])


def read_into_rows(config, rows) -> None:
    """Each decoded row's column value as Regions in its image's pixels; a malformed one fails the row."""
    settings = config.inspect
    if settings.regions_column is None:
        return
    for row in rows:
        try:
            row.given_regions = read_regions(row.given_regions, row.decoded.image.size, settings.regions_column,
                                             settings.regions_format)
        except RegionsError as e:
            row.fail(str(e))
            continue
        if row.given_regions is None and settings.regions_mode == "only":
            row.fail(f"regions_column {settings.regions_column!r} is missing (None) in this row, and "
                     "regions_mode='only' looks nowhere else (an empty list means no regions)")


def add_to_rows(config, rows, labels) -> None:
    """The rows' given regions merged into their inspections (built from the regions alone in "only" mode)."""
    column = config.inspect.regions_column
    if column is None:
        return
    from .local import DONE, subject_of

    for row in rows:
        if row.error is not None:
            continue
        if row.inspection is None:  # regions_mode="only": no inspector ran
            subject = subject_of(labels[row.index])
            row.inspection = Inspection(is_private=False, private_caption=subject, public_caption=subject)
        row.inspection = with_given_regions(row.inspection, row.given_regions or [], column, DONE.get(config.edit.editor))
