"""The tidal server: ``create_app(store)`` assembles the REST API, the dashboard and their guards.

``tidal server`` and ``tidal ui`` run it with uvicorn, and
:class:`~tidal.tracking.httpstore.HTTPStore` is its client. OpenAPI lives at ``/docs`` and
``/openapi.json``. The pieces, one job each:

| module | job |
| --- | --- |
| :mod:`~tidal.tracking.server.auth` | the token gate (bearer header or cookie) and ``/login`` |
| :mod:`~tidal.tracking.server.limits` | body and upload sizes, strict JSON, no NUL in URLs |
| :mod:`~tidal.tracking.server.models` | the API's request bodies (pydantic) |
| :mod:`~tidal.tracking.server.api` | ``/api/v1`` runs, batches, data, artifacts |
| :mod:`~tidal.tracking.server.jobs` | ``/api/v1/jobs`` |
| :mod:`~tidal.tracking.server.dashboard` | the pages |
| :mod:`~tidal.tracking.server.responses` | JSON answers (NaN as a string) and the error shape |

Also ``GET /healthz`` (``{"status": "ok"}``, never authenticated).

JSON cannot carry NaN or infinities, so in both directions they travel as the strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"``. Every error is ``{"error": message, "type": kind}``: a
:class:`~tidal.errors.TidalError` answers with its ``http_status`` and registered name
(:data:`tidal.errors.HTTP_ERRORS`), so the client raises the same class. Bad input gets a 4xx
(503 when the store itself fails), never a 500.

Example::

    app = create_app(open_store("postgresql://tidal@db/tidal"), token=secrets.token_urlsafe(32))
    uvicorn.run(app, host="0.0.0.0", port=8765)
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, cast

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from tidal.errors import TidalError, http_name
from tidal.tracking.httpstore import API_PREFIX
from tidal.tracking.server import api, auth, dashboard, jobs, queue
from tidal.tracking.server.auth import CHALLENGE, TokenGate, require_token
from tidal.tracking.server.limits import BodyLimit, StrictJSONRoute
from tidal.tracking.server.responses import TidalJSONResponse, error_response, json_response
from tidal.tracking.store import Store

# headers that go with an error's status: how to authenticate, when to retry
_ERROR_HEADERS = {401: CHALLENGE, 503: {"Retry-After": "1"}}


def create_app(store: Store, *, token: str | None = None, max_request_bytes: int = 16 * 2**20,
               max_upload_bytes: int = 4 * 2**30) -> FastAPI:
    """The tidal server over ``store``.

    ``token``: when set (16 characters or more), every ``/api/`` request needs
    ``Authorization: Bearer <token>`` (or the ``tidal_token`` cookie that ``/login`` sets). Runs
    and ``tidal map`` jobs are read and written through ``store``. Request bodies over
    ``max_request_bytes`` (artifact uploads: ``max_upload_bytes``) get a 413.
    """
    if token is not None:
        auth.check_token(token)
    app = FastAPI(title="tidal", version="1", summary="Runs, metrics, logs, artifacts and jobs of tidal.",
                  default_response_class=TidalJSONResponse)
    app.state.store = store
    app.state.token = token
    rest = APIRouter(prefix=API_PREFIX, dependencies=[Depends(require_token)], route_class=StrictJSONRoute)
    api.add_routes(rest, store, max_upload_bytes)
    jobs.add_routes(rest, store)
    queue.add_routes(app, rest, store)  # the queue's API and page; its dispatcher runs in the lifespan
    app.include_router(rest)
    app.add_api_route("/healthz", _healthz, methods=["GET"], summary="Liveness (never authenticated)")
    app.include_router(auth.router())
    app.include_router(dashboard.router(store))
    _exception_handlers(app)
    app.add_middleware(BodyLimit, max_request_bytes=max_request_bytes, max_upload_bytes=max_upload_bytes)
    app.add_middleware(TokenGate, token=token)  # added last: runs first
    return app


def _healthz() -> Response:
    return json_response({"status": "ok"})


def _exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TidalError, _tidal_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _internal_error)


def _tidal_error(_request: Request, error: Exception) -> Response:
    """Our own errors: their class says the status and the name the client raises again."""
    kind = cast(type[TidalError], type(error))
    return error_response(kind.http_status, str(error), http_name(kind), _ERROR_HEADERS.get(kind.http_status))


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
    if isinstance(error.__cause__, TidalError):  # FastAPI wraps what reading the body raised in a 400
        return _tidal_error(request, error.__cause__)
    message = str(error.detail)
    if error.status_code == 404 and message == "Not Found":
        message = f"no such endpoint: {request.method} {request.url.path}; the API is listed at /docs"
    elif error.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}; the API is listed at /docs"
    return error_response(error.status_code, message, _status_name(error.status_code), dict(error.headers or {}))


def _status_name(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase.title().replace(" ", "").replace("-", "")
    except ValueError:
        return "HTTPError"


def _client_gone(_request: Request, _error_: Exception) -> Response:
    return error_response(400, "the client closed the connection before the request body was complete",
                          "ClientDisconnect")


def _internal_error(_request: Request, error: Exception) -> Response:
    return error_response(500, f"internal error ({type(error).__name__}); the server's log has the traceback",
                          "InternalError")
