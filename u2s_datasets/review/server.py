"""The local review server: the page, the images, and decisions appended as they are made."""

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from . import decisions
from .page import ReviewPage
from .saved import SavedOutput

logger = logging.getLogger(__name__)
MAX_BODY = 64 * 1024


class ReviewServer(ThreadingHTTPServer):
    """Serves one saved output on ``host:port`` (port 0: any free port). Loopback only by default."""

    daemon_threads = True

    def __init__(self, folder: str, host: str = "127.0.0.1", port: int = 8765, reviewer: str = "unknown", low_confidence: float = 0.6):
        self.output = SavedOutput(folder)
        self.page = ReviewPage(self.output, reviewer, low_confidence)
        self.lock = threading.Lock()
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def decide(self, body: dict) -> dict:
        """Check and record one decision; the answer carries the row drawn again."""
        split, index = body.get("split", ""), body.get("row")
        if not isinstance(split, str) or not isinstance(index, int) or isinstance(index, bool):
            raise decisions.DecisionError("a decision names its row: {'split': str, 'row': int}")
        try:
            self.output.row(split, index)
        except KeyError as e:
            raise decisions.DecisionError(str(e.args[0])) from None
        line = decisions.decision(split, index, body.get("action"), body.get("reviewer") or self.page.reviewer,
                                  body.get("category"), body.get("box"))
        if "box" in line:
            width, height = self.output.image_size(split, index)
            x0, y0, x1, y1 = line["box"]
            line["box"] = [max(0, x0), max(0, y0), min(width, x1), min(height, y1)]
            if line["box"][2] <= line["box"][0] or line["box"][3] <= line["box"][1]:
                raise decisions.DecisionError(f"the box {body.get('box')} lies outside the {width}x{height} image")
        with self.lock:
            decisions.append(self.output.folder, line)
            return {"ok": True, "decision": line, "html": self.page.card(split, index), "progress": self.page.progress()}


class _Handler(BaseHTTPRequestHandler):
    server: ReviewServer

    def log_message(self, format, *args):
        logger.info("%s %s", self.address_string(), format % args)

    def do_GET(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        try:
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
        except Exception as e:
            logger.exception("GET %s failed", self.path)
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(e).__name__}: {e}".encode(), "text/plain")

    def do_POST(self):
        if urlsplit(self.path).path != "/decision":
            return self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
        # Only JSON is taken: a plain form on another site cannot post decisions here.
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            return self._json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": "decisions are sent as application/json"})
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "decision too large"})
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise decisions.DecisionError("a decision is a JSON object")
            self._json(HTTPStatus.OK, self.server.decide(body))
        except (json.JSONDecodeError, decisions.DecisionError) as e:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(e)})
        except Exception as e:
            logger.exception("decision %s failed", self.path)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(e).__name__}: {e}"})

    def _json(self, status, payload):
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status, data: bytes, content_type: str, cache: bool = False):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "max-age=60" if cache else "no-store")
        self.end_headers()
        self.wfile.write(data)


_BROWSER_TYPES = ("image/jpeg", "image/png", "image/webp")


def _as_png(data: bytes) -> bytes:
    import io

    from PIL import Image

    from ..images import to_rgb

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
