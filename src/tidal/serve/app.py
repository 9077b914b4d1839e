"""The front's HTTP application: FastAPI routes over a serving Backend.

The front is the always-on, light process that owns the port: it imports FastAPI, uvicorn and
tidal's light core, never NumPy, PyAV or the processor (an idle service with no worker is this
process alone, about 80 MB RSS, tracking included). ``POST /v1/predict`` reads the request
(:mod:`tidal.serve.payload`) and hands it to the backend (:mod:`tidal.serve.backend`; local
worker processes by default), whose JSON bytes are returned unchanged; a ``{"url": ...}``
request is fetched here first (:mod:`tidal.serve.fetcher`), so a URL that never answers holds
one request, never a worker. ``GET /healthz`` (the front answers), ``/readyz`` (503 while no
worker can take work), ``/metrics`` (Prometheus) and ``/docs`` (Swagger UI, its assets served
by the front itself: it works offline) complete it.

Example::

    config = load_service("examples/repetitions/service.hjson")
    serve(config, port=8080)           # or: app = create_app(config); uvicorn.run(app)
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi_offline import FastAPIOffline

from tidal.errors import RequestError
from tidal.serve.allowlist import AllowList
from tidal.serve.backend import Backend, error_reply
from tidal.serve.config import ServiceConfig
from tidal.serve.fetcher import Fetcher
from tidal.serve.hooks import ProcessorInfo
from tidal.serve.local import LocalBackend, describe_processor
from tidal.serve.payload import JSON_TYPE, Payload, read_payload
from tidal.serve.schema import RequestSchema
from tidal.serve.tracker import ServiceTracker

LOG = logging.getLogger("tidal.serve")


def create_app(config: ServiceConfig, info: ProcessorInfo | None = None, track: bool = True,
               backend: Backend | None = None) -> FastAPI:
    """The front's FastAPI application over ``backend`` (unless given: the config's, local or Ray
    Serve, its service a tracked run when ``track``); the processor is described in a worker if
    ``info`` is None. ``app.state.backend`` is the backend."""
    info = info or describe_processor(config)
    if backend is None:
        tracker = ServiceTracker.start(config, info) if track else ServiceTracker()
        backend = _backend(config, info, tracker)
    served = backend

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await served.start()
        try:
            yield
        finally:
            await served.stop()

    app = FastAPIOffline(title=f"{config.name} (tidal serve)", version="1", lifespan=lifespan,
                         description=_description(config, info))
    app.state.backend = backend
    allow = AllowList(config.http.allow_urls)
    requests = RequestSchema(info, allow)
    _routes(app, config, requests, Fetcher(allow, config.http.max_upload_bytes, config.http.fetch_timeout), backend)
    app.openapi = lambda: _openapi(app, requests.definitions)  # type: ignore[method-assign]
    return app


def _backend(config: ServiceConfig, info: ProcessorInfo, tracker: ServiceTracker) -> Backend:
    """The backend the config names (``backend:``, ``--backend``); Ray is imported only for Ray."""
    if config.backend == "ray":
        from tidal.serve.ray import RayServeBackend

        return RayServeBackend(config, info, tracker)
    return LocalBackend(config, info, tracker)


def _routes(app: FastAPI, config: ServiceConfig, requests: RequestSchema, fetcher: Fetcher,
            backend: Backend) -> None:
    @app.post("/v1/predict", openapi_extra=requests.openapi_body(), responses=_RESPONSES)
    async def predict(request: Request) -> Response:
        """Run the processor on one request: JSON, an uploaded image or video, or an allowed URL."""
        started = time.monotonic()
        try:
            payload = await read_payload(request, config.http, requests, started)
            if payload.kind == "url":  # fetched here: a stalled origin never holds a worker
                fetched = await fetcher.fetch(payload.data, started + config.http.request_timeout)
                payload = Payload("upload", [fetched], started)
            reply = await backend.predict(payload)
        except RequestError as problem:
            reply = error_reply(problem.status, problem.message, detail=problem.detail, log=True)
        backend.metrics.observe_request(reply.status, time.monotonic() - started)
        return Response(reply.body, reply.status, reply.headers, media_type=JSON_TYPE)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Liveness: the front answers."""
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", responses={503: {"description": "No worker can take work now (all stuck, or none can "
                                                        "start), or the service is shutting down."}})
    async def readyz() -> JSONResponse:
        """Readiness: a worker can take work (a ready one, or one that can start: the front holds
        requests while it does); 503 when none can. The body lists the workers' states."""
        status = backend.status()
        return JSONResponse(status, 200 if status["ready"] else 503)

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        """Prometheus metrics."""
        return PlainTextResponse(backend.render_metrics(), media_type="text/plain; version=0.0.4; charset=utf-8")


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The processor's response: `{\"results\": [...]}` or what `postprocess` returns."},
    400: {"description": "Malformed request: invalid JSON, empty upload, no file in the form."},
    403: {"description": "The URL (or a redirect) is outside the service's allow-list, or reaches a private address."},
    404: {"description": "The URL names a file that does not exist."},
    413: {"description": "The body, or the file at the URL, is over `max_upload_bytes`."},
    415: {"description": "The content type is not JSON, a form, an image or a video; or an image sent to a service "
                         "that takes whole videos."},
    422: {"description": "The JSON does not match the input (names the field), the media cannot be decoded, or the "
                         "URL cannot be fetched (not a file, its host unreachable)."},
    500: {"description": "The processor raised; the body has an `error_id` also in the service's log."},
    502: {"description": "The model worker crashed while processing the request; it is replaced."},
    503: {"description": "Too many requests waiting (`queue_limit`); see `Retry-After`."},
    504: {"description": "The request took longer than `request_timeout`, or fetching its URL longer than "
                        "`fetch_timeout` (a worker stuck in `process()` is killed and replaced)."},
}


def _openapi(app: FastAPI, definitions: dict[str, Any]) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        if definitions:
            schema.setdefault("components", {}).setdefault("schemas", {}).update(definitions)
        app.openapi_schema = schema
    return app.openapi_schema


def _description(config: ServiceConfig, info: ProcessorInfo) -> str:
    http = config.http
    return (f"{info.doc}\n\nServes `{info.target}` with tidal: batches of up to "
            f"{http.max_batch_size or info.batch_size} items, {http.min_workers}-{http.max_workers} workers, "
            f"a worker stops after {http.idle_timeout:g} s without a request and starts again on the next one. "
            f"Videos are decoded {'as whole clips' if info.video == 'clip' else 'frame by frame'}.")


def serve(config: ServiceConfig, host: str = "127.0.0.1", port: int = 8080, *, track: bool = True,
          log_level: str = "info", access_log: bool = False) -> None:
    """Describe the processor (failing early on a bad config), then serve until interrupted."""
    import uvicorn

    if not logging.getLogger().handlers:  # other libraries (alembic...) say only warnings
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    LOG.setLevel(log_level.upper())
    info = describe_processor(config)
    app = create_app(config, info, track=track)
    LOG.info("listening on http://%s:%d (docs at /docs)", host, port)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=access_log, ws="none",
                lifespan="on")
