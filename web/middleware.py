"""What every HTTP exchange gets, whatever route answers: the Origin rule for state changes and the
security headers.

**Origin rule.** A state-changing request (POST, PUT, PATCH, DELETE) that a browser could send from
another site's page must come from this site.  The session cookie is sent by the browser on its own,
so a request that carries it (and no bearer token) must name this very origin — scheme, host and
port of the ``Host`` it was sent to — in ``Origin``, or failing that in ``Referer``; one that names
none is refused too.  A request that names another origin is refused even without the cookie (so
nobody can be logged in to someone else's account from another page).  Bearer-token calls without
the cookie are exempt: no browser attaches an ``Authorization`` header on its own.

Example::

    >>> same_origin("http://127.0.0.1:8080", "127.0.0.1:8080", "http")
    True
    >>> same_origin("http://127.0.0.1:9090", "127.0.0.1:8080", "http")
    False
"""
from __future__ import annotations

import json
from typing import Optional
from urllib.parse import urlsplit

import structlog
from prometheus_client import Counter
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.security import COOKIE

log = structlog.get_logger("web.middleware")

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_PORTS = {"http": 80, "https": 443}
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",  # no inline script: the pages' code is in /static/*.js
    "style-src 'self' 'unsafe-inline'",  # the pages set style attributes; styles cannot run code
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
SECURITY_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_ENCODED_HEADERS = [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]

CROSS_ORIGIN_REFUSED = Counter("nonsite_web_cross_origin_refused_total",
                               "state-changing requests refused by the Origin rule")


def same_origin(claimed: str, host: str, scheme: str) -> bool:
    """Whether an ``Origin``/``Referer`` value names the origin of a request sent to ``host`` over ``scheme``."""
    claimed_at = _host_and_port(claimed)
    return claimed_at is not None and claimed_at == _host_and_port(f"{scheme}://{host}")


def _host_and_port(url: str) -> Optional[tuple[str, int]]:
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number, a broken IPv6 literal
        return None
    if parts.scheme not in DEFAULT_PORTS or not host:
        return None
    return host.lower(), port or DEFAULT_PORTS[parts.scheme]


def origin_problem(method: str, headers: dict[str, str], scheme: str) -> Optional[str]:
    """Why the Origin rule refuses this request, or None when it may go on."""
    if method not in UNSAFE_METHODS:
        return None
    claimed = headers.get("origin") or headers.get("referer")
    host = headers.get("host", "")
    if claimed and claimed != "null":
        return None if same_origin(claimed, host, scheme) else f"origin: {claimed[:200]} is not this site"
    bearer = headers.get("authorization", "").lower().startswith("bearer ")
    has_cookie = bool(cookie_parser(headers.get("cookie", "")).get(COOKIE))
    if has_cookie and not bearer:
        return "origin: a request with the session cookie must name this site in Origin or Referer"
    if claimed == "null":
        return "origin: an opaque origin (null) may not change anything here"
    return None


class SecurityMiddleware:
    """Pure ASGI (so live event streams pass untouched): the Origin rule, then the headers on every answer."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        problem = origin_problem(scope["method"], headers, scope.get("scheme", "http"))
        if problem is not None:
            CROSS_ORIGIN_REFUSED.inc()
            log.warning("web.origin_refused", method=scope["method"], path=scope["path"], reason=problem)
            await _refuse(send, 403, problem)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *[(n, v) for n, v in _ENCODED_HEADERS if n not in present]]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _refuse(send: Send, status: int, error: str) -> None:
    body = json.dumps({"error": error}, ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *_ENCODED_HEADERS]})
    await send({"type": "http.response.body", "body": body})
