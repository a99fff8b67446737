"""Which lines the text detector read are licence plates: a plate's shape and a plate's characters.

A plate is a short line of capital letters and digits, both present (``AB12 CDE``, ``B MW 1234``,
``AB-123-CD``, ``7ABC123``), 4 to 10 of them, in at most four groups split by a space, hyphen,
dot or middle dot, no run of letters longer than four (so ``PHARMACY 24`` is a sign, not a
plate). Its box, as the detector draws it around the characters, is 1.5 to 8 times as wide as
tall: plates are 2:1 (North America) to 4.7:1 (Europe), and the characters fill most of them.
PP-OCR often reads a plate's groups as separate lines when the gap between them is wide, so
neighbouring lines of the same height are also judged together.
"""

import re

MIN_ASPECT, MAX_ASPECT = 1.5, 8.0  # width / height of the box around the characters (upright, or turned a little)
MIN_CHARS, MAX_CHARS = 4, 10
MAX_LETTER_RUN = 4
MAX_GAP = 1.5  # neighbouring lines at most this many heights apart are one plate's groups
_PLATE = re.compile(r"[A-Z0-9]+(?:[ \-.\u00b7]?[A-Z0-9]+){0,3}")
_LETTER_RUN = re.compile(r"[A-Z]+")


def plate_text(text: str) -> bool:
    """Whether ``text`` is written the way licence plates are."""
    text = text.strip()
    if not _PLATE.fullmatch(text):
        return False
    characters = re.sub(r"[^A-Z0-9]", "", text)
    if not MIN_CHARS <= len(characters) <= MAX_CHARS:
        return False
    if not (any(c.isdigit() for c in characters) and any(c.isalpha() for c in characters)):
        return False
    return max(len(run) for run in _LETTER_RUN.findall(characters)) <= MAX_LETTER_RUN


def plate_shape(box) -> bool:
    """Whether a line's box (x0, y0, x1, y1) has a plate's proportions."""
    x0, y0, x1, y1 = box
    height = y1 - y0
    return height > 0 and MIN_ASPECT <= (x1 - x0) / height <= MAX_ASPECT


def licence_plates(lines: list) -> list:
    """The plates among ``lines`` (detections with ``box`` and ``text``): for each, the indices of
    its lines, left to right (one line, or the groups of one plate read apart)."""
    plates = []
    for group in _neighbour_groups(lines):
        if plate_text(" ".join(lines[i].text for i in group)) and plate_shape(union_box([lines[i].box for i in group])):
            plates.append(group)
        elif len(group) > 1:
            plates += [[i] for i in group if plate_text(lines[i].text) and plate_shape(lines[i].box)]
    return plates


def _neighbour_groups(lines: list) -> list:
    """Runs of lines side by side on one baseline, left to right: lines of the same height, overlapping
    vertically, at most ``MAX_GAP`` heights apart. Every line is in exactly one group."""
    order = sorted(range(len(lines)), key=lambda i: lines[i].box[0])
    groups, placed = [], set()
    for i in order:
        if i in placed:
            continue
        group = [i]
        placed.add(i)
        for j in order:
            if j not in placed and _follows(lines[group[-1]].box, lines[j].box):
                group.append(j)
                placed.add(j)
        groups.append(group)
    return groups


def _follows(left, right) -> bool:
    height_a, height_b = left[3] - left[1], right[3] - right[1]
    if min(height_a, height_b) <= 0 or max(height_a, height_b) > 1.33 * min(height_a, height_b):
        return False
    overlap = min(left[3], right[3]) - max(left[1], right[1])
    gap = right[0] - left[2]
    return overlap >= 0.6 * min(height_a, height_b) and -0.25 * height_a <= gap <= MAX_GAP * max(height_a, height_b)


def union_box(boxes) -> tuple:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
