"""The REST API's request bodies, as pydantic models: what a client may send, checked field by
field before a store sees it (a wrong field is a 422 naming it, never a 500).

Example::

    BatchIn.model_validate({"batch_id": "a1", "metrics": [["loss", 10, "NaN", 1.7e9]]}).to_batch()
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator

from tidal.status import RunStatus
from tidal.tracking.httpstore import NON_FINITE
from tidal.tracking.store import Batch


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
Step = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]  # 64-bit in every store (migration 0002)
# Unix seconds up to the year 3000: a page formatting a date from year 10**9 would fail
Timestamp = Annotated[float, Field(ge=0, le=32_503_680_000, allow_inf_nan=False)]
MetricValue = Annotated[float, BeforeValidator(_metric_value)]
Scalar = str | int | float | bool
Project = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Kind = Annotated[str, StringConstraints(min_length=1, max_length=16)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True)


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
    archived_at: Timestamp | None = None  # set: hidden from lists; null: shown again
    notes: str | None = None


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
    step: Step | None = None
    artifact: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    width: Int32 | None = None
    height: Int32 | None = None
    timestamp: Timestamp


class BatchIn(_Body):
    """What a run logged since its last flush; a repeated ``batch_id`` is applied once."""

    batch_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    params: dict[Key, Any] = {}
    tags: dict[Key, Scalar] = {}
    metrics: list[tuple[Key, Step | None, MetricValue, Timestamp]] = []
    logs: list[tuple[Annotated[str, StringConstraints(min_length=1, max_length=8)], str, Timestamp]] = []
    images: list[ImageIn] = []
    heartbeat: Timestamp | None = None

    def to_batch(self) -> Batch:
        return Batch(self.batch_id, params=self.params, tags={key: str(value) for key, value in self.tags.items()},
                     metrics=list(self.metrics), logs=list(self.logs),
                     images=[image.model_dump() for image in self.images], heartbeat=self.heartbeat)
