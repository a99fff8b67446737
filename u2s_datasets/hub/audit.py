"""What each column of a dataset holds, as far as publishing is concerned.

Every value is looked at, nested ones included (structs, lists, sequences): a publishing
check that samples can let the one leaking row through. Findings are per column with the
nested field that holds them (``meta.links[]``).
"""

import io
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image as PILImage

BATCH_ROWS = 1000

BASE64_IMAGE = r"^\s*(?:iVBORw0KGgo|/9j/|R0lGOD|UklGR)[A-Za-z0-9+/=\s]{64,}$"  # PNG, JPEG, GIF, WebP
URL = r"(?i)(?:\b[a-z][a-z0-9+.\-]*://|\bwww\.[a-z0-9\-]+\.[a-z]|\bdata:[a-z]+/[a-z0-9.+\-]+[;,])"
# A whole value that is a file name or path: IMG_0001.jpg, a/b.png, alice smith/home.jpg, /home/..., C:\..., \\server\...
PATH = (r"^(?:[^\s]+\.[A-Za-z][A-Za-z0-9]{1,4}|.*[/\\].*\.[A-Za-z][A-Za-z0-9]{1,4}"
        r"|(?:/|~/|\./|\.\./|[A-Za-z]:[\\/]|\\\\|file://).*)$")
HOME_PATH = r"(?i)(?:/home/|/users/|/root/|[a-z]:\\users\\|\\\\[a-z0-9._\-]+\\)\S"  # inside any text: JSON, notes
EMAIL = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
PHONE = r"(?:^|[^\w])(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{2,4}\)[\s.\-]?|\d{2,4}[\s.\-])\d{3,4}[\s.\-]?\d{3,4}(?:$|[^\w])"
NAME = r"\b[A-Z][a-z]+ (?:[A-Z]\. )?[A-Z][a-z]+\b"  # two capitalised words: how people's names look in text
PATH_MAX_CHARS = 4096


@dataclass
class PathFinding:
    column: str
    field: str  # where in the column, e.g. "meta.source" or "links[]"
    paths: int = 0  # values that are file names or paths
    urls: int = 0  # values that hold a URL


@dataclass
class TextFinding:
    """A text field that goes out as it is: what the user is asked to acknowledge."""

    column: str
    field: str
    kind: str  # "text" | "class names"
    values: int = 0  # non-empty values
    distinct: int = 0  # capped at DISTINCT_CAP
    lengths: list = field(default_factory=list)  # characters: min, median, max
    emails: int = 0
    phones: int = 0
    names: int = 0  # values holding two capitalised words in a row
    examples: list = field(default_factory=list)  # class names only: they are public in the card's features anyway

    def describe(self) -> str:
        where = self.field if self.field == self.column else f"{self.field} (in column {self.column!r})"
        if self.kind == "class names":
            shown = ", ".join(repr(n) for n in self.examples[:8]) + (", ..." if self.values > 8 else "")
            found = f"{self.values} class names: {shown}"
        else:
            low, mid, high = self.lengths or (0, 0, 0)
            found = f"{self.values} values, {self.distinct}{'+' if self.distinct >= DISTINCT_CAP else ''} distinct, {low}/{mid}/{high} characters (min/median/max)"
        flags = [f"{n} {what}" for n, what in ((self.emails, "with an e-mail address"), (self.phones, "with a phone number"),
                                                 (self.names, "with name-like words")) if n]
        return f"{where}: {self.kind}; {found}" + (f"; {', '.join(flags)}" if flags else "")


DISTINCT_CAP = 10_000


@dataclass
class ColumnAudit:
    media: dict = field(default_factory=dict)  # column -> [(field, what)]
    paths: list = field(default_factory=list)  # PathFinding
    text: list = field(default_factory=list)  # TextFinding

    def path_columns(self) -> list:
        return list(dict.fromkeys(f.column for f in self.paths))


