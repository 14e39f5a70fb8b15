"""Bearer-token authentication, checked before any request body is read.

With a token, every path needs ``Authorization: Bearer TOKEN`` except ``/health``, the web
page and its static files, and FastAPI's schema and docs pages (they hold no data). An
artifact URL handed out in a job result carries a signature (``?sig=``, an HMAC of the file
name keyed by the token) so that a ``<video>`` element, which cannot send headers, can stream
that one file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

PUBLIC_PATHS = frozenset(
    {"/", "/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/favicon.ico"}
)
PUBLIC_PREFIXES = ("/static/",)
ARTIFACTS_PREFIX = "/artifacts/"


class ArtifactSigner:
    """Signs artifact names with a key derived from the token (the token itself never
    appears in a URL)."""

    def __init__(self, token: str) -> None:
        self._key = hmac.new(token.encode(), b"vt-cogvideo artifact urls", hashlib.sha256).digest()

    def sign(self, name: str) -> str:
        return hmac.new(self._key, name.encode(), hashlib.sha256).hexdigest()

    def verify(self, name: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(name).encode(), signature.encode("utf-8", "replace"))


class TokenGuard:
    """ASGI middleware: 401 (with ``WWW-Authenticate: Bearer``) unless the request carries
    the token, compared in constant time."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()
        self.signer = ArtifactSigner(token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {"detail": "missing or wrong token: send Authorization: Bearer <token>"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="vt-cogvideo"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _allowed(self, scope: Scope) -> bool:
        path: str = scope["path"]
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return True
        header = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
        scheme, _, given = header.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self._token):
            return True
        if path.startswith(ARTIFACTS_PREFIX) and scope["method"] in ("GET", "HEAD"):
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            signature = query.get("sig", [""])[0]
            return bool(signature) and self.signer.verify(path[len(ARTIFACTS_PREFIX) :], signature)
        return False
