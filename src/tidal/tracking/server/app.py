"""The REST API of a tidal server: runs, batches of what they log, artifacts and jobs.

``create_app(store)`` returns a FastAPI application; ``tidal server`` and ``tidal ui`` run it with
uvicorn, and :class:`~tidal.tracking.httpstore.HTTPStore` is its client. OpenAPI lives at
``/docs`` and ``/openapi.json``.

| method and path | what |
| --- | --- |
| ``POST /api/v1/runs`` | create a run (client-chosen ``id``; 409 when it exists) → 201 |
| ``GET /api/v1/runs?project=&status=&tag=&search=&limit=`` | ``{"runs": [...]}``, newest first |
| ``GET /api/v1/runs/{id}`` | one run with its params and tags |
| ``PATCH /api/v1/runs/{id}`` | change status, ended_at, error, stats, heartbeat_at... |
| ``POST /api/v1/runs/{id}/batches`` | params, tags, metrics, logs, images; once per ``batch_id`` |
| ``GET /api/v1/runs/{id}/metrics?keys=a,b`` | ``{"metrics": {key: [[step, value, timestamp]]}}`` |
| ``GET /api/v1/runs/{id}/logs?after=&limit=`` | ``{"logs": [...], "last": id}`` for a live tail |
| ``GET /api/v1/runs/{id}/images`` | logged images, each with a download ``url`` |
| ``GET /api/v1/runs/{id}/artifacts`` | ``{"artifacts": [...]}`` |
| ``PUT /api/v1/runs/{id}/artifacts/{name}`` | the raw body, streamed into the artifact store → 201 |
| ``GET /api/v1/runs/{id}/artifacts/{name}`` | streamed download |
| ``GET /api/v1/projects`` | ``{"projects": [...]}`` |
| ``GET /api/v1/jobs``, ``GET /api/v1/jobs/{id}`` | ``tidal map`` jobs of the embedded store |
| ``GET /healthz`` | ``{"status": "ok"}``, never authenticated |
| ``GET /login?token=...`` | sets the ``tidal_token`` cookie for the dashboard, redirects to ``/`` |

JSON cannot carry NaN or infinities, so in both directions they travel as the strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"``. Every error is ``{"error": message, "type": kind}`` with a
4xx status (503 when the store itself fails): bad input never yields a 500.

Example::

    app = create_app(open_store("postgresql://tidal@db/tidal"), token="s3cret")
    uvicorn.run(app, host="0.0.0.0", port=8765)
"""

from __future__ import annotations

import hmac
import importlib
import importlib.util
import json
import mimetypes
import os
import re
import sqlite3
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import closing
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, BinaryIO, TypeVar, cast

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidal.errors import ConfigError, StoreError, TidalError, UsageError
from tidal.tracking.artifacts import (
    ArtifactNameError,
    ArtifactNotFound,
    ArtifactStoreError,
    ArtifactTooLarge,
    normalize_name,
    validate_run_id,
)
from tidal.tracking.httpstore import API_PREFIX, NON_FINITE, encode_non_finite  # the wire format
from tidal.tracking.store import Batch, RunExists, RunNotFound, RunStatus, Store

TOKEN_COOKIE = "tidal_token"
# A too large body is read and dropped up to this much before the 413 goes out: a client still
# sending then reads our answer instead of a reset connection. Past it we answer and hang up.
DRAIN_BYTES = 8 * 2**20
DOWNLOAD_CHUNK = 1024 * 1024
MAX_PAGE = 10_000
_INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp",
                           "text/plain", "application/json"})
_UPLOAD_PATH = re.compile(re.escape(API_PREFIX) + r"/runs/[^/]+/artifacts/.")


# -- JSON ------------------------------------------------------------------------------------


