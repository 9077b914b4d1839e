"""What a run's writer sends to its store, and what it does when the store says no.

Four kinds of :class:`Item`: :class:`Create` (the run), :class:`Upload` (an artifact or an
encoded image), :class:`Send` (a :class:`~tidal.tracking.store.Batch`) and :class:`Update`
(columns: git and environment, live stats, the final status). Each is idempotent, so sending one
twice (a retry, a spool replayed after its items already arrived) changes nothing.

:func:`deliver` tells two failures apart:

- the store **cannot be reached** (:func:`is_outage`: a ``StoreError`` such as a refused
  connection or a 503, or a refused token): the error propagates and the caller keeps the item
  (in memory, then in the spool) to send again later;
- the store **refuses the rows** (a 4xx, a database ``DataError``, a library's ``ValueError``):
  the batch is cut in halves until the refused rows are found (within :data:`BISECT_SENDS`
  requests), those are dropped with one warning, the rest is stored. It is never sent again as
  it was: a refused batch cannot block the ones after it.

Example::

    deliver(store, run_id, Send(batch), warn=print)
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from tidal.errors import RunExists, StoreError, TokenRefused
from tidal.tracking.store import Batch, Store

BISECT_SENDS = 100  # requests spent finding a refused batch's bad rows; past it, the rest is dropped
MAX_BATCH_ROWS = 10_000  # rows per request: a part is small and its delivery shows progress
# a refusal reported by the database itself (SQLAlchemy's classes, named to avoid importing it)
DATA_ERRORS = frozenset({"DataError", "IntegrityError", "StatementError", "InvalidRequestError"})

Warn = Callable[[str], None]
_attempts = threading.local()


@contextmanager
def single_attempt() -> Iterator[None]:
    """Within the block, a store that retries (``HTTPStore``: 5 tries over 8 s) tries this
    thread's calls once: the writer keeps its own queue and spool, and must learn of an outage at
    once, not after the store's retries (a script's exit would wait for them)."""
    previous = getattr(_attempts, "single", False)
    _attempts.single = True
    try:
        yield
    finally:
        _attempts.single = previous


def retries_allowed() -> bool:
    """False inside :func:`single_attempt` (in this thread)."""
    return not getattr(_attempts, "single", False)


class Item:
    """One thing to send; ``send`` raises what the store raised."""

    def send(self, store: Store, run_id: str) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        """What this is, for a warning."""
        raise NotImplementedError


@dataclass
class Create(Item):
    run: dict[str, Any]

    def send(self, store: Store, run_id: str) -> None:
        with suppress(RunExists):  # created before: a try whose answer was lost, an earlier sync
            store.create_run(self.run)

    def describe(self) -> str:
        return "the run's record"


@dataclass
class Update(Item):
    fields: dict[str, Any]

    def send(self, store: Store, run_id: str) -> None:
        store.update_run(run_id, self.fields)

    def describe(self) -> str:
        return f"an update of {', '.join(self.fields)}"


@dataclass
class Upload(Item):
    """An artifact: bytes (an encoded image), an open file, or a file path (from the spool).

    ``progress`` is called as the file is read, so a waiting exit can tell a long upload from a
    store that stopped answering.
    """

    name: str
    source: bytes | BinaryIO | Path
    progress: Callable[[], None] = field(default=lambda: None, repr=False)

    def send(self, store: Store, run_id: str) -> None:
        if isinstance(self.source, bytes | Path):
            store.put_artifact(run_id, self.name, self.source)
            return
        self.source.seek(0)  # sent again after an outage: from the start
        store.put_artifact(run_id, self.name, cast(BinaryIO, _Progress(self.source, self.progress)))

    def close(self) -> None:
        if not isinstance(self.source, bytes | Path):
            self.source.close()

    def describe(self) -> str:
        return f"artifact {self.name!r}"


@dataclass
class Send(Item):
    batch: Batch

    def send(self, store: Store, run_id: str) -> None:
        store.log_batch(run_id, self.batch)

    def describe(self) -> str:
        return f"{rows(self.batch)} logged rows"


class _Progress(io.RawIOBase):
    """A file being uploaded, calling ``tick`` on every read."""

    def __init__(self, file: BinaryIO, tick: Callable[[], None]) -> None:
        self.file = file
        self.tick = tick

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def read(self, size: int | None = -1) -> bytes:
        self.tick()
        return self.file.read(-1 if size is None else size)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` says the store cannot be reached (keep the item), not that it refuses it."""
    if isinstance(error, TokenRefused):
        return True  # the records are fine: kept until TIDAL_TOKEN is right (`tidal sync`)
    if not isinstance(error, StoreError):
        return False
    cause = error.__cause__
    return not (cause is not None and type(cause).__name__ in DATA_ERRORS)


