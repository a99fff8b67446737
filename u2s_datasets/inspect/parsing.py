"""Reading model answers: JSON (or section-style text) into checked stage-1 records.

Models wrap JSON in code fences, add a sentence around it, leave trailing commas, use
Python quoting, run out of tokens, or answer in labelled sections instead. The readers
here accept all of that, and reject what cannot be trusted with an ``AnswerError`` that
says what was wrong, so the caller can ask once more and then fail closed.

Recall comes first: an uncertain or inconsistent verdict reads as private.
"""

import ast
import json
import logging
import re
from typing import Optional

from ..prompts import MAX_CAPTION_WORDS, MAX_INSTRUCTION_WORDS, MAX_REVIEW_ITEMS, MAX_TARGET_WORDS
from ..records import Inspection, Instruction, Region, ReviewItem
from ..taxonomy import CATEGORIES, CATEGORY_IDS

logger = logging.getLogger(__name__)

BOX_FORMATS = ("normalized_1000", "pixels")


class AnswerError(ValueError):
    """A model answer that cannot be used; the message names the problem."""


# -- finding the object in the text

_FENCE = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)(?:```|$)", re.S)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', re.S)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
_PY_WORDS = {"true": "True", "false": "False", "null": "None"}


def extract_object(text, labels: dict) -> dict:
    """The answer's JSON object, or its labelled sections when there is no object.

    ``labels`` maps a key to the regular expression of its section heading
    (``"public_caption": r"public\\s*caption"``), for answers written as sections.
    """
    return _extract(text, labels)[0]


def _extract(text, labels: dict):
    """``(object, truncated)``: ``truncated`` when the JSON was cut off and closed by hand."""
    if not isinstance(text, str) or not text.strip():
        raise AnswerError("the answer is empty")
    fenced = [m.group(1) for m in _FENCE.finditer(text)]
    for candidate in fenced + [text]:
        start = candidate.find("{")
        if start < 0:
            continue
        block, truncated = _balanced_block(candidate, start)
        obj = _loads_lenient(block)
        if obj is not None:
            if truncated:
                logger.debug("answer was cut off; read what was there")
            return obj, truncated
    sections = _sections(text, labels)
    if sections:
        return sections, False
    if "{" in text:
        raise AnswerError("the JSON object in the answer is malformed")
    raise AnswerError("the answer has no JSON object")


def _balanced_block(text: str, start: int):
    """``text[start:]`` up to the brace that closes the one at ``start``; closed by hand when cut off."""
    stack, quote, escaped, string_start = [], None, False, start
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
            continue
        if ch in "\"'":
            # An apostrophe only opens a string where a value or key can start.
            if ch == '"' or _prev_nonspace(text, i) in "{[,:":
                quote, string_start = ch, i
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]":
            if stack:
                stack.pop()
            if not stack:
                return text[start : i + 1], False
    # Cut off (token limit): a half-written string is not trusted, so it goes with its key;
    # the open brackets are closed so the finished fields can still be read.
    tail = text[start:string_start] if quote else text[start:]
    tail = re.sub(r"""(?:,?\s*["'][^"']*["']\s*:)?[\s,:]*$""", "", tail)
    return tail + "".join(reversed(stack)), True


def _prev_nonspace(text: str, i: int) -> str:
    j = i - 1
    while j >= 0 and text[j].isspace():
        j -= 1
    return text[j] if j >= 0 else "{"


def _loads_lenient(block: str):
    attempts = (block, _outside_strings(block, lambda s: _TRAILING_COMMA.sub(r"\1", s)))
    for attempt in attempts:
        try:
            obj = json.loads(attempt)
            return obj if isinstance(obj, dict) else None
        except ValueError:
            pass
    # Python-style literals ('single quotes', True/None): literal_eval evaluates no code.
    python = _outside_strings(attempts[1], lambda s: re.sub(r"\b(true|false|null)\b", lambda m: _PY_WORDS[m.group(1)], s))
    try:
        obj = ast.literal_eval(python)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def _outside_strings(text: str, fn) -> str:
    out, last = [], 0
    for m in _STRING.finditer(text):
        out.append(fn(text[last : m.start()]))
        out.append(m.group(0))
        last = m.end()
    out.append(fn(text[last:]))
    return "".join(out)


_HEADING = re.compile(r"^\s*(?:[-*#>\d.)\s]*)\**\s*([A-Za-z][A-Za-z _-]{1,40}?)\s*\??\s*\**\s*[:=]\s*\**\s*(.*)$")


def _sections(text: str, labels: dict) -> dict:
    """``Label: value`` sections (markdown, numbering and bullets allowed) -> {key: text or [lines]}."""
    patterns = {key: re.compile(rf"^(?:{pattern})$", re.I) for key, pattern in labels.items()}
    found, current = {}, None
    for line in text.splitlines():
        heading = _HEADING.match(line)
        key = None
        if heading:
            name = heading.group(1).strip().replace("_", " ")
            key = next((k for k, p in patterns.items() if p.match(name)), None)
        if key is not None:
            current = key
            found[key] = [heading.group(2).strip()] if heading.group(2).strip() else []
        elif current is not None and line.strip():
            found[current].append(line.strip())
    return {key: lines for key, lines in found.items()}


# -- inspection

INSPECTION_LABELS = {
    "is_private": r"is\s*private|private\?|privacy\s*verdict|verdict|contains\s*private\s*information|private",
    "categories": r"(?:privacy\s*)?categor(?:y|ies)",
    "review": r"review|private\s*items|items|findings",
    "private_caption": r"private\s*caption|full\s*caption|private\s*description",
    "public_caption": r"public\s*caption|safe\s*caption|public\s*description",
}
_KEY_ALIASES = {
    "private": "is_private",
    "privacy": "is_private",
    "verdict": "is_private",
    "privacy_categories": "categories",
    "category": "categories",
    "items": "review",
    "private_items": "review",
    "findings": "review",
}
_YES = {"true", "yes", "y", "1", "private", "sensitive", "unsafe"}
_NO = {"false", "no", "n", "0", "not private", "public", "safe", "not_private", "nonprivate", "non-private"}
# "none" is no verdict at all (or "no findings" said loosely): not a commitment to "not private".
_UNSURE = {"none", "unsure", "uncertain", "maybe", "possibly", "unknown", "unclear", "partly", "partially", "likely", "probably"}
_CATEGORY_WORDS = (  # first match wins: the more specific wording comes first
    ("cultural_political_religious", ("cultural", "political", "religious", "religion", "ethnic")),
    ("health_indicators", ("health", "medical", "disab", "medicine", "medication")),
    ("text_symbols", ("text", "symbol", "logo", "plate", "document", "writing")),
    ("locations_timestamps", ("location", "timestamp", "landmark", "place", "address", "date")),
    ("personal_interactions", ("interaction", "intimate", "relationship")),
    ("professional_school", ("professional", "school", "workplace", "uniform", "badge")),
    ("private_belongings", ("belonging", "possession", "property", "vehicle")),
    ("appearance_cues", ("appearance", "clothing", "tattoo", "hair", "jewel")),
    ("people_faces", ("face", "people", "person", "human", "body", "identity", "individual")),
)
_NAME_TO_ID = {re.sub(r"[^a-z]+", " ", c.name.lower()).strip(): c.id for c in CATEGORIES}


def parse_inspection(text, image_size, box_format: str = "normalized_1000", sent_size=None) -> Inspection:
    """A model answer -> a checked ``Inspection`` (boxes in pixels of ``image_size``), or ``AnswerError``.

    ``box_format`` says how the model writes boxes: ``"normalized_1000"`` (0-1000 of width and
    height; 0-1 fractions are recognised too) or ``"pixels"`` of the image as sent (``sent_size``).
    """
    obj, truncated = _extract(text, INSPECTION_LABELS)
    return inspection_from_object(obj, image_size, box_format, sent_size, truncated=truncated)


FLAG_LABELS = {key: INSPECTION_LABELS[key] for key in ("is_private", "categories")}


def parse_flag(text) -> tuple:
    """A flagging answer -> ``(is_private, categories)``. Recall first: no verdict or an unsure one is private."""
    obj, _ = _extract(text, FLAG_LABELS)
    fields = _normalise_keys(obj)
    verdict = _verdict(fields.get("is_private"))
    categories = _categories(fields.get("categories"))
    return (True if verdict is None else verdict or bool(categories)), categories


def inspection_from_object(obj: dict, image_size, box_format="normalized_1000", sent_size=None, truncated=False) -> Inspection:
    """A parsed answer -> ``Inspection``. ``truncated``: the answer was cut off, so its boxes may be incomplete.

    Regions are kept only when they are known to cover every finding: one finding without a
    usable box, findings beyond ``MAX_REVIEW_ITEMS``, or a cut-off answer leave ``regions``
    empty, and the editor then changes the whole image rather than only the boxed part.
    """
    fields = _normalise_keys(obj)
    verdict = _verdict(fields.get("is_private"))
    categories = _categories(fields.get("categories"))
    review, boxes, complete = _review(fields.get("review"), image_size, box_format, sent_size or image_size)
    if not complete or truncated:
        if boxes:
            logger.debug("boxes do not cover every finding (cut off or missing); the whole image is edited")
        boxes = []
    for item in review:
        if item.category and item.category not in categories:
            categories.append(item.category)
    private_caption = _sentence(fields.get("private_caption"), "private_caption", MAX_CAPTION_WORDS)
    public_caption = _sentence(fields.get("public_caption"), "public_caption", MAX_CAPTION_WORDS)
    if private_caption is None:
        raise AnswerError('"private_caption" is missing or empty')
    # Recall first: no verdict, an unsure one, or "not private" next to listed findings all read as private.
    is_private = True if verdict is None else verdict or bool(categories or review)
    if public_caption is None:
        if is_private:
            raise AnswerError('"public_caption" is missing or empty')
        public_caption = private_caption
    return Inspection(
        is_private=is_private,
        categories=categories if is_private else [],
        private_caption=private_caption,
        public_caption=public_caption,
        regions=boxes if is_private else [],
        review=review if is_private else [],
    )


def _normalise_keys(obj: dict) -> dict:
    fields = {}
    for key, value in obj.items():
        name = re.sub(r"[^a-z]+", "_", str(key).lower()).strip("_")
        name = _KEY_ALIASES.get(name, name)
        fields.setdefault(name, value)
    return fields


def _verdict(value) -> Optional[bool]:
    """True/False, or None when the model did not commit (read as private by the caller)."""
    if value is None:
        return None
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        value = value[0]  # a one-line section
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        words = value.strip().lower().rstrip(".!").strip()
        if words in _YES:
            return True
        if words in _NO:
            return False
        first = re.split(r"[\s,;:(]+", words, maxsplit=1)[0]
        if first in _UNSURE or any(w in words for w in _UNSURE):
            return None
        if first in ("yes", "true", "private"):
            return True
        if first in ("no", "false") or words.startswith("not private"):
            return False
    raise AnswerError(f'"is_private" must be true or false, got {value!r:.60}')


def _categories(value) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        value = re.split(r"[,;\n/]|\band\b", value)
    elif isinstance(value, list) and all(isinstance(v, str) for v in value) and len(value) == 1:
        value = re.split(r"[,;\n]", value[0])
    if not isinstance(value, list):
        raise AnswerError(f'"categories" must be a list of category ids, got {type(value).__name__}')
    ids = []
    for raw in value:
        if isinstance(raw, dict):
            raw = raw.get("id") or raw.get("category") or raw.get("name")
        category = category_id(raw)
        if category is None:
            logger.debug("dropped unknown privacy category %r", raw)
        elif category not in ids:
            ids.append(category)
    return ids


def category_id(raw) -> Optional[str]:
    """A category as a model may write it (id, name, number, close wording) -> its id, or None."""
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, (int, float)) and float(raw).is_integer() and 1 <= int(raw) <= len(CATEGORY_IDS):
        return CATEGORY_IDS[int(raw) - 1]
    if not isinstance(raw, str):
        return None
    text = raw.strip().lower()
    if text in CATEGORY_IDS:
        return text
    if re.fullmatch(r"\d", text) and 1 <= int(text) <= len(CATEGORY_IDS):
        return CATEGORY_IDS[int(text) - 1]
    words = re.sub(r"^\d+[.)]\s*", "", text)
    words = re.sub(r"[^a-z]+", " ", words).strip()
    if words.replace(" ", "_") in CATEGORY_IDS:
        return words.replace(" ", "_")
    if words in _NAME_TO_ID:
        return _NAME_TO_ID[words]
    for category, stems in _CATEGORY_WORDS:
        if any(stem in words for stem in stems):
            return category
    return None


_REVIEW_LINE = re.compile(r"^\s*[-*\d.)\s]*(?P<item>[^:–—]+?)\s*[:–—-]+\s*(?P<reason>.*?)\s*(?:\((?P<category>[^()]*)\))?\s*$")


def _review(value, image_size, box_format, sent_size):
    if value is None:
        return [], [], True
    if isinstance(value, str):
        value = [line for line in value.splitlines() if line.strip()]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise AnswerError(f'"review" must be a list, got {type(value).__name__}')
    review, regions, complete = [], [], True
    for entry in value:
        if isinstance(entry, str):
            if entry.strip().lower() in ("none", "nothing", "n/a", "-"):
                continue
            m = _REVIEW_LINE.match(entry)
            entry = m.groupdict() if m else {"item": entry}
        if not isinstance(entry, dict):
            raise AnswerError(f'each "review" item must be an object, got {type(entry).__name__}')
        entry = {re.sub(r"[^a-z]+", "_", str(k).lower()).strip("_"): v for k, v in entry.items()}
        item = _text(next((entry[k] for k in _ITEM_KEYS if entry.get(k)), None))
        box = next((entry[k] for k in _BOX_KEYS if entry.get(k) is not None), None)
        category = category_id(entry.get("category"))
        if not item and box is None and category is None:
            continue  # names nothing: not a finding
        if len(review) == MAX_REVIEW_ITEMS:
            complete = False  # findings past the limit are cut off, boxes and all
            break
        item = item or (category or "private item").replace("_", " ")
        reason = _text(entry.get("reason") or entry.get("why")) or ""
        review.append(ReviewItem(_limit_words(item, 12), _limit_words(reason, 30), category or ""))
        pixel_box = to_pixel_box(_box_value(box), image_size, box_format, sent_size) if box is not None else None
        if pixel_box is None:
            complete = False  # this finding's area is unknown
        else:
            regions.append(Region(category or "unspecified", pixel_box, 1.0, item))
    return review, regions, complete


_ITEM_KEYS = ("item", "object", "what", "element", "label", "name", "description", "text")
_BOX_KEYS = ("box", "bbox", "bbox_2d", "bounding_box")
_BOX_STRING = re.compile(r"^\s*[\[(]?\s*-?\d+(?:\.\d+)?(?:\s*,\s*-?\d+(?:\.\d+)?){3}\s*[\])]?\s*$")


def _box_value(box):
    """A box written as a string (``"[500, 500, 600, 600]"``) -> its numbers; anything else as it is."""
    if isinstance(box, str) and _BOX_STRING.match(box):
        return [float(v) if "." in v else int(v) for v in re.findall(r"-?\d+(?:\.\d+)?", box)]
    return box


def to_pixel_box(box, image_size, box_format="normalized_1000", sent_size=None) -> Optional[tuple]:
    """A model's box -> (x0, y0, x1, y1) ints in pixels of ``image_size``; None when it is unusable."""
    if box_format not in BOX_FORMATS:
        raise ValueError(f"box_format={box_format!r} is not one of {BOX_FORMATS}")
    if isinstance(box, dict):
        box = [box.get(k) for k in ("x0", "y0", "x1", "y1")]
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
        return None
    width, height = image_size
    x0, y0, x1, y1 = (float(v) for v in box)
    if box_format == "normalized_1000":
        # 0-1 fractions are written by some models despite the prompt; they cannot be 0-1000 boxes of any size.
        scale = 1.0 if max(box) <= 1.0 and any(isinstance(v, float) and not v.is_integer() for v in box) else 1000.0
        sx, sy = width / scale, height / scale
    else:
        sent_w, sent_h = sent_size or image_size
        sx, sy = width / sent_w, height / sent_h
    x0, x1 = sorted((x0 * sx, x1 * sx))
    y0, y1 = sorted((y0 * sy, y1 * sy))
    pixel = (max(0, int(x0)), max(0, int(y0)), min(width, int(-(-x1 // 1))), min(height, int(-(-y1 // 1))))
    if pixel[2] <= pixel[0] or pixel[3] <= pixel[1]:
        return None
    return pixel


# -- instruction

INSTRUCTION_LABELS = {
    "instruction": r"(?:edit\s*)?instruction",
    "target_caption": r"target\s*caption|caption|target",
}


def parse_instruction(text, fallback_caption: str = "") -> Instruction:
    """A model answer -> an ``Instruction`` within the word limits, or ``AnswerError``."""
    fields = _normalise_keys(extract_object(text, INSTRUCTION_LABELS))
    instruction = fields.get("instruction", fields.get("edit_instruction", fields.get("edit")))
    target = fields.get("target_caption", fields.get("caption", fields.get("target")))
    instruction = _sentence(instruction, "instruction", MAX_INSTRUCTION_WORDS)
    if instruction is None:
        raise AnswerError('"instruction" is missing or empty')
    target = _sentence(target, "target_caption", MAX_TARGET_WORDS - 1) or _limit_words(fallback_caption, MAX_TARGET_WORDS - 1)
    return Instruction(instruction=instruction, target_caption=target)


def _sentence(value, name, max_words) -> Optional[str]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = " ".join(value)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise AnswerError(f'"{name}" must be a string, got {type(value).__name__}')
    text = _limit_words(" ".join(value.split()).strip().strip('"'), max_words)
    if not _looks_like_words(text):
        raise AnswerError(f'"{name}" is not readable text')
    return text


# -- small helpers


def _text(value) -> Optional[str]:
    if isinstance(value, str):
        return " ".join(value.split()).strip() or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def _limit_words(text: str, max_words: int) -> str:
    words = text.split()
    if len(words) <= max_words:
        return text
    return " ".join(words[:max_words]).rstrip(",;:-")


_WORD = re.compile(r"^[\W_]*[^\W\d_]+(?:['’-][^\W\d_]+)*[\W_]*$")


def _looks_like_words(text: str) -> bool:
    """Mostly words: random token soup is not a caption or an instruction."""
    tokens = text.split()
    return bool(tokens) and sum(bool(_WORD.match(t)) for t in tokens) >= 0.5 * len(tokens)