class TidalJSONResponse(JSONResponse):
    """JSON whose non-finite floats travel as strings (Starlette's own refuses them: a 500)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(encode_non_finite(content), allow_nan=False, separators=(",", ":"),
                          default=str).encode("utf-8")


def _json(content: Any, status_code: int = 200) -> TidalJSONResponse:
    return TidalJSONResponse(content, status_code=status_code)


def _error(status_code: int, message: str, kind: str, headers: dict[str, str] | None = None) -> TidalJSONResponse:
    return TidalJSONResponse({"error": message, "type": kind}, status_code=status_code, headers=headers)


# -- request bodies --------------------------------------------------------------------------


def _metric_value(value: Any) -> float:
    """A number, or one of the strings "NaN", "Infinity", "-Infinity"."""
    if isinstance(value, str) and value in NON_FINITE:
        return NON_FINITE[value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("a metric value must be a number, or 'NaN', 'Infinity' or '-Infinity'")
    try:
        return float(value)
    except OverflowError:
        raise ValueError("a metric value must fit in a 64-bit float") from None


RunId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
Key = Annotated[str, StringConstraints(min_length=1, max_length=250)]
Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
# Unix seconds up to the year 3000: a page formatting a date from year 10**9 would fail
Timestamp = Annotated[float, Field(ge=0, le=32_503_680_000, allow_inf_nan=False)]
MetricValue = Annotated[float, BeforeValidator(_metric_value)]
Scalar = str | int | float | bool


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True)


Project = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Kind = Annotated[str, StringConstraints(min_length=1, max_length=16)]


class _RunColumns(_Body):
    """The columns of a run that may be null."""

    ended_at: Timestamp | None = None
    heartbeat_at: Timestamp | None = None
    config: Any = None
    argv: list[str] | None = None
    git: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None
    stats: dict[str, Any] | None = None
    host: str | None = None
    pid: Int32 | None = None
    parent_id: RunId | None = None
    job_id: Annotated[str, StringConstraints(max_length=32)] | None = None
    error: str | None = None


class RunCreate(_RunColumns):
    """A new run; ``id`` is chosen by the client so a retried create cannot make two runs."""

    id: RunId | None = None
    project: Project = "default"
    name: str
    kind: Kind = "script"
    status: RunStatus = Field(default=RunStatus.RUNNING, validate_default=True)
    started_at: Timestamp | None = None  # default: now


class RunUpdate(_RunColumns):
    """Columns to change; the required ones (project, name, kind, status, started_at) can't be null."""

    project: Project | None = None
    name: str | None = None
    kind: Kind | None = None
    status: RunStatus | None = None
    started_at: Timestamp | None = None

    @field_validator("project", "name", "kind", "status", "started_at", mode="before")
    @classmethod
    def _required_column(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("this column cannot be null")
        return value


class ImageIn(_Body):
    key: Key
    step: Int32 | None = None
    artifact: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    width: Int32 | None = None
    height: Int32 | None = None
    timestamp: Timestamp


class BatchIn(_Body):
    """What a run logged since its last flush; a repeated ``batch_id`` is applied once."""

    batch_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    params: dict[Key, Any] = {}
    tags: dict[Key, Scalar] = {}
    metrics: list[tuple[Key, Int32 | None, MetricValue, Timestamp]] = []
    logs: list[tuple[Annotated[str, StringConstraints(min_length=1, max_length=8)], str, Timestamp]] = []
    images: list[ImageIn] = []
    heartbeat: Timestamp | None = None

    def to_batch(self) -> Batch:
        return Batch(self.batch_id, params=self.params, tags={key: str(value) for key, value in self.tags.items()},
                     metrics=list(self.metrics), logs=list(self.logs),
                     images=[image.model_dump() for image in self.images], heartbeat=self.heartbeat)


# -- authentication --------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="the server's token (tidal server --token-file)")
_cookie = APIKeyCookie(name=TOKEN_COOKIE, auto_error=False, description="set by GET /login?token=...")
_WRONG_TOKEN = ("missing or wrong token: send the header 'Authorization: Bearer <token>' (clients: set "
                "TIDAL_TOKEN to the content of the server's --token-file), or open /login?token=<token> "
                "in a browser")


def token_matches(expected: str, presented: str | None) -> bool:
    """Constant-time comparison, so the time taken tells nothing about the token."""
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


def presented_token(connection: HTTPConnection) -> str | None:
    """The bearer token of the Authorization header, else the ``tidal_token`` cookie."""
    scheme, _, value = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return connection.cookies.get(TOKEN_COOKIE)


def require_token(request: Request, _bearer_token: HTTPAuthorizationCredentials | None = Security(_bearer),
                  _cookie_token: str | None = Security(_cookie)) -> None:
    """Dependency: 401 unless the request carries the app's token (a no-op when it has none).

    Reusable by any router on the app: ``APIRouter(dependencies=[Depends(require_token)])``.
    """
    expected: str | None = request.app.state.token
    if expected is not None and not token_matches(expected, presented_token(request)):
        raise HTTPException(401, detail=_WRONG_TOKEN, headers={"WWW-Authenticate": "Bearer"})


class _TokenGate:
    """Refuses unauthenticated ``/api/`` requests before their body is read (FastAPI would
    parse a JSON body before running dependencies)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (self.token is not None and scope["type"] == "http" and _route_path(scope).startswith("/api/")
                and not token_matches(self.token, presented_token(HTTPConnection(scope)))):
            response = _error(401, _WRONG_TOKEN, "Unauthorized", {"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


# -- request size limits ---------------------------------------------------------------------


class RequestTooLarge(HTTPException):
    def __init__(self, limit: int, upload: bool) -> None:
        what = "an artifact upload" if upload else "a request body"
        super().__init__(413, detail=f"{what} is larger than this server's limit of {limit} bytes "
                                     f"({_human_size(limit)}); send less at once")


def _human_size(size: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


class _LimitedReceive:
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
                raise RequestTooLarge(self.limit, self.upload)
        return message

    async def drain(self) -> None:
        drained = 0
        while not self.complete and drained < DRAIN_BYTES:
            message = await self.receive()
            if message["type"] != "http.request":
                return
            drained += len(message.get("body", b""))
            self.complete = not message.get("more_body", False)


class _BodyLimit:
    """``max_request_bytes`` for every body, ``max_upload_bytes`` for artifact uploads;
    enforced on the bytes received, Content-Length only lets us refuse early."""

    def __init__(self, app: ASGIApp, max_request_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["method"] == "PUT" and bool(_UPLOAD_PATH.match(_route_path(scope)))
        body = _LimitedReceive(receive, self.max_upload_bytes if upload else self.max_request_bytes, upload)
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            declared = _content_length(scope)
            if declared is not None and declared > body.limit:
                if declared <= DRAIN_BYTES:
                    await body.drain()
                raise RequestTooLarge(body.limit, upload)
            await self.app(scope, body, send_tracked)
        except RequestTooLarge as error:  # raised where no exception handler turned it into a response
            if started:
                raise
            await _error(413, error.detail, "RequestTooLarge")(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class _RequestReader:
    """A blocking ``read()`` over an ASGI request body, for a store running in a worker thread.

    Each read pulls chunks from the event loop (``anyio.from_thread``), so an upload of any size
    is copied with about one chunk in memory.
    """

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self.chunks = chunks
        self.buffer = bytearray()
        self.done = False

    async def _next(self) -> bytes | None:
        try:
            return await self.chunks.__anext__()
        except StopAsyncIteration:
            return None

    def read(self, size: int = -1) -> bytes:
        while not self.done and (size < 0 or len(self.buffer) < size):
            chunk = anyio.from_thread.run(self._next)
            if chunk is None:
                self.done = True
            else:
                self.buffer += chunk
        size = len(self.buffer) if size < 0 else size
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class _StrictJSONRequest(Request):
    """JSON bodies that every store can keep.

    A lone UTF-16 surrogate (``"\\ud800"``) is refused: Python decodes it, but no database or
    UTF-8 encoder takes it. NUL characters become U+FFFD: PostgreSQL text cannot hold them, and
    console output may carry one.
    """

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            value = json.loads(body)
            if _SURROGATE_ESCAPE.search(body):
                try:
                    json.dumps(value, ensure_ascii=False).encode("utf-8")
                except UnicodeEncodeError:
                    raise HTTPException(400, detail="the body holds a lone UTF-16 surrogate escape (like "
                                                    "\"\\ud800\") in a string; send valid Unicode") from None
            self._json = _without_nul(value) if b"\\u0000" in body else value
        return self._json


def _refuse_nul_in_url(request: Request) -> None:
    """No id or filter holds a NUL, and PostgreSQL refuses one even in a query (artifact names
    get their own check, with its own message)."""
    values = [value for key, value in request.path_params.items() if key != "name"]
    values += [text for pair in request.query_params.multi_items() for text in pair]
    if any("\x00" in str(value) for value in values):
        raise HTTPException(400, detail="the URL holds a NUL character (%00) in an id or a filter; remove it")


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


class _StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            _refuse_nul_in_url(request)
            return await handler(_StrictJSONRequest(request.scope, request.receive))

        return strict_handler


# -- errors ----------------------------------------------------------------------------------

_STATUS_OF: tuple[tuple[type[TidalError], int], ...] = (
    (RunNotFound, 404), (ArtifactNotFound, 404), (RunExists, 409), (ArtifactTooLarge, 413),
    (ArtifactNameError, 400), (UsageError, 400), (ConfigError, 400),
    (StoreError, 503), (ArtifactStoreError, 503),
)


def _tidal_error(_request: Request, error: Exception) -> Response:
    status = next((code for kind, code in _STATUS_OF if isinstance(error, kind)), 400)
    headers = {"Retry-After": "1"} if status == 503 else None
    return _error(status, str(error), type(error).__name__, headers)


def _validation_error(_request: Request, error: Exception) -> Response:
    problems = [_problem(item) for item in cast(RequestValidationError, error).errors()]
    message = "invalid request: " + "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
    return TidalJSONResponse({"error": message, "type": "ValidationError", "detail": problems}, status_code=422)


def _problem(item: dict[str, Any]) -> dict[str, str]:
    """A pydantic error as field (``body.metrics.0.2``), message and type."""
    location = [str(part) for part in item.get("loc", ())]
    message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
    if item.get("type") == "json_invalid":
        reason = (item.get("ctx") or {}).get("error")
        where = f", at character {location[1]}" if len(location) > 1 else ""
        message = f"the body is not valid JSON ({reason}{where})"
        location = location[:1]
    return {"field": ".".join(location), "message": message, "type": str(item.get("type", ""))}


def _http_error(request: Request, error: Exception) -> Response:
    error = cast(HTTPException, error)
    message = str(error.detail)
    if error.status_code == 404 and message == "Not Found":
        message = f"no such endpoint: {request.method} {request.url.path}; the API is listed at /docs"
    elif error.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}; the API is listed at /docs"
    kind = type(error).__name__ if type(error) is not HTTPException else _status_name(error.status_code)
    return _error(error.status_code, message, kind, dict(error.headers or {}))


def _status_name(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase.title().replace(" ", "").replace("-", "")
    except ValueError:
        return "HTTPError"


def _client_gone(_request: Request, _error_: Exception) -> Response:
    return _error(400, "the client closed the connection before the request body was complete", "ClientDisconnect")


def _internal_error(_request: Request, error: Exception) -> Response:
    return _error(500, f"internal error ({type(error).__name__}); the server's log has the traceback",
                  "InternalError")


# -- the application -------------------------------------------------------------------------


def create_app(store: Store, *, token: str | None = None, jobs_home: Path | None = None,
               max_request_bytes: int = 16 * 2**20, max_upload_bytes: int = 4 * 2**30) -> FastAPI:
    """The tidal server over ``store``.

    ``token``: when set, every ``/api/`` request needs ``Authorization: Bearer <token>`` (or the
    ``tidal_token`` cookie that ``/login`` sets). ``jobs_home``: the embedded store's folder, whose
    ``tidal map`` jobs ``/api/v1/jobs`` lists. Request bodies over ``max_request_bytes`` (artifact
    uploads: ``max_upload_bytes``) get a 413.
    """
    app = FastAPI(title="tidal", version="1", summary="Runs, metrics, logs, artifacts and jobs of tidal.",
                  default_response_class=TidalJSONResponse)
    app.state.store = store
    app.state.token = token
    app.state.jobs_home = jobs_home
    known = _KnownRuns(store)
    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(require_token)], route_class=_StrictJSONRoute)
    _run_routes(api, store, known)
    _data_routes(api, store, known)
    _artifact_routes(api, store, known, max_upload_bytes)
    _job_routes(api, jobs_home)
    app.include_router(api)
    _public_routes(app)
    _include_dashboard(app, store, jobs_home)
    _exception_handlers(app)
    app.add_middleware(_BodyLimit, max_request_bytes=max_request_bytes, max_upload_bytes=max_upload_bytes)
    app.add_middleware(_TokenGate, token=token)  # added last: runs first
    return app


def _exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TidalError, _tidal_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _internal_error)


class _KnownRuns:
    """Run ids seen to exist, so a stream of batches doesn't look the run up each time
    (runs are never deleted)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.ids: set[str] = set()

    def require(self, run_id: str) -> None:
        """Raise RunNotFound (404) unless the run exists."""
        if run_id not in self.ids:
            self.store.get_run(run_id)
            if len(self.ids) > 100_000:
                self.ids.clear()
            self.ids.add(run_id)


def _run_routes(api: APIRouter, store: Store, known: _KnownRuns) -> None:
    @api.post("/runs", status_code=201, summary="Create a run")
    def create_run(body: RunCreate) -> Response:
        run = body.model_dump(exclude_none=True)
        run.setdefault("id", uuid.uuid4().hex)
        run.setdefault("started_at", time.time())
        store.create_run(run)  # a duplicate id raises RunExists: 409
        known.ids.add(run["id"])
        return _json(store.get_run(run["id"]), 201)

    @api.get("/runs", summary="List runs, newest first")
    def list_runs(project: str | None = None, status: RunStatus | None = None, tag: str | None = None,
                  search: str | None = None, limit: int = Query(500, ge=1, le=MAX_PAGE)) -> Response:
        runs = store.list_runs(project=project, status=status.value if status else None, tag=tag,
                               search=search, limit=limit)
        return _json({"runs": runs})

    @api.get("/runs/{run_id}", summary="One run with its params and tags")
    def get_run(run_id: str) -> Response:
        return _json(store.get_run(run_id))

    @api.patch("/runs/{run_id}", summary="Change a run's status, end, error, stats...")
    def update_run(run_id: str, body: RunUpdate) -> Response:
        fields = body.model_dump(exclude_unset=True)
        if fields:
            store.update_run(run_id, fields)
        return _json(store.get_run(run_id))

    @api.post("/runs/{run_id}/batches", summary="Log a batch (applied once per batch_id)")
    def log_batch(run_id: str, body: BatchIn) -> Response:
        known.require(run_id)
        store.log_batch(run_id, body.to_batch())
        return _json({"batch_id": body.batch_id})

    @api.get("/projects", summary="Projects that have runs")
    def projects() -> Response:
        return _json({"projects": store.projects()})


def _data_routes(api: APIRouter, store: Store, known: _KnownRuns) -> None:
    @api.get("/runs/{run_id}/metrics", summary="Metric points (step, value, timestamp) per key")
    def metrics(run_id: str, keys: str | None = Query(None, description="comma-separated keys")) -> Response:
        known.require(run_id)
        wanted = [key.strip() for key in (keys or "").split(",") if key.strip()] or None
        return _json({"metrics": store.metrics(run_id, wanted)})

    @api.get("/runs/{run_id}/logs", summary="Console output after a log id (a live tail)")
    def logs(run_id: str, after: int = Query(0, ge=0, le=2**31 - 1),  # ids are 32-bit integers
             limit: int = Query(1000, ge=1, le=MAX_PAGE)) -> Response:
        known.require(run_id)
        found = store.logs(run_id, after=after, limit=limit)
        return _json({"logs": found, "last": found[-1]["id"] if found else after})

    @api.get("/runs/{run_id}/images", summary="Logged images with their download URLs")
    def images(run_id: str) -> Response:
        known.require(run_id)
        found = [image | {"url": artifact_url(run_id, image["artifact"])} for image in store.images(run_id)]
        return _json({"images": found})

    @api.get("/runs/{run_id}/artifacts", summary="A run's artifacts: name, uri, size, sha256")
    def artifacts(run_id: str) -> Response:
        known.require(run_id)
        return _json({"artifacts": store.artifacts(run_id)})


def artifact_url(run_id: str, name: str) -> str:
    """The API path that downloads artifact ``name`` of run ``run_id``."""
    return f"{API_PREFIX}/runs/{urllib.parse.quote(run_id, safe='')}/artifacts/{urllib.parse.quote(name)}"


_UPLOAD_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


def _artifact_routes(api: APIRouter, store: Store, known: _KnownRuns, max_upload_bytes: int) -> None:
    @api.put("/runs/{run_id}/artifacts/{name:path}", status_code=201, openapi_extra=_UPLOAD_BODY,
             summary="Upload an artifact: the raw request body, streamed")
    async def upload_artifact(run_id: str, name: str, request: Request) -> Response:
        name = normalize_name(name)
        validate_run_id(run_id)
        await run_in_threadpool(known.require, run_id)
        reader = cast(BinaryIO, _RequestReader(request.stream()))
        record = await anyio.to_thread.run_sync(store.put_artifact, run_id, name, reader, max_upload_bytes)
        return _json(record, 201)

    @api.get("/runs/{run_id}/artifacts/{name:path}", response_class=StreamingResponse,
             summary="Download an artifact, streamed")
    async def download_artifact(run_id: str, name: str) -> Response:
        name = normalize_name(name)
        validate_run_id(run_id)
        await run_in_threadpool(known.require, run_id)
        file = await run_in_threadpool(store.open_artifact, run_id, name)
        return StreamingResponse(_chunks(file), media_type=_media_type(name), headers=_download_headers(file, name))


def _chunks(file: BinaryIO) -> Iterator[bytes]:
    try:
        while chunk := file.read(DOWNLOAD_CHUNK):
            yield chunk
    finally:
        file.close()


def _media_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _download_headers(file: BinaryIO, name: str) -> dict[str, str]:
    """Content-Length when known; artifacts are user data, so never run as a page of this site."""
    disposition = "inline" if _media_type(name) in _INLINE_TYPES else "attachment"
    headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox",
               "Content-Disposition": f"{disposition}; filename*=UTF-8''{urllib.parse.quote(name.rsplit('/')[-1])}"}
    size = _size_of(file)
    if size is not None:
        headers["Content-Length"] = str(size)
    return headers


