"""The token gate: one secret (``tidal server --token-file``) for the REST API and the pages.

A client sends it as ``Authorization: Bearer <token>``; a browser gets it as the ``tidal_token``
cookie from ``GET /login?token=...``. Without a token (``tidal ui``, loopback only) every
request passes. The REST API is gated twice on purpose: :class:`TokenGate` refuses before a
body is read, :func:`require_token` documents the scheme in the OpenAPI page.

Example::

    app.add_middleware(TokenGate, token="a-long-random-secret")
    api = APIRouter(dependencies=[Depends(require_token)])
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Query, Request, Security
from fastapi.responses import RedirectResponse, Response
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from tidal.errors import TokenRefused, UsageError, http_name
from tidal.tracking.server._asgi import route_path
from tidal.tracking.server.responses import error_response

TOKEN_COOKIE = "tidal_token"
MIN_TOKEN_LENGTH = 16
CHALLENGE = {"WWW-Authenticate": "Bearer"}  # sent with every 401
WRONG_TOKEN = ("missing or wrong token: send the header 'Authorization: Bearer <token>' (clients: set "
               "TIDAL_TOKEN to the content of the server's --token-file), or open /login?token=<token> "
               "in a browser")

_bearer = HTTPBearer(auto_error=False, description="the server's token (tidal server --token-file)")
_cookie = APIKeyCookie(name=TOKEN_COOKIE, auto_error=False, description="set by GET /login?token=...")


def check_token(token: str, where: str = "the token") -> None:
    """Refuse a token too short to resist guessing (a server answers as fast as it is asked)."""
    if len(token) < MIN_TOKEN_LENGTH:
        raise UsageError(f"{where} has {len(token)} characters; use at least {MIN_TOKEN_LENGTH} random ones "
                         "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')")


def token_matches(expected: str, presented: str | None) -> bool:
    """Constant-time comparison, so the time taken tells nothing about the token."""
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


def presented_token(connection: HTTPConnection) -> str | None:
    """The bearer token of the Authorization header, else the ``tidal_token`` cookie."""
    scheme, _, value = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return connection.cookies.get(TOKEN_COOKIE)


def is_authorized(connection: HTTPConnection) -> bool:
    """True when the app has no token or the request carries it (pages and API alike)."""
    expected: str | None = getattr(connection.app.state, "token", None)
    return expected is None or token_matches(expected, presented_token(connection))


def require_token(request: Request, _bearer_token: HTTPAuthorizationCredentials | None = Security(_bearer),
                  _cookie_token: str | None = Security(_cookie)) -> None:
    """Dependency: TokenRefused (401) unless the request carries the app's token.

    Reusable by any router on the app: ``APIRouter(dependencies=[Depends(require_token)])``.
    """
    if not is_authorized(request):
        raise TokenRefused(WRONG_TOKEN)


class TokenGate:
    """Refuses unauthenticated ``/api/`` requests before their body is read (FastAPI would
    parse a JSON body before running dependencies)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (self.token is not None and scope["type"] == "http" and route_path(scope).startswith("/api/")
                and not token_matches(self.token, presented_token(HTTPConnection(scope)))):
            response = error_response(401, WRONG_TOKEN, http_name(TokenRefused), CHALLENGE)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def router() -> APIRouter:
    """``GET /login?token=...``: sets the dashboard's cookie and goes to ``/``."""
    routes = APIRouter()
    routes.add_api_route("/login", login, methods=["GET"], summary="Set the dashboard's token cookie and go to /")
    return routes


def login(request: Request, token: str = Query("", description="the server's token")) -> Response:
    expected: str | None = request.app.state.token
    response = RedirectResponse("/", status_code=303, headers={"Cache-Control": "no-store",
                                                               "Referrer-Policy": "no-referrer"})
    if expected is None:
        return response
    if not token_matches(expected, token):
        raise TokenRefused("wrong token: open /login?token=<the content of the server's --token-file>")
    response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response
