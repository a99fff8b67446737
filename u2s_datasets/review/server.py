"""The local review server: the page, the images, and decisions appended as they are made.

Every request is checked first (``access.py``): the right ``Host``, the run's token, and on a
POST the page's own ``Origin``; a refused request is answered with the reason and nothing else.
"""

import json
import logging
import re
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import parse_qs, urlencode, urlsplit

from . import decisions
from .access import TOKEN_PARAMETER, Access, AccessDenied
from .page import ReviewPage
from .saved import SavedOutput

logger = logging.getLogger(__name__)
MAX_BODY = 64 * 1024


class ReviewServer(ThreadingHTTPServer):
    """Serves one saved output on ``host:port`` (port 0: any free port). Loopback only by default.

    ``url`` carries the run's secret token (``token=`` to choose one); ``os_user`` (by default the
    account that started the server) is recorded beside the reviewer's self-declared name.
    """

    daemon_threads = True

    def __init__(self, folder: str, host: str = "127.0.0.1", port: int = 8765, reviewer: str = "unknown", low_confidence: float = 0.6,
                 token: Optional[str] = None, os_user: Optional[str] = None):
        self.output = SavedOutput(folder)
        self.page = ReviewPage(self.output, reviewer, low_confidence)
        self.lock = threading.Lock()
        self.os_user = os_user or decisions.os_user()
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Handler)
        self.access = Access(host, self.server_address[1], token)

    @property
    def url(self) -> str:
        """The address to open: the page, with the token that lets the browser in."""
        host, port = self.server_address[:2]
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/?{urlencode({TOKEN_PARAMETER: self.access.token})}"

    def decide(self, body: dict) -> dict:
        """Check and record one decision; the answer carries the row drawn again."""
        split, index = body.get("split", ""), body.get("row")
        if not isinstance(split, str) or not isinstance(index, int) or isinstance(index, bool):
            raise decisions.DecisionError("a decision names its row: {'split': str, 'row': int}")
        try:
            row = self.output.row(split, index)
        except KeyError as e:
            raise decisions.DecisionError(str(e.args[0])) from None
        line = decisions.decision(split, index, body.get("action"), body.get("reviewer") or self.page.reviewer,
                                  body.get("category"), body.get("box"), os_user=self.os_user)
        if "box" in line:
            width, height = self.output.image_size(split, index)
            x0, y0, x1, y1 = line["box"]
            line["box"] = [max(0, x0), max(0, y0), min(width, x1), min(height, y1)]
            if line["box"][2] <= line["box"][0] or line["box"][3] <= line["box"][1]:
                raise decisions.DecisionError(f"the box {body.get('box')} lies outside the {width}x{height} image")
        with self.lock:
            if line["action"] == "delete_region":
                review = self.page.reviews().get(row.key) or decisions.RowReview()
                if not any(decisions.same_region(line, r) for r in row.regions + review.added):
                    raise decisions.DecisionError(f"{row.name} has no {line['category']} region at {line['box']} to delete")
            decisions.append(self.output.folder, line)
            return {"ok": True, "decision": line, "html": self.page.card(split, index), "progress": self.page.progress()}


class _BadRequest(Exception):
    def __init__(self, status: HTTPStatus, reason: str):
        super().__init__(reason)
        self.status = status


def _content_length(headers) -> int:
    """The body's length, refused unless it is one plain number within ``MAX_BODY``."""
    if headers.get("Transfer-Encoding"):
        raise _BadRequest(HTTPStatus.LENGTH_REQUIRED, "decisions are sent with a Content-Length, not chunked")
    values = headers.get_all("Content-Length") or []
    if not values:
        raise _BadRequest(HTTPStatus.LENGTH_REQUIRED, "a decision needs a Content-Length")
    if len(set(v.strip() for v in values)) != 1 or not re.fullmatch(r"[0-9]{1,12}", values[0].strip()):
        raise _BadRequest(HTTPStatus.BAD_REQUEST, f"malformed Content-Length {', '.join(values)!r}")
    length = int(values[0])
    if length > MAX_BODY:
        raise _BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"a decision is at most {MAX_BODY} bytes, not {length}")
    return length


