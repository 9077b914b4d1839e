"""A run's background writer: what the caller queued, sent to the store (or spooled) off its path.

Every ``FLUSH_SECONDS`` the writer drains the run's queue into items (:mod:`tidal.tracking.delivery`):
uploads (encoded images, artifacts), the batch of metrics, params, tags and console rows (in parts
of at most ``MAX_BATCH_ROWS``), updates (live stats; at the end, the final status). It sends them
in order. A refusal drops only the refused rows, with one warning. An outage sends the items, and
everything after them, to the run's :class:`~tidal.tracking.spool.Spool`; the spool is tried again
every few seconds and sent, oldest first, when the store answers.

The thread cannot die of what it writes: each record and item is handled on its own, an error
is reported and the rest goes on. Should the thread die all the same, ``on_death`` tells the run,
whose next call says so.

At exit, :meth:`Writer.stop` waits while the writer makes progress (a 2 GiB upload may take
minutes) and gives up after ``EXIT_STALL_SECONDS`` without any: the rest goes to the spool from
the calling thread, so a script never hangs on an unreachable store.
"""

from __future__ import annotations

import io
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from tidal import settings
from tidal.tracking.capture import ResourceSampler, environment, git_state
from tidal.tracking.delivery import Item, Send, Update, Upload, deliver, parts, single_attempt
from tidal.tracking.records import ArtifactFile
from tidal.tracking.spool import Spool
from tidal.tracking.store import Batch, Store

HEARTBEAT_SECONDS = 10.0
SAMPLE_SECONDS = 5.0
MAX_RECONNECT_SECONDS = 30.0


def warn(message: str) -> None:
    """A warning on the real stderr (which a console capture still records)."""
    stream = sys.__stderr__
    if stream is not None:
        with suppress(OSError, ValueError):  # stderr closed: nowhere left to say it
            print(f"tidal: {message}", file=stream, flush=True)


