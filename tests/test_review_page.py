"""The review server over HTTP: filters and paging pick the right rows; bad decisions are refused
with the reason and leave review.jsonl alone."""

import http.cookiejar
import json
import os
import re
import threading
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest

from review_output import fresh_output
from u2s_datasets.review.decisions import REVIEW_FILE
from u2s_datasets.review.server import ReviewServer


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = fresh_output(tmp_path_factory.mktemp("page") / "out")
    server = ReviewServer(folder, port=0, reviewer="ann", low_confidence=0.95)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # As a browser does: the printed address once (its token becomes a cookie), then plain addresses.
    server.browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    server.browser.open(server.url).read()
    server.root = server.url.split("?")[0]
    yield server
    server.shutdown()
    server.server_close()


def _rows(server, query=""):
    with server.browser.open(server.root + "?" + query) as response:
        page = response.read().decode()
    return [int(n) for n in re.findall(r'<article class="card[^"]*" id="[^"]+" data-split="" data-row="(\d+)"', page)], page


def _post(server, body, content_type="application/json"):
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(server.root))
    request = urllib.request.Request(server.root + "decision", data=json.dumps(body).encode(),
                                     headers={"Content-Type": content_type, "Origin": origin})
    try:
        with server.browser.open(request) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_filters_and_paging(server):
    assert _rows(server)[0] == [0, 1, 2, 3, 4]
    with_text = [i for i, row in enumerate(server.output.rows) if any(r["category"] == "text_symbols" for r in row.regions)]
    assert 2 in with_text and _rows(server, "category=text_symbols")[0] == with_text
    assert _rows(server, "status=passthrough")[0] == [3, 4]
    assert _rows(server, "flagged=yes&per_page=2")[0] == [0, 1]
    rows, page = _rows(server, "flagged=yes&per_page=2&page=2")
    assert rows == [2] and "page 2 of 2" in page
    low = [i for i, row in enumerate(server.output.rows) if any(r["score"] < 0.95 for r in row.regions)]
    assert low and _rows(server, "low=1")[0] == low


def test_images_are_served_as_stored(server):
    with server.browser.open(server.root + "image?split=&row=2&which=safe") as response:
        assert response.headers["Content-Type"] == "image/png"
        assert response.read() == server.output.image_bytes("", 2, "safe")


def test_bad_decisions_are_refused_and_not_recorded(server):
    folder = server.output.folder
    assert _post(server, {"split": "", "row": 99, "action": "accept"})[0] == 400
    status, answer = _post(server, {"split": "", "row": 0, "action": "add_region", "category": "people_faces", "box": [900, 900, 950, 950]})
    assert status == 400 and "outside" in answer["error"]
    assert _post(server, {"split": "", "row": 0, "action": "accept"}, content_type="text/plain")[0] == 415
    assert not os.path.exists(os.path.join(folder, REVIEW_FILE))
    status, answer = _post(server, {"split": "", "row": 0, "action": "add_region", "category": "people_faces", "box": [-5, 10, 30.4, 40]})
    assert status == 200 and answer["decision"]["box"] == [0, 10, 30, 40] and answer["decision"]["reviewer"] == "ann"
    assert 'data-row="0"' in answer["html"] and "1 of 5 rows reviewed" in answer["progress"]
