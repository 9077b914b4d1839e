"""The queue on the tidal server: ``/api/v1/queue``, the ``/queue`` page, and the dispatcher that
hands waiting runs to Ray (``tidal.remote.dispatcher``), started and stopped with the server.

| method and path | what |
| --- | --- |
| ``GET /queue?status=waiting,submitted&limit=`` | ``{"entries": [...]}``, highest priority first |
| ``GET /queue/{run_id}`` | one entry |
| ``POST /queue`` | enqueue a submitted run (``tidal submit`` does it) |
| ``PATCH /queue/{run_id}`` | ``{"fields": {...}, "only_if": [statuses]}`` → ``{"changed": bool}`` (a compare-and-set) |
| ``GET /queue`` (page) | the dashboard's queue: each entry, why it waits, its run |

The dispatcher runs while the server's lifespan does (``tidal server`` and ``tidal ui``; a test's
``start_server(app, lifespan="on")``); it injects the server's own token into the jobs it submits,
so the token is never stored with an entry.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import Field, StringConstraints

from tidal.status import QueueStatus
from tidal.tracking.server.dashboard import Dashboard
from tidal.tracking.server.models import Int32, RunId, Timestamp, _Body
from tidal.tracking.server.responses import json_response
from tidal.tracking.store import Store

Address = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
Reason = Annotated[str, StringConstraints(max_length=100_000)]
RayJobId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class QueueFieldsIn(_Body):
    """The columns of an entry a client may change."""

    priority: Int32 | None = None
    status: QueueStatus | None = None
    reason: Reason | None = None
    ray_job_id: RayJobId | None = None
    submitted_at: Timestamp | None = None
    ended_at: Timestamp | None = None
    attempts: Annotated[int, Field(ge=0, le=1_000_000)] | None = None


class QueueEntryIn(QueueFieldsIn):
    run_id: RunId
    priority: Int32 = 0
    status: QueueStatus = QueueStatus.WAITING
    address: Address
    spec: dict[str, Any]
    created_at: Timestamp


class QueueUpdateIn(_Body):
    fields: QueueFieldsIn
    only_if: list[QueueStatus] | None = None


def add_routes(app: FastAPI, api: APIRouter, store: Store) -> None:
    """The REST routes on ``api``, the page on ``app``, and the dispatcher in ``app``'s lifespan."""
    _api_routes(api, store)
    app.include_router(_page_router(store))
    app.router.lifespan_context = _dispatching(store)


def _api_routes(api: APIRouter, store: Store) -> None:
    @api.get("/queue", summary="Submitted runs, highest priority first, filtered by status")
    def entries(status: Annotated[str, StringConstraints(max_length=200)] | None = None,
                limit: int = Query(1000, ge=1, le=100_000)) -> Response:
        wanted = [QueueStatus(name).value for name in status.split(",")] if status else None
        return json_response({"entries": store.queue_entries(wanted, limit)})

    @api.get("/queue/{run_id}", summary="One submitted run's entry")
    def entry(run_id: RunId) -> Response:
        return json_response(store.queue_entry(run_id))

    @api.post("/queue", status_code=201, summary="Queue a submitted run (tidal submit)")
    def enqueue(body: QueueEntryIn) -> Response:
        store.enqueue(body.model_dump(mode="json", exclude_none=True))
        return json_response({"run_id": body.run_id}, status_code=201)

    @api.patch("/queue/{run_id}", summary="Change an entry, only while its status is one of only_if")
    def update(run_id: RunId, body: QueueUpdateIn) -> Response:
        fields = body.fields.model_dump(mode="json", exclude_unset=True)
        only_if = [QueueStatus(status).value for status in body.only_if] if body.only_if is not None else None
        return json_response({"changed": store.update_queue_entry(run_id, fields, only_if)})


def _page_router(store: Store) -> APIRouter:
    pages = Dashboard(store)
    routes = APIRouter(include_in_schema=False)

    def queue_page(request: Request) -> HTMLResponse:
        from tidal.remote.queue import queue_view

        view = queue_view(store.queue_entries(limit=500))
        return pages.render(request, "queue.html", entries=view, live=any(e["active"] for e in view))

    routes.add_api_route("/queue", pages.gated(queue_page), methods=["GET"], response_class=HTMLResponse)
    return routes


def _dispatching(store: Store) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from tidal.remote.dispatcher import Dispatcher

        dispatcher = Dispatcher(store, token=app.state.token)
        dispatcher.start()
        try:
            yield
        finally:
            dispatcher.stop()

    return lifespan
