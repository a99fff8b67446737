"""Who may talk to the review server: a browser on this machine that holds the run's token.

The server shows ORIGINAL images, so every request is checked before anything is read:

- its ``Host`` header names the server itself (``127.0.0.1``, ``localhost``, ``[::1]`` or the
  address it was bound to, with its port): a site whose name was rebound to 127.0.0.1 (DNS
  rebinding) is answered 421 and gets nothing;
- it carries the run's secret token, in the URL the command printed (``?token=``) or in the
  cookie set after the first such request (HttpOnly, SameSite=Strict); compared in constant time;
- a POST comes from the page itself: its ``Origin`` is the server's own.
"""

import hmac
import secrets
from http import HTTPStatus
from typing import Optional

TOKEN_PARAMETER = "token"
_ALL_INTERFACES = ("", "0.0.0.0", "::")
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


class AccessDenied(Exception):
    """A request the server answers with ``status`` and ``reason`` only."""

    def __init__(self, status: HTTPStatus, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


class Access:
    """The checks of one server run, bound to ``host:port``, with a fresh token unless one is given."""

    def __init__(self, host: str, port: int, token: Optional[str] = None):
        self.token = token or secrets.token_urlsafe(32)
        self.cookie_name = f"u2s_review_{port}"  # a browser sends a host's cookies to every port of it
        names = set(_LOOPBACK_NAMES)
        if host not in _ALL_INTERFACES:
            names.add(f"[{host}]" if ":" in host else host.lower())
        self.hosts = {f"{name}:{port}" for name in names} | (names if port == 80 else set())
        self.origins = {f"http://{h}" for h in self.hosts}

    def check_host(self, host: Optional[str]) -> None:
        if (host or "").strip().lower() not in self.hosts:
            raise AccessDenied(HTTPStatus.MISDIRECTED_REQUEST, f"this server answers only for {', '.join(sorted(self.hosts))}")

    def check_token(self, query_token: Optional[str], cookie_header: Optional[str]) -> bool:
        """True when the token came in the URL (the caller then sets the cookie); AccessDenied without a valid one."""
        if query_token is not None and self._is_token(query_token):
            return True
        if self._is_token(self._cookie(cookie_header)):
            return False
        raise AccessDenied(HTTPStatus.FORBIDDEN, "open the address `u2s review` printed, with its ?token=")

    def check_origin(self, origin: Optional[str]) -> None:
        if (origin or "").strip().lower() not in self.origins:
            raise AccessDenied(HTTPStatus.FORBIDDEN, f"decisions are taken from the review page only (Origin {origin!r})")

    def set_cookie(self) -> str:
        """The ``Set-Cookie`` value that carries the token after the first request."""
        return f"{self.cookie_name}={self.token}; HttpOnly; SameSite=Strict; Path=/"

    def _is_token(self, value: Optional[str]) -> bool:
        return value is not None and hmac.compare_digest(value.encode("utf-8", "replace"), self.token.encode())

    def _cookie(self, header: Optional[str]) -> Optional[str]:
        # Split by hand: http.cookies stops at the first cookie it dislikes, and other local apps set theirs.
        for part in (header or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == self.cookie_name:
                return value
        return None
