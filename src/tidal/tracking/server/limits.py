"""What a request may carry: body and upload sizes, JSON every store can keep, no NUL in URLs.

Sizes are enforced on the bytes received, while they stream (Content-Length, when declared, only
lets us refuse early): :class:`BodyLimit` wraps the app. :class:`StrictJSONRoute` is the route
class of the REST API: it refuses NUL characters in ids and filters, and lone UTF-16 surrogates
in bodies, and turns NULs in bodies into U+FFFD.

Example::

    app.add_middleware(BodyLimit, max_request_bytes=16 * 2**20, max_upload_bytes=4 * 2**30)
    api = APIRouter(route_class=StrictJSONRoute)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidal.errors import RequestTooLarge, UsageError, http_name
from tidal.tracking.httpstore import API_PREFIX
from tidal.tracking.server._asgi import content_length, route_path
from tidal.tracking.server.responses import error_response

# A too large body is read and dropped up to this much before the 413 goes out: a client still
# sending then reads our answer instead of a reset connection. Past it we answer and hang up.
DRAIN_BYTES = 8 * 2**20
UPLOAD_PATH = re.compile(re.escape(API_PREFIX) + r"/runs/[^/]+/artifacts/.")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def too_large(limit: int, upload: bool) -> RequestTooLarge:
    what = "an artifact upload" if upload else "a request body"
    return RequestTooLarge(f"{what} is larger than this server's limit of {limit} bytes ({human_size(limit)}); "
                           "send less at once")


def human_size(size: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


class LimitedReceive:
    """Counts body bytes as they arrive and raises RequestTooLarge past ``limit``."""

    def __init__(self, receive: Receive, limit: int, upload: bool) -> None:
        self.receive = receive
        self.limit = limit
        self.upload = upload
        self.received = 0
        self.complete = False

    async def __call__(self) -> Message:
        message = await self.receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self.complete = not message.get("more_body", False)
            if self.received > self.limit:
                await self.drain()
                raise too_large(self.limit, self.upload)
        return message

    async def drain(self) -> None:
        drained = 0
        while not self.complete and drained < DRAIN_BYTES:
            message = await self.receive()
            if message["type"] != "http.request":
                return
            drained += len(message.get("body", b""))
            self.complete = not message.get("more_body", False)


class BodyLimit:
    """``max_request_bytes`` for every body, ``max_upload_bytes`` for artifact uploads."""

    def __init__(self, app: ASGIApp, max_request_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["method"] == "PUT" and bool(UPLOAD_PATH.match(route_path(scope)))
        body = LimitedReceive(receive, self.max_upload_bytes if upload else self.max_request_bytes, upload)
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            declared = content_length(scope)
            if declared is not None and declared > body.limit:
                if declared <= DRAIN_BYTES:
                    await body.drain()
                raise too_large(body.limit, upload)
            await self.app(scope, body, send_tracked)
        except RequestTooLarge as error:  # raised where no exception handler turned it into a response
            if started:
                raise
            await error_response(error.http_status, str(error), http_name(RequestTooLarge))(scope, receive, send)


class StrictJSONRequest(Request):
    """JSON bodies that every store can keep.

    A lone UTF-16 surrogate (``"\\ud800"``) is refused: Python decodes it, but no database or
    UTF-8 encoder takes it. NUL characters become U+FFFD: PostgreSQL text cannot hold them, and
    console output may carry one. (FastAPI answers an error raised here as a 400 "error parsing
    the body" caused by it; the app's handler answers with the cause instead.)
    """

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            value = json.loads(body)
            if _SURROGATE_ESCAPE.search(body):
                try:
                    json.dumps(value, ensure_ascii=False).encode("utf-8")
                except UnicodeEncodeError:
                    raise UsageError("the body holds a lone UTF-16 surrogate escape (like \"\\ud800\") in a "
                                     "string; send valid Unicode") from None
            self._json = without_nul(value) if b"\\u0000" in body else value
        return self._json


def refuse_nul_in_url(request: Request) -> None:
    """No id or filter holds a NUL, and PostgreSQL refuses one even in a query (artifact names
    get their own check, with its own message)."""
    values = [value for key, value in request.path_params.items() if key != "name"]
    values += [text for pair in request.query_params.multi_items() for text in pair]
    if any("\x00" in str(value) for value in values):
        raise UsageError("the URL holds a NUL character (%00) in an id or a filter; remove it")


def without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    return value


class StrictJSONRoute(APIRoute):
    """The REST API's routes: URLs checked for NUL, bodies read as :class:`StrictJSONRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            refuse_nul_in_url(request)
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler
