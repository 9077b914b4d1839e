"""The REST handlers under ``/api/v1``: runs, the batches they log, what they logged, artifacts.

| method and path | what |
| --- | --- |
| ``POST /api/v1/runs`` | create a run (client-chosen ``id``; 409 when it exists) → 201 |
| ``GET /api/v1/runs?project=&status=&tag=&search=&limit=&offset=`` | ``{"runs": [...], "next_offset": n}`` |
| (more filters: ``id_prefix=``, ``where=``, ``sort=``, ``archived=``) | see ``Store.list_runs`` |
| ``GET /api/v1/runs/{id}`` | one run with its params and tags |
| ``PATCH /api/v1/runs/{id}`` | change status, ended_at, error, stats, heartbeat_at, name, notes, archived_at... |
| ``DELETE /api/v1/runs/{id}`` | delete a run, what it logged and its artifacts → 204 |
| ``POST /api/v1/runs/{id}/batches`` | params, tags, metrics, logs, images; once per ``batch_id`` |
| ``GET /api/v1/runs/{id}/metrics?keys=a,b`` | ``{"metrics": {key: [[step, value, timestamp]]}}`` |
| ``GET /api/v1/runs/{id}/metrics/sampled?buckets=&keys=`` | series cut to a chart's width (min/max per bucket) |
| (and ``start=``, ``end=``, ``axis=``: a zoom; ``after=``: only what is new) | see ``Store.sampled_metrics`` |
| ``GET /api/v1/runs/{id}/logs?after=&limit=`` | ``{"logs": [...], "last": id}`` for a live tail |
| ``GET /api/v1/runs/{id}/images`` | logged images, each with a download ``url`` |
| ``GET /api/v1/runs/{id}/artifacts`` | ``{"artifacts": [...]}`` |
| ``PUT /api/v1/runs/{id}/artifacts/{name}`` | the raw body, streamed into the artifact store → 201 |
| ``GET /api/v1/runs/{id}/artifacts/{name}`` | streamed download |
| ``GET /api/v1/projects`` | ``{"projects": [...]}`` |

(``/api/v1/jobs`` is in :mod:`tidal.tracking.server.jobs`.) A handler raises the
:mod:`tidal.errors` class that says what went wrong; the app answers it with its status.

Example::

    api = APIRouter(prefix=API_PREFIX, route_class=StrictJSONRoute)
    add_routes(api, store, max_upload_bytes=4 * 2**30)
"""

from __future__ import annotations

import mimetypes
import os
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import BinaryIO, Literal, cast

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from tidal.status import RunStatus
from tidal.tracking.artifacts import normalize_name, validate_run_id
from tidal.tracking.httpstore import API_PREFIX
from tidal.tracking.server.models import BatchIn, RunCreate, RunUpdate
from tidal.tracking.server.responses import json_response
from tidal.tracking.store import Store

DOWNLOAD_CHUNK = 1024 * 1024
MAX_PAGE = 10_000
_INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp",
                           "text/plain", "application/json"})
_UPLOAD_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


def add_routes(api: APIRouter, store: Store, max_upload_bytes: int) -> None:
    """The runs, data and artifact routes of ``store`` on ``api``."""
    known = KnownRuns(store)
    _run_routes(api, store, known)
    _data_routes(api, store, known)
    _artifact_routes(api, store, known, max_upload_bytes)


class KnownRuns:
    """Run ids seen to exist, so a stream of batches doesn't look the run up each time
    (a deleted run is forgotten here as it is deleted)."""

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


def _run_routes(api: APIRouter, store: Store, known: KnownRuns) -> None:
    @api.post("/runs", status_code=201, summary="Create a run")
    def create_run(body: RunCreate) -> Response:
        run = body.model_dump(exclude_none=True)
        run.setdefault("id", uuid.uuid4().hex)
        run.setdefault("started_at", time.time())
        store.create_run(run)  # a duplicate id raises RunExists: 409
        known.ids.add(run["id"])
        return json_response(store.get_run(run["id"]), 201)

    @api.get("/runs", summary="List runs, newest first (or by sort), a page at a time")
    def list_runs(project: str | None = None, status: RunStatus | None = None, tag: str | None = None,
                  search: str | None = None, limit: int = Query(500, ge=1, le=MAX_PAGE),
                  job_id: str | None = Query(None, max_length=32),
                  offset: int = Query(0, ge=0, le=2**31 - 1), id_prefix: str | None = Query(None, max_length=32),
                  where: str | None = Query(None, description="e.g. metrics.acc > 0.9 and params.opt = 'adam'"),
                  sort: str | None = Query(None, description="a column, metrics.KEY or params.KEY; -KEY: descending"),
                  archived: Literal["exclude", "only", "include"] = "exclude") -> Response:
        runs = store.list_runs(project=project, status=status.value if status else None, tag=tag,
                               search=search, limit=limit, job_id=job_id, offset=offset, id_prefix=id_prefix,
                               where=where, sort=sort, archived=archived)
        return json_response({"runs": runs, "next_offset": offset + limit if len(runs) == limit else None})

    @api.delete("/runs/{run_id}", status_code=204, summary="Delete a run, what it logged and its artifacts")
    def delete_run(run_id: str) -> Response:
        validate_run_id(run_id)
        store.delete_run(run_id)
        known.ids.discard(run_id)
        return Response(status_code=204)

    @api.get("/runs/{run_id}", summary="One run with its params and tags")
    def get_run(run_id: str) -> Response:
        return json_response(store.get_run(run_id))

    @api.patch("/runs/{run_id}", summary="Change a run's status, end, error, stats...")
    def update_run(run_id: str, body: RunUpdate) -> Response:
        fields = body.model_dump(exclude_unset=True)
        if fields:
            store.update_run(run_id, fields)
        return json_response(store.get_run(run_id))

    @api.post("/runs/{run_id}/batches", summary="Log a batch (applied once per batch_id)")
    def log_batch(run_id: str, body: BatchIn) -> Response:
        known.require(run_id)
        store.log_batch(run_id, body.to_batch())
        return json_response({"batch_id": body.batch_id})

    @api.get("/projects", summary="Projects that have runs")
    def projects() -> Response:
        return json_response({"projects": store.projects()})