def audit_columns(ds, columns: Iterable[str], keep_text_with_paths: bool = False) -> ColumnAudit:
    """Media, paths and URLs, and free text in ``columns`` of ``ds``, over every row.

    A text field that holds paths or URLs is reported as such, not as text, unless ``keep_text_with_paths``.
    """
    columns = [c for c in columns if c in ds.column_names]
    scan = _Scan()
    for column in columns:  # what the features declare needs no data
        scan.declared(column, ds.features[column])
    scanned = [c for c in columns if c not in scan.media]
    if scanned:
        for batch in ds.select_columns(scanned).with_format("arrow").iter(batch_size=BATCH_ROWS):
            for column in scanned:
                for chunk in _chunks(batch.column(column)):
                    for where, kind, array in _leaves(ds.features[column], chunk, column):
                        scan.values(column, where, kind, array)
    return scan.result(keep_text_with_paths)


class _Scan:
    """Findings gathered batch by batch, per (column, field)."""

    def __init__(self):
        self.media = {}  # column -> [(field, what)]
        self.paths, self.text, self.lengths, self.distinct = {}, {}, {}, {}

    def declared(self, column, feature):
        for where, media in _media_fields(feature, column):
            self.media.setdefault(column, []).append((where, type(media).__name__))
        for where, labels in _class_label_fields(feature, column):
            names = list(labels.names)
            finding = self.text.setdefault((column, where), TextFinding(column, where, "class names"))
            finding.values = finding.distinct = len(names)
            finding.examples = names
            _count_patterns(finding, pa.array(names, pa.string()))
            finding.lengths = _length_summary(np.array([len(n) for n in names]))

    def values(self, column, where, kind, array):
        if kind == "binary":
            if column not in self.media and _holds_image_bytes(array):
                self.media[column] = [(where, "binary image data")]
            return
        if column not in self.media and pc.any(pc.match_substring_regex(array, BASE64_IMAGE)).as_py():
            self.media[column] = [(where, "base64 image data")]
        self._strings(column, where, array)

    def _strings(self, column, where, array):
        array = pc.drop_null(array.cast(pa.large_string()))
        trimmed = pc.utf8_trim_whitespace(array)
        non_empty = pc.filter(array, pc.greater(pc.utf8_length(trimmed), 0))
        if len(non_empty) == 0:
            return
        key = (column, where)
        single_line = pc.and_(pc.invert(pc.match_substring(trimmed, "\n")), pc.less_equal(pc.utf8_length(trimmed), PATH_MAX_CHARS))
        found = self.paths.setdefault(key, PathFinding(column, where))
        is_path = pc.or_(pc.and_(single_line, pc.match_substring_regex(trimmed, PATH)), pc.match_substring_regex(array, HOME_PATH))
        found.paths += pc.sum(is_path).as_py() or 0
        found.urls += pc.sum(pc.match_substring_regex(array, URL)).as_py() or 0

        finding = self.text.setdefault(key, TextFinding(column, where, "text"))
        finding.values += len(non_empty)
        _count_patterns(finding, non_empty)
        self.lengths.setdefault(key, []).append(pc.utf8_length(non_empty).to_numpy(zero_copy_only=False))
        seen = self.distinct.setdefault(key, set())
        for value in pc.unique(non_empty).to_pylist()[: max(0, DISTINCT_CAP - len(seen))]:
            seen.add(hash(value))

    def result(self, keep_text_with_paths: bool) -> ColumnAudit:
        for key, finding in self.text.items():
            if finding.kind == "text":
                finding.lengths = _length_summary(np.concatenate(self.lengths[key]))
                finding.distinct = len(self.distinct[key])
        paths = [f for f in self.paths.values() if f.paths or f.urls]
        path_fields = set() if keep_text_with_paths else {(f.column, f.field) for f in paths}
        text = [f for key, f in self.text.items() if key not in path_fields and f.column not in self.media and f.values]
        return ColumnAudit(self.media, paths, text)


