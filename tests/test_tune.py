"""``u2s tune``: the real detectors on real sample photos, once at the lowest threshold; the page and the
printed table count what each threshold finds, and the counts grow as the threshold falls."""

import contextlib
import io
from html.parser import HTMLParser

import pytest
from PIL import Image

from u2s_datasets import cli
from u2s_datasets.config import resolve_config
from u2s_datasets.inspect.local import DetectorInspector
from u2s_datasets.samples import sample_images

THRESHOLDS = (0.9, 0.7, 0.5, 0.3, 0.1)


class TunePage(HTMLParser):
    """The counts table and, per threshold section, the boxes drawn as new (green) and as found before."""

    def __init__(self):
        super().__init__()
        self.table, self.sections, self._cell, self._row, self._section = [], {}, None, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "tr" and "data-threshold" in attrs:
            self._row = {"threshold": float(attrs["data-threshold"])}
            self.table.append(self._row)
        elif tag == "td" and self._row is not None and classes:
            self._cell = "_".join(classes)
        elif tag == "section":
            self._section = float(attrs["data-threshold"])
            self.sections[self._section] = []
        elif tag == "rect" and self._section is not None:
            self.sections[self._section].append((attrs["data-category"], "added" in classes))

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None
        if tag == "td":
            self._cell = None

    def handle_data(self, data):
        if self._cell and data.strip():
            self._row[self._cell] = int(data.strip().lstrip("+"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for name, image in sample_images().items():
        image.convert("RGB").save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def tuned(photos, tmp_path_factory):
    out = tmp_path_factory.mktemp("tune")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = cli.main(["tune", str(photos), "--out", str(out), "--limit", "200", "--thresholds", ",".join(map(str, THRESHOLDS))])
    page = TunePage()
    page.feed((out / "index.html").read_text())
    return code, printed.getvalue(), page


def test_counts_grow_as_thresholds_fall(tuned):
    code, printed, page = tuned
    assert code == 0
    assert [line["threshold"] for line in page.table] == list(THRESHOLDS)
    for detector in ("faces", "text"):
        found = [line[f"found_{detector}"] for line in page.table]
        assert found == sorted(found), (detector, found)  # never fewer at a lower threshold
        added = [line[f"added_{detector}"] for line in page.table]
        assert added == [found[0]] + [b - a for a, b in zip(found, found[1:])]
    faces = [line["found_faces"] for line in page.table]
    assert faces[THRESHOLDS.index(0.5)] >= 3  # the three sample faces at the default threshold
    assert faces[-1] > faces[0]  # and what a low threshold adds (fur, coffee foam)
    assert page.table[-1]["rows"] > page.table[0]["rows"]


def test_each_section_draws_what_its_threshold_adds(tuned):
    _, _, page = tuned
    assert list(page.sections) == list(THRESHOLDS)
    for line in page.table:
        drawn = page.sections[line["threshold"]]
        new = {"faces": sum(c == "people_faces" and added for c, added in drawn),
               "text": sum(c in ("text_symbols", "licence_plates") and added for c, added in drawn)}
        assert new == {"faces": line["added_faces"], "text": line["added_text"]}, line["threshold"]


def test_the_counts_are_the_detectors_own(photos, tuned):
    _, printed, page = tuned
    # The same detectors at the floor, run here directly, give the page's counts at every threshold.
    inspector = DetectorInspector(resolve_config("local", face_threshold=0.1, text_threshold=0.1))
    images = [Image.open(path).convert("RGB") for path in sorted(photos.iterdir())]
    regions = [r for inspection in inspector.inspect(images, [None] * len(images)) for r in inspection.regions]
    for line in page.table:
        assert line["found_faces"] == sum(r.category == "people_faces" and r.score >= line["threshold"] for r in regions)
        assert line["found_text"] == sum(r.category != "people_faces" and r.score >= line["threshold"] for r in regions)
    # The printed table says the same.
    rows = [line.split() for line in printed.splitlines()[1:1 + len(THRESHOLDS)]]
    assert [(float(r[0]), int(r[1]), int(r[3])) for r in rows] == [
        (line["threshold"], line["found_faces"], line["found_text"]) for line in page.table]
    assert f"{len(images)} rows looked at" in printed


def test_limit_and_bad_thresholds(photos, tmp_path, capsys):
    assert cli.main(["tune", str(photos), "--out", str(tmp_path), "--limit", "2", "--thresholds", "0.5"]) == 0
    assert "2 rows looked at" in capsys.readouterr().out
    assert cli.main(["tune", str(photos), "--out", str(tmp_path), "--thresholds", "high"]) == 2
    assert "--thresholds takes numbers" in capsys.readouterr().err
    assert cli.main(["tune", str(photos), "--out", str(tmp_path), "--thresholds", "0.01"]) == 2
    assert "face_threshold=0.01 is out of range" in capsys.readouterr().err
