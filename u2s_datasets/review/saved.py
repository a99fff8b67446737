"""A dataset written by ``u2s anonymize``, read for review: row facts, images, the run's settings."""

import io
import json
import os
from dataclasses import dataclass

import datasets
from PIL import Image

from .. import columns as C
from .decisions import row_key

CONFIG_FILE = "u2s_config.json"
NAME_COLUMNS = ("file_name", "name", "path", "id")  # the first present names rows on the page
_FACTS = (C.STATUS, C.IS_PRIVATE, C.PRIVACY_CATEGORIES, C.PRIVACY_REGIONS, C.PRIVATE_CAPTION, C.PUBLIC_CAPTION, C.EDIT_INSTRUCTION)


@dataclass
class RowFacts:
    """What the anonymization stored about one row (images are read on demand)."""

    split: str
    index: int
    name: str
    status: str
    is_private: bool
    categories: list
    regions: list  # [{"category", "box", "score"}]
    private_caption: str
    public_caption: str
    edit_instruction: str

    @property
    def key(self) -> str:
        return row_key(self.split, self.index)

    @property
    def base_status(self) -> str:
        return "error" if C.is_error(self.status) else C.base_status(self.status)

    @property
    def notes(self) -> list:
        if C.is_error(self.status):
            return [self.status[len(C.STATUS_ERROR_PREFIX):]]
        return self.status.split(C.NOTE_SEPARATOR)[1:]


class SavedOutput:
    """The save_to_disk folder of an anonymization run (a Dataset or a DatasetDict)."""

    def __init__(self, folder: str):
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{folder} is not a folder written by u2s anonymize")
        self.folder = folder
        self.run = load_run(folder)
        self.image_column = self.run.get("image_column") or "image"
        loaded = datasets.load_from_disk(folder)
        self.splits = dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"": loaded}
        for split, ds in self.splits.items():
            missing = [c for c in (self.image_column, C.SAFE_IMAGE, *_FACTS) if c not in ds.column_names]
            if missing:
                raise ValueError(f"{folder}{'/' + split if split else ''} lacks the column(s) {', '.join(missing)}: "
                                 "it was not written by u2s anonymize")
        self.rows = [row for split, ds in self.splits.items() for row in _facts(split, ds)]
        self._by_key = {row.key: row for row in self.rows}
        self._sizes = {}

    def row(self, split: str, index: int) -> RowFacts:
        key = row_key(split, index)
        if key not in self._by_key:
            raise KeyError(f"no row {index}{' in split ' + split if split else ''} in {self.folder}")
        return self._by_key[key]

    def image_bytes(self, split: str, index: int, which: str) -> bytes:
        """The stored bytes of the original (``which="original"``) or safe image of a row."""
        self.row(split, index)
        column = {"original": self.image_column, "safe": C.SAFE_IMAGE}[which]
        ds = self.splits[split].select_columns([column]).cast_column(column, datasets.Image(decode=False))
        value = ds[index][column]
        if value is None:
            return None
        if value.get("bytes") is None and value.get("path"):
            with open(value["path"], "rb") as f:
                return f.read()
        return value["bytes"]

    def image_size(self, split: str, index: int) -> tuple:
        key = row_key(split, index)
        if key not in self._sizes:
            data = self.image_bytes(split, index, "original")
            self._sizes[key] = Image.open(io.BytesIO(data)).size if data else (0, 0)
        return self._sizes[key]


def load_run(folder: str) -> dict:
    """The run record (``u2s_config.json``) inside or beside the folder; {} when there is none."""
    for path in (os.path.join(folder, CONFIG_FILE), os.path.join(os.path.dirname(os.path.abspath(folder)), CONFIG_FILE)):
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                return json.load(f)
    return {}


def _facts(split: str, ds) -> list:
    names = next((c for c in NAME_COLUMNS if c in ds.column_names and ds.features[c] == datasets.Value("string")), None)
    table = ds.select_columns([*_FACTS, *([names] if names else [])]).to_dict()
    rows = []
    for i in range(len(ds)):
        regions = [{"category": r["category"], "box": [float(v) for v in r["box"]], "score": float(r["score"])}
                   for r in table[C.PRIVACY_REGIONS][i] or []]
        rows.append(RowFacts(
            split, i, table[names][i] if names and table[names][i] else f"row {i}", table[C.STATUS][i] or "",
            bool(table[C.IS_PRIVATE][i]), list(table[C.PRIVACY_CATEGORIES][i] or []), regions,
            table[C.PRIVATE_CAPTION][i] or "", table[C.PUBLIC_CAPTION][i] or "", table[C.EDIT_INSTRUCTION][i] or "",
        ))
    return rows
