"""``/api/v1/jobs``: the ``tidal map`` jobs of the server's store — read by people, written by
the HTTP ledger of a ``tidal map`` that runs anywhere with ``TIDAL_TRACKING_URI`` set here.

| method and path | what |
| --- | --- |
| ``GET /jobs?prefix=&limit=`` | ``{"jobs": [...]}`` with done and failed counts |
| ``GET /jobs/{id}?max_failures=`` | one job: counts, config, partitions, runs, first failures |
| ``GET /jobs/{id}/results?include_failed=`` | the rows, streamed as JSON lines |
| ``PUT /jobs/{id}`` | register (or resume) the job: name, config, config_file |
| ``PATCH /jobs/{id}`` | its status (and total items) |
| ``GET /jobs/{id}/partitions`` | each closed partition's status and failed count |
| ``GET /jobs/{id}/keys?partition=&status=`` | one partition's settled item keys |
| ``POST /jobs/{id}/messages`` | a group of batch messages, written in order (an upsert: safe to retry) |
| ``GET /jobs/{id}/counts`` | done items, failed items, failed partitions |
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tidal.errors import JobNotFound
from tidal.jobs.http_ledger import decode_message
from tidal.jobs.ledger import ItemStatus, JobStatus, Ledger
from tidal.tracking.httpstore import API_PREFIX
from tidal.tracking.server.models import Int32
from tidal.tracking.server.responses import json_response
from tidal.tracking.store import Store

JobId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
Text = Annotated[str, StringConstraints(max_length=1_000_000)]
MAX_MESSAGES = 10_000
MAX_ROWS = 100_000


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True)


class JobIn(Body):
    name: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    config: dict[str, Any]
    config_file: Annotated[str, StringConstraints(max_length=4096)] | None = None


class JobStatusIn(Body):
    status: JobStatus
    total_items: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = None


RowIn = tuple[str, Text, Text, ItemStatus, Text | None, Int32 | None, str | None, str | None, str | None]


class MessageIn(Body):
    partition_id: Text
    rows: Annotated[list[RowIn], Field(max_length=MAX_ROWS)]
    end: tuple[Literal["done", "failed"], str | None] | None = None
    failed: Annotated[int, Field(ge=0)] = 0


class MessagesIn(Body):
    messages: Annotated[list[MessageIn], Field(max_length=MAX_MESSAGES)]


def add_routes(api: APIRouter, store: Store) -> None:
    _read_routes(api, store)
    _ledger_routes(api, store)


def _read_routes(api: APIRouter, store: Store) -> None:
    @api.get("/jobs", summary="tidal map jobs with done and failed counts, most recently updated first")
    def jobs(prefix: Annotated[str, StringConstraints(max_length=32)] | None = None,
             limit: int = Query(500, ge=1, le=10_000)) -> Response:
        return json_response({"jobs": store.list_jobs(prefix=prefix, limit=limit)})

    @api.get("/jobs/{job_id}", summary="One job: counts, config, partitions, runs, first failures")
    def job(job_id: JobId, max_failures: int = Query(20, ge=0, le=10_000)) -> Response:
        return json_response(store.get_job(job_id, max_failures))

    @api.get("/jobs/{job_id}/results", response_class=StreamingResponse,
             summary="A job's rows as JSON lines (key, item metadata, result fields), in a stable order")
    def results(job_id: JobId, include_failed: bool = False) -> StreamingResponse:
        _require(store, job_id)  # an unknown job is a 404, before the stream starts
        return StreamingResponse(_lines(store.results(job_id, include_failed)), media_type="application/x-ndjson")


def _lines(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    """JSON lines as results are stored (NaN and infinities as JSON's tokens), a few hundred rows a chunk."""
    chunk: list[str] = []
    for row in rows:
        chunk.append(json.dumps(row, separators=(",", ":")))
        if len(chunk) >= 500:
            yield ("\n".join(chunk) + "\n").encode()
            chunk = []
    if chunk:
        yield ("\n".join(chunk) + "\n").encode()


def _ledger_routes(api: APIRouter, store: Store) -> None:
    @api.put("/jobs/{job_id}", summary="Register a job (or mark it running again on a resume)")
    def register(job_id: JobId, body: JobIn) -> Response:
        with _ledger(store, job_id) as ledger:
            ledger.register(body.name, body.config, body.config_file)
        return json_response({"id": job_id})

    @api.patch("/jobs/{job_id}", summary="Set a job's status (and total items)")
    def set_status(job_id: JobId, body: JobStatusIn) -> Response:
        _require(store, job_id)
        with _ledger(store, job_id) as ledger:
            ledger.set_status(JobStatus(body.status), body.total_items)
        return json_response({"id": job_id})

    @api.get("/jobs/{job_id}/partitions", summary="Each closed partition's status and number of failed items")
    def partitions(job_id: JobId) -> Response:
        with _ledger(store, job_id) as ledger:
            states = ledger.partition_states()
        return json_response({"partitions": {pid: [state.status.value, state.failed] for pid, state in states.items()}})

    @api.get("/jobs/{job_id}/keys", summary="The keys of one partition's items with these statuses")
    def keys(job_id: JobId, partition: str, status: list[ItemStatus] = Query(...)) -> Response:
        with _ledger(store, job_id) as ledger:
            return json_response({"keys": sorted(ledger.keys(partition, [ItemStatus(s) for s in status]))})

    @api.post("/jobs/{job_id}/messages", summary="Write batch messages in order; writing one twice changes nothing")
    def messages(job_id: JobId, body: MessagesIn) -> Response:
        _require(store, job_id)  # registered first: rows of an unknown job are refused
        decoded = [decode_message(job_id, message.model_dump(mode="json")) for message in body.messages]
        with _ledger(store, job_id) as ledger:
            ledger.record_many(decoded)
        return json_response({"messages": len(decoded), "rows": sum(len(m.rows) for m in decoded)})

    @api.get("/jobs/{job_id}/counts", summary="Done items, failed items and failed partitions")
    def counts(job_id: JobId) -> Response:
        with _ledger(store, job_id) as ledger:
            found = ledger.counts()
        return json_response({"done": found.done, "failed_items": found.failed_items,
                              "failed_partitions": found.failed_partitions})


def _require(store: Store, job_id: str) -> None:
    if not store.has_job(job_id):
        raise JobNotFound(f"no job {job_id!r} on this server; PUT {API_PREFIX}/jobs/{job_id} registers it, "
                          f"GET {API_PREFIX}/jobs lists the jobs")


class _ledger:
    """``with _ledger(store, job_id) as ledger:`` — one request's ledger, closed after it."""

    def __init__(self, store: Store, job_id: str) -> None:
        self.ledger = store.ledger(job_id)

    def __enter__(self) -> Ledger:
        return self.ledger

    def __exit__(self, *_: object) -> None:
        self.ledger.close()