# ----------------------------------------------------------------------------- walking features and arrow data

def _media_types() -> tuple:
    import datasets

    return tuple(getattr(datasets, name) for name in ("Image", "Audio", "Video", "Pdf", "Nifti") if hasattr(datasets, name))


def _children(feature, where: str):
    """(sub-feature, where) below a struct or list feature."""
    from datasets import LargeList, List

    if isinstance(feature, dict):
        return [(sub, f"{where}.{name}") for name, sub in feature.items()]
    if isinstance(feature, (List, LargeList)) or hasattr(feature, "feature"):
        return [(feature.feature, f"{where}[]")]
    return []


def _media_fields(feature, where: str) -> list:
    if isinstance(feature, _media_types()):
        return [(where, feature)]
    return [found for sub, sub_where in _children(feature, where) for found in _media_fields(sub, sub_where)]


def _class_label_fields(feature, where: str) -> list:
    from datasets import ClassLabel

    if isinstance(feature, ClassLabel):
        return [(where, feature)]
    return [found for sub, sub_where in _children(feature, where) for found in _class_label_fields(sub, sub_where)]


def _chunks(column):
    return column.chunks if isinstance(column, pa.ChunkedArray) else [column]


def _leaves(feature, array: pa.Array, where: str):
    """(where, "string" | "binary", array) for every string or binary leaf, struct fields and list items included."""
    from datasets import ClassLabel

    if isinstance(feature, ClassLabel):
        return  # integer ids; the names were looked at from the feature
    kind = array.type
    if pa.types.is_dictionary(kind):
        yield from _leaves(feature, array.dictionary_decode(), where)
    elif pa.types.is_struct(kind):
        subs = feature if isinstance(feature, dict) else {}
        for index in range(kind.num_fields):
            name = kind.field(index).name
            yield from _leaves(subs.get(name), array.field(index), f"{where}.{name}")
    elif pa.types.is_map(kind):
        yield from _leaves(None, array.keys, f"{where}{{key}}")
        yield from _leaves(None, array.items, f"{where}{{value}}")
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind) or pa.types.is_list_view(kind):
        yield from _leaves(getattr(feature, "feature", None), array.flatten(), f"{where}[]")
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        yield where, "string", array
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind) or pa.types.is_binary_view(kind):
        yield where, "binary", array


def _holds_image_bytes(array: pa.Array) -> bool:
    for value in array.to_pylist():
        if value and _is_image(value):
            return True
    return False


# Signatures of image files, also those Pillow cannot open here (HEIC, AVIF, JPEG 2000)
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"II*\x00", b"MM\x00*", b"\x00\x00\x00\x0cjP  ")
_ISO_BRANDS = (b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"avif", b"avis")


def _is_image(data: bytes) -> bool:
    if data.startswith(_IMAGE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return True
    if data[4:8] == b"ftyp" and data[8:12] in _ISO_BRANDS:
        return True
    try:
        with PILImage.open(io.BytesIO(data)) as image:
            return image.size[0] > 0
    except Exception:
        return False


def _count_patterns(finding: TextFinding, array: pa.Array):
    finding.emails += pc.sum(pc.match_substring_regex(array, EMAIL)).as_py() or 0
    finding.phones += pc.sum(pc.match_substring_regex(array, PHONE)).as_py() or 0
    finding.names += pc.sum(pc.match_substring_regex(array, NAME)).as_py() or 0


def _length_summary(lengths: np.ndarray) -> list:
    if lengths.size == 0:
        return [0, 0, 0]
    return [int(lengths.min()), int(np.median(lengths)), int(lengths.max())]


def looks_like_path(value) -> bool:
    """A file name or path (with or without folders), as opposed to text such as a caption or a label."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    if not text or "\n" in text or len(text) > PATH_MAX_CHARS:
        return False
    return bool(pc.match_substring_regex(pa.array([text]), PATH)[0].as_py())
