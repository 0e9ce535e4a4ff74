"""Security headers on every answer, and CORS closed unless origins are configured.

Why on every answer and not per page: a JSON answer opened in a browser tab is a page too. What is
sent (docs/security.md "Headers"):

* ``Content-Security-Policy``: scripts, styles, images, fonts and connections only from this server;
  no inline script (pages load ``/static/js/*.js``), no ``eval``, no framing, no ``<base>``
  rewriting, forms post only here. ``/docs`` and ``/redoc`` (Swagger UI, ReDoc) need inline script
  and so get a policy that allows it for those two pages only.
* ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, ``Referrer-Policy: same-origin``.
* ``Cache-Control: no-store`` on every answer but the static assets (which are public and
  versioned by the package), so a signed-in page or an API answer is never kept by a shared cache
  or the browser's back button.

A pure ASGI middleware (no ``BaseHTTPMiddleware``): it must not buffer the live stream.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
#: Swagger UI and ReDoc start from an inline script; only these two pages are allowed one.
DOCS_CSP: Final = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
DOCS_PATHS: Final = frozenset({"/docs", "/redoc"})
STATIC_PREFIX: Final = "/static/"


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        csp = DOCS_CSP if path in DOCS_PATHS else CSP
        cache = b"public, max-age=3600" if path.startswith(STATIC_PREFIX) else b"no-store"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = [
                    (b"content-security-policy", csp.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                    (b"cache-control", cache),
                ]
                headers.extend((k, v) for k, v in extra if k not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