def _data_routes(api: APIRouter, store: Store, known: KnownRuns) -> None:
    @api.get("/runs/{run_id}/metrics", summary="Metric points (step, value, timestamp) per key")
    def metrics(run_id: str, keys: str | None = Query(None, description="comma-separated keys")) -> Response:
        known.require(run_id)
        wanted = [key.strip() for key in (keys or "").split(",") if key.strip()] or None
        return json_response({"metrics": store.metrics(run_id, wanted)})

    @api.get("/runs/{run_id}/metrics/sampled", summary="Metric series cut to a chart's width, spikes kept")
    def sampled_metrics(run_id: str, buckets: int = Query(1000, ge=1, le=MAX_PAGE),
                        keys: str | None = Query(None, description="comma-separated keys"),
                        start: float | None = Query(None, allow_inf_nan=False),
                        end: float | None = Query(None, allow_inf_nan=False),
                        axis: Literal["step", "time"] | None = None,
                        after: int = Query(0, ge=0, le=2**63 - 1)) -> Response:
        known.require(run_id)
        wanted = [key.strip() for key in (keys or "").split(",") if key.strip()] or None
        return json_response(store.sampled_metrics(run_id, buckets, wanted, start, end, axis, after))

    @api.get("/runs/{run_id}/logs", summary="Console output after a log id (a live tail)")
    def logs(run_id: str, after: int = Query(0, ge=0, le=2**31 - 1),  # ids are 32-bit integers
             limit: int = Query(1000, ge=1, le=MAX_PAGE)) -> Response:
        known.require(run_id)
        found = store.logs(run_id, after=after, limit=limit)
        return json_response({"logs": found, "last": found[-1]["id"] if found else after})

    @api.get("/runs/{run_id}/images", summary="Logged images with their download URLs")
    def images(run_id: str) -> Response:
        known.require(run_id)
        found = [image | {"url": artifact_url(run_id, image["artifact"])} for image in store.images(run_id)]
        return json_response({"images": found})

    @api.get("/runs/{run_id}/artifacts", summary="A run's artifacts: name, uri, size, sha256")
    def artifacts(run_id: str) -> Response:
        known.require(run_id)
        return json_response({"artifacts": store.artifacts(run_id)})


def artifact_url(run_id: str, name: str) -> str:
    """The API path that downloads artifact ``name`` of run ``run_id``."""
    return f"{API_PREFIX}/runs/{urllib.parse.quote(run_id, safe='')}/artifacts/{urllib.parse.quote(name)}"


def _artifact_routes(api: APIRouter, store: Store, known: KnownRuns, max_upload_bytes: int) -> None:
    @api.put("/runs/{run_id}/artifacts/{name:path}", status_code=201, openapi_extra=_UPLOAD_BODY,
             summary="Upload an artifact: the raw request body, streamed")
    async def upload_artifact(run_id: str, name: str, request: Request) -> Response:
        name = normalize_name(name)
        validate_run_id(run_id)
        await run_in_threadpool(known.require, run_id)
        reader = cast(BinaryIO, RequestReader(request.stream()))
        record = await anyio.to_thread.run_sync(store.put_artifact, run_id, name, reader, max_upload_bytes)
        return json_response(record, 201)

    @api.get("/runs/{run_id}/artifacts/{name:path}", response_class=StreamingResponse,
             summary="Download an artifact, streamed")
    async def download_artifact(run_id: str, name: str) -> Response:
        name = normalize_name(name)
        validate_run_id(run_id)
        await run_in_threadpool(known.require, run_id)
        file = await run_in_threadpool(store.open_artifact, run_id, name)
        return StreamingResponse(_chunks(file), media_type=_media_type(name), headers=_download_headers(file, name))


class RequestReader:
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