def _size_of(file: BinaryIO) -> int | None:
    size = getattr(file, "size", None)
    if isinstance(size, int):
        return size
    try:
        return os.fstat(file.fileno()).st_size
    except (OSError, AttributeError, ValueError):
        return None


def _job_routes(api: APIRouter, jobs_home: Path | None) -> None:
    @api.get("/jobs", summary="tidal map jobs with done and failed counts")
    def jobs() -> Response:
        if not _has_jobs(jobs_home):
            return _json({"jobs": []})
        from tidal.jobs.inspect import list_jobs

        return _json({"jobs": _read_jobs(jobs_home, list_jobs)})

    @api.get("/jobs/{job_id}", summary="One job: counts, partitions, runs, first failures")
    def job(job_id: str) -> Response:
        if jobs_home is None:
            raise HTTPException(404, detail="this server shows no jobs: `tidal map` jobs live in the embedded "
                                            "store; run `tidal ui` (or `tidal server` without --store) where they ran")
        from tidal.jobs.inspect import job_detail

        found = _read_jobs(jobs_home, lambda db: job_detail(db, job_id)) if _has_jobs(jobs_home) else None
        if found is None:
            raise HTTPException(404, detail=f"no job {job_id!r}; GET {API_PREFIX}/jobs lists the jobs")
        return _json(found)


