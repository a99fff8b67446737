"""Rows read for text side by side give what one row after the other gives; long lines are read by windows."""

import threading
import time

import numpy as np
from conftest import rgb
from PIL import Image, ImageDraw, ImageFont

from u2s_datasets.config import resolve_config
from u2s_datasets.inspect.local import DetectorInspector
from u2s_datasets.inspect.row_pool import RowPool
from u2s_datasets.inspect.text_detector import WINDOW, TextDetector, _windows
from u2s_datasets.testing.recall_set import font_path
from u2s_datasets.inspect.verify import _areas


def test_rows_keep_their_order_and_no_model_is_shared_between_threads():
    built, busy, overlapped = [], set(), []

    def factory(threads):
        built.append(threads)
        return object()

    def work(model, item):
        assert model not in busy, "two threads hold the same model"
        busy.add(model)
        overlapped.append(len(busy))
        time.sleep(0.01)
        busy.discard(model)
        return item * 2, threading.current_thread().name

    pool = RowPool(factory, workers=2)
    out = pool.map(work, range(8))
    assert [value for value, _ in out] == [i * 2 for i in range(8)]
    assert built == [1, 1], "one single-threaded model per worker"
    assert max(overlapped) == 2, "rows ran side by side"
    (value, thread), = pool.map(work, [5])
    assert value == 10 and built == [1, 1, 0], "a lone row gets a model with every core"


def test_inspection_side_by_side_equals_one_after_the_other(photo_bytes):
    images = [Image.fromarray(rgb(photo_bytes[name])) for name in ("grace_hopper", "page", "coffee", "astronaut")]
    labels = [None] * len(images)
    config = resolve_config("local", device="cpu")  # rows side by side is how the CPU runs them
    side_by_side = DetectorInspector(config)
    side_by_side.rows.workers = 2
    one_by_one = DetectorInspector(config)
    one_by_one.rows.workers = 1
    a, b = side_by_side.inspect(images, labels), one_by_one.inspect(images, labels)
    assert [[(r.category, r.box, r.label) for r in i.regions] for i in a] == [[(r.category, r.box, r.label) for r in i.regions] for i in b]
    assert any(r.category == "text_symbols" for r in a[1].regions), "the page's lines are found"


def test_windows_cover_a_long_line_with_overlap():
    crop = np.zeros((10, 10 * WINDOW * 3 + 7, 3), np.uint8)
    windows = _windows(crop)
    assert len(windows) > 1 and all(w.shape[1] <= WINDOW * 10 for w in windows)
    starts = np.cumsum([0] + [w.shape[1] - 2 * 10 for w in windows[:-1]])
    assert starts[-1] + windows[-1].shape[1] == crop.shape[1], "the last window reaches the end of the line"
    assert len(_windows(crop[:, : WINDOW * 10])) == 1, "a line up to a window wide is read whole"


def test_a_long_line_is_found_and_quoted_from_its_start():
    text = "Margaret Lindqvist 14 Harbour Road Flat 3 Northampton NN1 4AB United Kingdom"
    font = ImageFont.truetype(font_path("DejaVuSans.ttf"), 22)
    canvas = Image.new("RGB", (1400, 200), (235, 235, 230))
    ImageDraw.Draw(canvas).text((20, 80), text, font=font, fill=(20, 20, 20))
    length = font.getlength(text)
    assert length > 2 * WINDOW * 22, "the line is several windows long"
    (line,) = TextDetector(min_side=736, orientations=True, tile=1024)(np.asarray(canvas))
    assert line.box[2] - line.box[0] > 0.95 * length, "the whole line is boxed, not only the window that was read"
    assert line.text.replace(" ", "").lower().startswith("margaretlind")


def test_verification_areas_merge_overlapping_regions_of_one_kind():
    class Region:
        def __init__(self, category, box):
            self.category, self.box = category, box

    lines = [Region("text_symbols", (10, 10 + 20 * i, 200, 26 + 20 * i)) for i in range(4)]
    face = Region("people_faces", (300, 20, 340, 70))
    other = Region("documents", (500, 500, 540, 540))
    size = (1000, 1000)
    text_areas = _areas(lines + [face, other], "text", size)
    assert len(text_areas) == 2, "the four lines are one area; the document is searched for text too"
    x0, y0, x1, y1 = text_areas[0]
    assert x0 <= 10 and y0 <= 10 and x1 >= 200 and y1 >= 86
    face_areas = _areas(lines + [face, other], "faces", size)
    assert len(face_areas) == 2 and all(a[0] >= 280 for a in face_areas), "faces are searched where faces and documents were"
    assert _areas([], "faces", size) == [(0, 0, 1000, 1000)]
    tall = [Region("text_symbols", (10, 300 * i, 50, 300 * i + 290)) for i in range(4)]
    assert len(_areas(tall, "text", (2000, 2000))) > 1, "merged areas stay small enough to search at full size"