class Writer(threading.Thread):
    """Drains ``queue`` every FLUSH_SECONDS into items sent to ``store`` for run ``run_id``."""

    def __init__(self, run_id: str, store: Store, queue: deque[tuple[Any, ...]], spool: Spool, *,
                 capture: bool, on_death: Callable[[str], None]) -> None:
        super().__init__(name=f"tidal-run-{run_id}", daemon=True)
        self.run_id, self.store, self.queue, self.spool = run_id, store, queue, spool
        self.on_death = on_death
        self.wake = threading.Event()
        self.lock = threading.Lock()  # one flush at a time: this thread's, or the caller's flush()
        self.stopping = False
        self.abandoned = False  # the exit stopped waiting: this thread must send nothing more
        self.outbox: list[Item] = []  # collected, not yet sent or spooled, in order
        self.stats: dict[str, Any] | None = None  # the latest live statistics not yet collected
        self.capture = capture
        self.captured = threading.Event()  # set once git and the environment are queued (or skipped)
        self.sampler = ResourceSampler() if capture else None
        self.last_sample = time.monotonic()
        self.last_beat = time.time()
        self.progress = time.monotonic()  # when an item was last sent, spooled, or read from
        self.offline: str | None = None  # why the store cannot be reached; None while it can
        self.reconnect_at = 0.0
        self.reconnect_wait = settings.RECONNECT_SECONDS

    # -- the thread ------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            if self.capture:
                self._capture()
            self.captured.set()
            while not self.stopping:
                self.wake.wait(settings.FLUSH_SECONDS)
                self.wake.clear()
                self._sample()
                self.flush_now()
            self.flush_now()
        except BaseException as error:  # a bug of ours; what is queued stays queued for the exit
            text = "".join(traceback.format_exception_only(type(error), error)).strip()
            warn(f"the writer of run {self.run_id} stopped ({text}); what is logged from now on is not stored")
            self.on_death(text)
        finally:
            self.captured.set()

    def _capture(self) -> None:
        """Git state and the environment take a tenth of a second: gathered here, off the caller's path."""
        try:
            fields = {"git": git_state(), "environment": environment()}
        except Exception as error:  # a strange repository or package metadata: the run goes on
            warn(f"could not record run {self.run_id}'s git state and environment ({error})")
            return
        with self.lock:
            self.outbox.append(Update(fields))

    def _sample(self) -> None:
        if self.sampler is None or time.monotonic() - self.last_sample < SAMPLE_SECONDS:
            return
        self.last_sample = time.monotonic()
        stamp = time.time()
        for key, value in self.sampler.sample().items():
            self.queue.append(("metric", key, None, value, stamp))

    # -- a flush ---------------------------------------------------------------------------------

    def flush_now(self) -> None:
        """Send (or spool) everything queued so far. Never raises."""
        self.captured.wait(timeout=30)  # what a flush makes visible comes with git and environment
        with self.lock:
            if self.abandoned:
                return
            self._collect()
            with single_attempt():
                self._send_outbox()

    def _collect(self) -> None:
        """The queue's records → items in the outbox (images encoded, artifacts ready to upload)."""
        batch = Batch(batch_id=uuid.uuid4().hex)
        for _ in range(len(self.queue)):
            record = self.queue.popleft()
            try:
                self._add(batch, record)
            except Exception as error:
                warn(f"could not record the {record[0]} {_label(record)} of run {self.run_id}; it was "
                     f"dropped ({type(error).__name__}: {error})")
        if time.time() - self.last_beat >= HEARTBEAT_SECONDS:
            batch.heartbeat = self.last_beat = time.time()
        if not batch.is_empty() or batch.heartbeat is not None:
            self.outbox.extend(Send(part) for part in parts(batch))
        if self.stats is not None:
            self.outbox.append(Update({"stats": self.stats, "heartbeat_at": time.time()}))
            self.stats = None

    def _add(self, batch: Batch, record: tuple[Any, ...]) -> None:
        kind = record[0]
        if kind == "metric":
            batch.metrics.append(record[1:])  # type: ignore[arg-type]
        elif kind == "log":
            batch.logs.append(record[1:])  # type: ignore[arg-type]
        elif kind == "param":
            batch.params.update(record[1])
        elif kind == "tags":
            batch.tags.update(record[1])
        elif kind == "stats":
            self.stats = record[1]
        elif kind == "image":
            batch.images.append(self._image(*record[1:]))
        elif kind == "artifact":
            artifact: ArtifactFile = record[1]
            self.outbox.append(Upload(artifact.name, artifact.file, self._tick))
        elif kind == "update":
            self.outbox.append(Update(record[1]))
        else:
            raise AssertionError(f"unknown record kind {kind!r} in run {self.run_id}'s queue")

    def _image(self, key: str, step: int | None, picture: Any, stamp: float) -> dict[str, Any]:
        data, width, height = png(picture)
        name = f"images/{_safe(key)}/{'none' if step is None else step}-{uuid.uuid4().hex[:8]}.png"
        self.outbox.append(Upload(name, data))
        return {"key": key, "step": step, "artifact": name, "width": width, "height": height,
                "timestamp": stamp}

    def _send_outbox(self) -> None:
        if self.offline is not None:
            self._spool_outbox()
            self._reconnect()
            return
        while self.outbox and not self.abandoned:
            try:
                deliver(self.store, self.run_id, self.outbox[0], warn)
            except Exception as error:  # deliver raises only when the store cannot be reached
                self._go_offline(error)
                self._spool_outbox()
                return
            _close(self.outbox.pop(0))
            self._tick()

    def _tick(self) -> None:
        self.progress = time.monotonic()

    # -- offline ---------------------------------------------------------------------------------

    def _go_offline(self, error: BaseException) -> None:
        self.offline = f"{type(error).__name__}: {error}"
        self.reconnect_at = time.monotonic() + self.reconnect_wait
        warn(f"cannot reach {self.store.describe()} ({self.offline}); run {self.run_id}'s records are "
             f"kept in {self.spool.folder} and sent when it answers again (or by `tidal sync`)")

    def _spool_outbox(self) -> None:
        while self.outbox and not self.abandoned:
            try:
                self.spool.put(self.outbox[0])
            except OSError as error:  # a full disk: kept in memory, tried again at the next flush
                warn(f"cannot write run {self.run_id}'s spool {self.spool.folder} ({error}); "
                     "its records are kept in memory for now")
                return
            _close(self.outbox.pop(0))
            self._tick()

    def _reconnect(self) -> None:
        if time.monotonic() < self.reconnect_at and not self.stopping:
            return
        try:
            self.spool.deliver(self.store, warn)
        except Exception:
            self.reconnect_wait = min(self.reconnect_wait * 2, MAX_RECONNECT_SECONDS)
            self.reconnect_at = time.monotonic() + self.reconnect_wait
            return
        warn(f"{self.store.describe()} answers again; run {self.run_id}'s spooled records were sent")
        self.offline = None
        self.reconnect_wait = settings.RECONNECT_SECONDS

    # -- the end ---------------------------------------------------------------------------------

    def stop(self) -> bool:
        """Write everything queued; True when all reached the store, False when some is in the
        spool (a warning names it)."""
        self.captured.set()  # a writer that never started must not make a flush wait
        self._tick()
        self.stopping = True
        self.wake.set()
        if threading.current_thread() is not self:
            self._wait_while_progressing()
        if self.is_alive():
            self._take_over()
        elif not self.abandoned:
            self.flush_now()  # a thread that never ran, or died: the caller writes what is left
        if self.spool.is_empty():
            return True
        warn(f"run {self.run_id} ended without reaching {self.store.describe()}; its records are kept in "
             f"{self.spool.folder}: `tidal sync` sends them")
        return False

    def _wait_while_progressing(self) -> None:
        while self.is_alive() and time.monotonic() - self.progress < settings.EXIT_STALL_SECONDS:
            self.join(0.02)

    def _take_over(self) -> None:
        """The writer is stuck in a call to a store that stopped answering: spool from here."""
        self.abandoned = True
        self._collect()
        for item in list(self.outbox):  # the item in flight too: it may not have arrived
            try:
                self.spool.put(item)
            except OSError as error:
                warn(f"cannot write run {self.run_id}'s spool {self.spool.folder} ({error}); "
                     f"{item.describe()} is lost")
        self.offline = self.offline or f"no answer in {settings.EXIT_STALL_SECONDS} s"


def _close(item: Item) -> None:
    if isinstance(item, Upload):
        item.close()


def _label(record: tuple[Any, ...]) -> str:
    if record[0] == "artifact":
        return repr(record[1].name)
    return repr(record[1]) if isinstance(record[1], str) else ""


def png(picture: Any) -> tuple[bytes, int, int]:
    """PNG bytes, width and height of an image snapshot (see ``records.image_snapshot``)."""
    from PIL import Image

    if not hasattr(picture, "save"):
        picture = Image.fromarray(picture)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue(), picture.width, picture.height


def _safe(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in key) or "image"