def _has_jobs(jobs_home: Path | None) -> bool:
    from tidal.settings import DB_FILENAME

    return jobs_home is not None and (jobs_home / DB_FILENAME).exists()


_T = TypeVar("_T")


def _read_jobs(jobs_home: Path | None, read: Callable[[sqlite3.Connection], _T]) -> _T:
    from tidal.database import connect

    try:
        with closing(connect(jobs_home, create=False)) as db:
            return read(db)
    except sqlite3.Error as error:
        raise StoreError(f"cannot read the jobs in {jobs_home}: {error}") from error


def _public_routes(app: FastAPI) -> None:
    @app.get("/healthz", summary="Liveness (never authenticated)")
    def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/login", summary="Set the dashboard's token cookie and go to /")
    def login(request: Request, token: str = Query("", description="the server's token")) -> Response:
        expected: str | None = request.app.state.token
        response = RedirectResponse("/", status_code=303, headers={"Cache-Control": "no-store",
                                                                   "Referrer-Policy": "no-referrer"})
        if expected is None:
            return response
        if not token_matches(expected, token):
            raise HTTPException(401, detail="wrong token: open /login?token=<the content of the server's --token-file>")
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response


def _include_dashboard(app: FastAPI, store: Store, jobs_home: Path | None) -> None:
    """The dashboard's pages (and its ``static/`` folder at ``/static``), when the module exists."""
    if importlib.util.find_spec("tidal.tracking.server.dashboard") is None:
        return
    dashboard = importlib.import_module("tidal.tracking.server.dashboard")
    app.include_router(dashboard.router(store, jobs_home))
    static = Path(__file__).parent / "static"
    if static.is_dir() and not any(getattr(route, "name", None) == "static" for route in app.routes):
        from fastapi.staticfiles import StaticFiles

        app.mount("/static", StaticFiles(directory=static), name="static")