class _Handler(BaseHTTPRequestHandler):
    server: ReviewServer
    timeout = 60  # seconds a client may stall mid-request before its connection is dropped

    def log_message(self, format, *args):
        logger.info("%s %s", self.address_string(), re.sub(r"token=[^&\s]*", "token=...", format % args))

    def do_GET(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        try:
            if self._refused(query):
                return
            if url.path == "/":
                self._send(HTTPStatus.OK, self.server.page.page(query).encode(), "text/html; charset=utf-8")
            elif url.path == "/image":
                split, index, which = query.get("split", [""])[0], int(query["row"][0]), query.get("which", ["safe"])[0]
                if which not in ("original", "safe"):
                    raise KeyError(f"which must be original or safe, not {which!r}")
                data = self.server.output.image_bytes(split, index, which)
                if data is None:
                    self._send(HTTPStatus.NOT_FOUND, b"no image", "text/plain")
                else:
                    kind = _content_type(data)
                    if kind not in _BROWSER_TYPES:  # TIFF, BMP, ...: shown as PNG
                        data, kind = _as_png(data), "image/png"
                    self._send(HTTPStatus.OK, data, kind, cache=True)
            else:
                self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
        except (KeyError, ValueError) as e:
            self._send(HTTPStatus.NOT_FOUND, str(e).encode(), "text/plain")
        except Exception:
            logger.exception("GET %s failed", urlsplit(self.path).path)
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error: see the log of u2s review", "text/plain")

    def do_POST(self):
        self.close_connection = True  # a refused body is never read: the connection cannot be reused
        self._body_read = False
        try:
            self._post()
        finally:
            self._discard_unread_body()

    def _post(self):
        if self._refused(parse_qs(urlsplit(self.path).query), post=True):
            return
        if urlsplit(self.path).path != "/decision":
            return self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
        # Only JSON is taken: a plain form on another site cannot post decisions here.
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            return self._json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": "decisions are sent as application/json"})
        try:
            data = self.rfile.read(_content_length(self.headers))
            self._body_read = True
            body = json.loads(data or b"{}")
            if not isinstance(body, dict):
                raise decisions.DecisionError("a decision is a JSON object")
            self._json(HTTPStatus.OK, self.server.decide(body))
        except _BadRequest as e:
            self._json(e.status, {"error": str(e)})
        except (json.JSONDecodeError, UnicodeDecodeError, decisions.DecisionError) as e:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(e)})
        except OSError:  # the client stalled or went away mid-body
            logger.info("decision from %s not received whole", self.address_string())
        except Exception:
            logger.exception("decision failed")
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error: see the log of u2s review"})

    def _discard_unread_body(self):
        """Take in what a refused client already sent: closing on unread bytes resets the connection,
        and the client could lose the answer."""
        if self._body_read:
            return
        try:
            self.connection.settimeout(0.2)
            for _ in range(16):
                if not self.rfile.read1(MAX_BODY):
                    break
        except OSError:
            pass

    def _refused(self, query: dict, post: bool = False) -> bool:
        """Answer a request that fails the access checks, with the reason only; True when refused."""
        access = self.server.access
        self._cookie_due = False
        try:
            access.check_host(self.headers.get("Host"))
            in_url = access.check_token((query.get(TOKEN_PARAMETER) or [None])[0], self.headers.get("Cookie"))
            if post:
                access.check_origin(self.headers.get("Origin"))
        except AccessDenied as e:
            self._send(e.status, e.reason.encode(), "text/plain; charset=utf-8")
            return True
        self._cookie_due = in_url
        if in_url and not post:  # into the cookie, and out of the address bar, history and logs
            url = urlsplit(self.path)
            rest = urlencode([(key, value) for key, values in parse_qs(url.query, keep_blank_values=True).items()
                              if key != TOKEN_PARAMETER for value in values])
            self.send_response(HTTPStatus.SEE_OTHER)
            self.send_header("Location", "/" + url.path.lstrip("/") + ("?" + rest if rest else ""))  # never //other.host
            self._headers(0, "text/plain")
            return True
        return False

    def _json(self, status, payload):
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status, data: bytes, content_type: str, cache: bool = False):
        self.send_response(status)
        self._headers(len(data), content_type, cache)
        self.wfile.write(data)

    def _headers(self, length: int, content_type: str, cache: bool = False):
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "private, max-age=60" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        if getattr(self, "_cookie_due", False):
            self.send_header("Set-Cookie", self.server.access.set_cookie())
        self.end_headers()


_BROWSER_TYPES = ("image/jpeg", "image/png", "image/webp")


def _as_png(data: bytes) -> bytes:
    import io

    from PIL import Image

    from ..imaging.modes import to_rgb

    buffer = io.BytesIO()
    to_rgb(Image.open(io.BytesIO(data))).save(buffer, format="PNG")
    return buffer.getvalue()


def _content_type(data: bytes) -> str:
    if data[:2] == b"\xff\xd8":
        return "image/jpeg"
    if data[:4] == b"\x89PNG":
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:2] in (b"II", b"MM"):
        return "image/tiff"
    return "application/octet-stream"
