"""Who the review server answers, checked with raw HTTP against a real server on loopback: a foreign
Host (DNS rebinding), a missing or wrong token, a foreign Origin, a broken Content-Length and an
unknown category each get a clear 4xx that serves nothing and writes nothing."""

import getpass
import http.client
import json
import os
import re
import subprocess
import sys
import threading

import pytest

from review_output import fresh_output
from u2s_datasets.review.decisions import REVIEW_FILE, os_user
from u2s_datasets.review.server import ReviewServer


@pytest.fixture
def server(tmp_path):
    server = ReviewServer(fresh_output(tmp_path / "out"), port=0, reviewer="ann")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.port = server.server_address[1]
    server.host = f"127.0.0.1:{server.port}"
    server.origin = f"http://{server.host}"
    server.original = server.output.image_bytes("", 0, "original")  # the astronaut's face, as stored
    yield server
    server.shutdown()
    server.server_close()


def _request(server, method, path, headers=None, body=None):
    """One request exactly as given: no Host, Origin or Content-Length added on the way."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for name, value in (headers or {}).items():
        connection.putheader(name, value)
    connection.endheaders(body)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def _cookie(server) -> str:
    return f"{server.access.cookie_name}={server.access.token}"


def _post(server, decision, origin="own", length=None, extra=None):
    body = json.dumps(decision).encode()
    headers = {"Host": server.host, "Cookie": _cookie(server), "Content-Type": "application/json",
               "Content-Length": str(len(body)) if length is None else length, **(extra or {})}
    if origin:
        headers["Origin"] = server.origin if origin == "own" else origin
    return _request(server, "POST", "/decision", headers, body)


def _nothing_written(server) -> bool:
    return not os.path.exists(os.path.join(server.output.folder, REVIEW_FILE))


def test_printed_address_carries_a_fresh_token_per_run(server, tmp_path):
    assert server.url == f"http://127.0.0.1:{server.port}/?token={server.access.token}"
    assert len(server.access.token) >= 40
    other = ReviewServer(server.output.folder, port=0)
    assert other.access.token != server.access.token
    other.server_close()


def test_a_foreign_host_gets_nothing_even_with_the_token(server):
    pages = ("/", f"/?token={server.access.token}", "/image?split=&row=0&which=original")
    for host in ("evil.example", f"evil.example:{server.port}", f"127.0.0.1:{server.port + 1}", "127.0.0.1", "", f"127.0.0.1.evil:{server.port}"):
        for path in pages:
            status, headers, data = _request(server, "GET", path, {"Host": host, "Cookie": _cookie(server)} if host else {"Cookie": _cookie(server)})
            assert status == 421, (host, path)
            assert server.original[:64] not in data and b"<html" not in data.lower() and "set-cookie" not in headers
    status, _, data = _post(server, {"split": "", "row": 0, "action": "accept"}, extra={"Host": "evil.example"})
    assert status == 421 and _nothing_written(server)


def test_loopback_names_are_answered(server):
    for host in (server.host, f"localhost:{server.port}", f"LOCALHOST:{server.port}", f"[::1]:{server.port}"):
        status, _, data = _request(server, "GET", "/image?split=&row=0&which=original", {"Host": host, "Cookie": _cookie(server)})
        assert status == 200 and data == server.original, host


def test_a_missing_or_wrong_token_gets_nothing(server):
    wrong = server.access.token[:-1] + ("A" if server.access.token[-1] != "A" else "B")
    attempts = [
        {},
        {"Cookie": f"{server.access.cookie_name}={wrong}"},
        {"Cookie": f"u2s_review_{server.port + 1}={server.access.token}"},  # another run's cookie name
        {"Cookie": f"{server.access.cookie_name}="},
    ]
    for headers in attempts:
        for path in ("/", "/image?split=&row=0&which=original", f"/image?split=&row=0&which=original&token={wrong}", "/?token=%C3%A9"):
            status, response_headers, data = _request(server, "GET", path, {"Host": server.host, **headers})
            assert status == 403, (headers, path)
            assert server.original[:64] not in data and b"<article" not in data and "set-cookie" not in response_headers
    assert _post(server, {"split": "", "row": 0, "action": "accept"}, extra={"Cookie": ""})[0] == 403
    assert _nothing_written(server)


def test_the_token_becomes_a_cookie_that_opens_the_page_and_its_images(server):
    status, headers, _ = _request(server, "GET", f"/?token={server.access.token}&flagged=yes", {"Host": server.host})
    assert status == 303 and headers["location"] == "/?flagged=yes"  # the token leaves the address bar
    status, headers, _ = _request(server, "GET", f"//evil.example/?token={server.access.token}", {"Host": server.host})
    assert status == 303 and headers["location"] == "/evil.example/"  # a path of this server, not another host
    name_value, *attributes = [part.strip() for part in headers["set-cookie"].split(";")]
    assert name_value == _cookie(server) and set(attributes) == {"HttpOnly", "SameSite=Strict", "Path=/"}

    cookie = {"Host": server.host, "Cookie": f"theme=dark; {name_value}; other=1"}  # among other sites' cookies
    status, _, page = _request(server, "GET", "/?flagged=yes", cookie)
    assert status == 200 and b'data-row="0"' in page
    urls = [url.decode().replace("&amp;", "&") for url in re.findall(rb'<img src="([^"]+)"', page)]
    assert "image?split=&row=0&which=original" in urls  # the page's own image URLs, relative and without the token
    status, headers, data = _request(server, "GET", "/image?split=&row=0&which=original", cookie)
    assert status == 200 and data == server.original and "set-cookie" not in headers


def test_a_foreign_or_missing_origin_cannot_post(server):
    decision = {"split": "", "row": 0, "action": "redact_image"}
    for origin in ("http://evil.example", f"http://evil.example:{server.port}", f"http://127.0.0.1:{server.port + 1}",
                   f"https://127.0.0.1:{server.port}", "null", None):
        status, _, data = _post(server, decision, origin=origin)
        assert status == 403 and b"review page only" in data, origin
    assert _nothing_written(server)
    status, _, data = _post(server, decision)
    assert status == 200 and json.loads(data)["decision"]["action"] == "redact_image"
    status, _, _ = _post(server, decision, origin=f"http://localhost:{server.port}")
    assert status == 200


@pytest.mark.parametrize("length, expected", [
    ("abc", 400), ("-5", 400), ("1e3", 400), (" 12 x", 400), ("\u00b2", 400), ("99999999999999999999", 400),
    (str(10**6), 413), (None, 411),
])
def test_a_broken_content_length_is_a_clean_refusal(server, length, expected):
    body = json.dumps({"split": "", "row": 0, "action": "accept"}).encode()
    headers = {"Host": server.host, "Cookie": _cookie(server), "Origin": server.origin, "Content-Type": "application/json"}
    if length is not None:
        headers["Content-Length"] = length
    status, response_headers, data = _request(server, "POST", "/decision", headers, body)
    assert status == expected
    assert "Content-Length" in json.loads(data)["error"] or "bytes" in json.loads(data)["error"]
    assert not any("Traceback" in v or "Error" in v for v in response_headers.values())
    assert _nothing_written(server)


def test_two_different_content_lengths_are_refused(server):
    body = json.dumps({"split": "", "row": 0, "action": "accept"}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.putrequest("POST", "/decision", skip_host=True, skip_accept_encoding=True)
    for name, value in (("Host", server.host), ("Cookie", _cookie(server)), ("Origin", server.origin),
                        ("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Content-Length", "5")):
        connection.putheader(name, value)
    connection.endheaders(body)
    assert connection.getresponse().status == 400
    assert _nothing_written(server)


def test_an_unknown_category_is_refused_and_not_written(server):
    box = [10, 10, 60, 50]
    for category in ("licence_plate_of_my_neighbour", "", "PEOPLE_FACES", 7):
        status, _, data = _post(server, {"split": "", "row": 3, "action": "add_region", "category": category, "box": box})
        assert status == 400 and "category" in json.loads(data)["error"], category
    # a region the row does not have cannot be deleted either
    status, _, data = _post(server, {"split": "", "row": 3, "action": "delete_region", "category": "people_faces", "box": box})
    assert status == 400 and "no people_faces region" in json.loads(data)["error"]
    assert _nothing_written(server)
    assert _post(server, {"split": "", "row": 3, "action": "add_region", "category": "private_belongings", "box": box})[0] == 200


def test_the_account_that_runs_the_server_is_recorded_beside_the_typed_name(tmp_path):
    """`u2s review` itself: its printed address works, and each line names the OS account and the typed name."""
    folder = fresh_output(tmp_path / "out")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-m", "u2s_datasets.cli", "review", folder, "--port", "0", "--no-browser"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        printed = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/\?token=([\w-]+)", printed)
        assert match, printed
        port, token = int(match.group(1)), match.group(2)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", f"/?token={token}")
        response = connection.getresponse()
        response.read()
        assert response.status == 303
        cookie = response.getheader("Set-Cookie").split(";")[0]
        body = json.dumps({"split": "", "row": 4, "action": "accept", "reviewer": "the boss"})
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("POST", "/decision", body, {"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}",
                                                       "Content-Type": "application/json"})
        assert connection.getresponse().status == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
    with open(os.path.join(folder, REVIEW_FILE)) as f:
        (line,) = [json.loads(text) for text in f]
    assert line["reviewer"] == "the boss" and line["os_user"] == getpass.getuser() == os_user()