def deliver(store: Store, run_id: str, item: Item, warn: Warn) -> None:
    """Send ``item``; a refusal is reported through ``warn`` (and what can be stored is), an outage
    raises."""
    try:
        item.send(store, run_id)
    except Exception as error:
        if is_outage(error):
            raise
        if isinstance(item, Send) and rows(item.batch) > 1:
            _bisect(store, run_id, item.batch, error, warn)
        else:
            warn(f"the store refused {item.describe()} of run {run_id}; it was dropped ({_reason(error)})")


def _bisect(store: Store, run_id: str, batch: Batch, error: Exception, warn: Warn) -> None:
    """Store every row of a refused batch that the store takes; report the others once."""
    refused: list[Batch] = []
    waiting, sends = halves(batch), 0
    while waiting:
        part = waiting.pop(0)
        if sends >= BISECT_SENDS:
            refused.append(part)
            continue
        sends += 1
        part_error = _try_send(store, run_id, part)  # an outage raises: the whole batch stays pending
        if part_error is None:
            continue
        error = part_error
        if rows(part) > 1:
            waiting[:0] = halves(part)
        else:
            refused.append(part)
    dropped = sum(rows(part) for part in refused)
    warn(f"the store refused {dropped} of the {rows(batch)} rows logged by run {run_id} in one flush "
         f"({_first_rows(refused)}); they were dropped, the rest is stored ({_reason(error)})")


def _try_send(store: Store, run_id: str, part: Batch) -> Exception | None:
    """The refusal of ``part``, None when stored; an outage raises."""
    try:
        store.log_batch(run_id, part)
    except Exception as error:
        if is_outage(error):
            raise
        return error
    return None


def _first_rows(parts: list[Batch]) -> str:
    named = [f"metric {key!r} at step {step}" for part in parts for key, step, _, _ in part.metrics]
    named += [f"param {key!r}" for part in parts for key in part.params]
    named += [f"tag {key!r}" for part in parts for key in part.tags]
    named += [f"image {image.get('key')!r}" for part in parts for image in part.images]
    named += [f"{len(part.logs)} console rows" for part in parts if part.logs]
    return ", ".join(named[:3]) + (", ..." if len(named) > 3 else "")


def _reason(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__


# -- splitting a batch -----------------------------------------------------------------------


def rows(batch: Batch) -> int:
    """How many rows ``batch`` holds (each param and tag counts as one)."""
    return len(batch.params) + len(batch.tags) + len(batch.metrics) + len(batch.logs) + len(batch.images)


def split(batch: Batch, pieces: int, separator: str) -> list[Batch]:
    """``batch`` cut into up to ``pieces`` batches of about as many rows each, in logging order.

    Part ``i`` has the id ``<batch_id><separator><i>``: the same batch cut the same way always gets
    the same ids, so a part sent twice is applied once. Cuts of different shapes use different
    separators, so parts cut differently never share an id.
    """
    flat = ([("param", item) for item in batch.params.items()] + [("tag", item) for item in batch.tags.items()]
            + [("metric", row) for row in batch.metrics] + [("log", row) for row in batch.logs]
            + [("image", row) for row in batch.images])
    pieces = max(1, min(pieces, len(flat)))
    if pieces == 1:
        return [batch]
    size = -(-len(flat) // pieces)
    return [_batch_of(f"{batch.batch_id}{separator}{index}", flat[start:start + size],
                      batch.heartbeat if index == 0 else None)
            for index, start in enumerate(range(0, len(flat), size))]


def _batch_of(batch_id: str, flat: list[tuple[str, Any]], heartbeat: float | None) -> Batch:
    part = Batch(batch_id, heartbeat=heartbeat)
    for kind, row in flat:
        if kind == "param":
            part.params[row[0]] = row[1]
        elif kind == "tag":
            part.tags[row[0]] = row[1]
        else:
            getattr(part, kind + "s").append(row)
    return part


def halves(batch: Batch) -> list[Batch]:
    """``batch`` in two (one if it has a single row). Every place that halves a batch (the HTTP
    store's size limit, the search for refused rows) halves it this one way: a half sent by one
    and again by the other has the same id, and is applied once."""
    return split(batch, 2, ".")


def parts(batch: Batch, max_rows: int = MAX_BATCH_ROWS) -> list[Batch]:
    """``batch`` in parts of at most ``max_rows`` rows (the writer sends them one by one)."""
    return split(batch, -(-rows(batch) // max_rows), "-")
