"""The Run API: ``tidal.init`` / ``tidal.start_run`` and what a run logs.

Logging never waits on the disk or the network: each call appends a tuple to an in-process
queue (about a microsecond) and a background writer sends what accumulated every
``FLUSH_SECONDS`` in one batch — so a ``kill -9`` loses at most about that much. Images are
encoded and artifacts copied by the writer too.

Example::

    import tidal

    run = tidal.init(project="detectron2", name="inference", config=cfg)
    run.log_params({"score_threshold": 0.5})
    run.log_metric("loss", 0.3, step=10)
    run.log_image("inferred", frame, step=1)
    run.log_artifact("model_final.pkl")
"""

from __future__ import annotations

import atexit
import io
import numbers
import os
import socket
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from tidal.errors import TidalError, UsageError
from tidal.status import RunStatus
from tidal.tracking.capture import ResourceSampler, Tee, environment, git_state
from tidal.tracking.store import Batch, Store
from tidal.tracking.stores import open_store

FLUSH_SECONDS = 0.5
HEARTBEAT_SECONDS = 10.0
SAMPLE_SECONDS = 5.0
_current: list[Run] = []  # the runs started by init()/start_run() in this process, innermost last


class Run:
    """One tracked execution. Build it with :func:`init` or :func:`start_run`."""

    def __init__(self, store: Store, *, project: str = "default", name: str | None = None,
                 kind: str = "script", config: dict[str, Any] | None = None,
                 tags: dict[str, str] | list[str] | None = None, parent_id: str | None = None,
                 job_id: str | None = None, capture: bool = True) -> None:
        self.store = store
        self.id = uuid.uuid4().hex[:16]
        self.project = project
        self.status = RunStatus.RUNNING
        self._queue: deque[tuple[Any, ...]] = deque()
        store.create_run(self._record(name, kind, config, parent_id, job_id, capture))
        if tags:
            self.set_tags(tags)
        self._writer = _Writer(self, capture=capture)
        self._writer.start()

    def _record(self, name: str | None, kind: str, config: dict[str, Any] | None, parent_id: str | None,
                job_id: str | None, capture: bool) -> dict[str, Any]:
        return {"id": self.id, "project": self.project, "kind": kind, "status": RunStatus.RUNNING.value,
                "name": name or Path(sys.argv[0] or "python").stem or "run", "config": config,
                "parent_id": parent_id, "job_id": job_id, "host": socket.gethostname(),
                "pid": os.getpid(), "started_at": time.time(), "heartbeat_at": time.time(),
                "argv": list(sys.argv) if capture else None}

    def log_params(self, params: dict[str, Any]) -> None:
        """Record parameters (any JSON-serialisable values); a later value replaces an earlier one."""
        self._queue.append(("param", dict(params)))

    def log_param(self, key: str, value: Any) -> None:
        self._queue.append(("param", {key: value}))

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Record one number (NaN and infinities are kept as such)."""
        if not isinstance(value, numbers.Real):
            raise UsageError(f"metric {key!r}: {value!r} is not a number; log numbers, or use log_params")
        self._queue.append(("metric", key, step, float(value), time.time()))

    def log_metrics(self, values: dict[str, float], step: int | None = None) -> None:
        for key, value in values.items():
            self.log_metric(key, value, step)

    def log_image(self, key: str, image: Any, step: int | None = None) -> None:
        """Record an image: a NumPy array (HxW, HxWx3, HxWx4), a PIL image, or a file path."""
        if isinstance(image, (str, Path)):
            if not Path(image).is_file():
                raise UsageError(f"image {key!r}: no file {str(image)!r}")
        elif not (hasattr(image, "__array_interface__") or hasattr(image, "save")):
            raise UsageError(f"image {key!r}: {type(image).__name__} is not an image; "
                             "pass a NumPy array, a PIL image or a file path")
        self._queue.append(("image", key, step, image, time.time()))

    def log_artifact(self, path: str | Path, name: str | None = None) -> None:
        """Copy a file into the run's artifacts (in the background, streamed, with its sha256)."""
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"artifact {str(path)!r} does not exist (or is not a file); check the path")
        self._queue.append(("artifact", path, name or path.name))

    def set_tags(self, tags: dict[str, str] | list[str]) -> None:
        """Tags as ``{"key": "value"}`` or a list of names."""
        mapping = dict(tags) if isinstance(tags, dict) else {str(tag): "" for tag in tags}
        self._queue.append(("tags", mapping))

    def log_text(self, text: str, stream: str = "stdout") -> None:
        self._queue.append(("log", stream, text, time.time()))

    def set_stats(self, stats: dict[str, Any]) -> None:
        """Replace the run's live statistics (a job's progress: counts, rate, ETA), shown while it runs."""
        self._queue.append(("stats", dict(stats)))

    def flush(self) -> None:
        """Write everything logged so far, now (the writer does it every half second anyway)."""
        self._writer.flush_now()

    def finish(self, status: RunStatus | str = RunStatus.COMPLETED, error: str | None = None,
               stats: dict[str, Any] | None = None) -> None:
        """Flush, then record the run's end, status (and final statistics). Safe to call twice."""
        if self.status is not RunStatus.RUNNING:
            return
        self.status = RunStatus(status)
        self._writer.stop()
        end: dict[str, Any] = {"status": self.status.value, "ended_at": time.time(), "error": error}
        self.store.update_run(self.id, end | ({"stats": stats} if stats is not None else {}))
        if self in _current:
            _current.remove(self)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is None:
            self.finish(RunStatus.COMPLETED)
        elif issubclass(kind, KeyboardInterrupt):
            self.finish(RunStatus.INTERRUPTED)
        else:
            self.finish(RunStatus.FAILED, "".join(traceback.format_exception(kind, error, trace)))


class _Writer(threading.Thread):
    """Drains the run's queue every FLUSH_SECONDS into one batch; samples resources."""

    def __init__(self, run: Run, capture: bool) -> None:
        super().__init__(name=f"tidal-run-{run.id}", daemon=True)
        self.owner = run
        self.wake = threading.Event()
        self.stopping = False
        self.lock = threading.Lock()
        self.last_beat = time.time()
        self.capture = capture
        self.captured = threading.Event()  # set once git and the environment are recorded (or skipped)
        self.sampler = ResourceSampler() if capture else None
        self.last_sample = time.monotonic()
        self.pending: list[Batch] = []  # batches the store refused (network down): sent again later
        self.stats: dict[str, Any] | None = None  # the latest live statistics not yet written

    def run(self) -> None:
        if self.capture:
            self._capture()
        self.captured.set()
        while not self.stopping:
            self.wake.wait(FLUSH_SECONDS)
            self.wake.clear()
            self._sample()
            self.flush_now()

    def _capture(self) -> None:
        """Git state and the environment take a tenth of a second: gathered here, off the caller's path."""
        try:
            self.owner.store.update_run(self.owner.id, {"git": git_state(), "environment": environment()})
        except TidalError as error:
            print(f"tidal: could not record run {self.owner.id}'s git state and environment ({error})",
                  file=sys.__stderr__)

    def flush_now(self) -> None:
        self.captured.wait(timeout=30)  # what a flush makes visible comes with git and environment
        with self.lock:
            batch = self._drain()
            if batch is not None:
                self.pending.append(batch)
            while self.pending:
                try:
                    self.owner.store.log_batch(self.owner.id, self.pending[0])
                except TidalError as error:
                    print(f"tidal: could not write run {self.owner.id}'s logs yet ({error}); will retry",
                          file=sys.__stderr__)
                    return
                self.pending.pop(0)
            self._write_stats()

    def _write_stats(self) -> None:
        if self.stats is None:
            return
        try:
            self.owner.store.update_run(self.owner.id, {"stats": self.stats, "heartbeat_at": time.time()})
        except TidalError as error:
            print(f"tidal: could not write run {self.owner.id}'s progress yet ({error}); will retry",
                  file=sys.__stderr__)
            return
        self.stats = None

    def _drain(self) -> Batch | None:
        queue = self.owner._queue
        batch = Batch(batch_id=uuid.uuid4().hex)
        for _ in range(len(queue)):
            self._add(batch, queue.popleft())
        if time.time() - self.last_beat >= HEARTBEAT_SECONDS:
            batch.heartbeat = self.last_beat = time.time()
        return None if batch.is_empty() and batch.heartbeat is None else batch

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
            self.owner.store.put_artifact(self.owner.id, record[2], record[1])
        else:
            raise AssertionError(f"unknown record kind {kind!r} in run {self.owner.id}'s queue")

    def _image(self, key: str, step: int | None, image: Any, stamp: float) -> dict[str, Any]:
        data, width, height = _png(image)
        name = f"images/{_safe(key)}/{'none' if step is None else step}-{uuid.uuid4().hex[:8]}.png"
        self.owner.store.put_artifact(self.owner.id, name, data)
        return {"key": key, "step": step, "artifact": name, "width": width, "height": height,
                "timestamp": stamp}

    def _sample(self) -> None:
        if self.sampler is None or time.monotonic() - self.last_sample < SAMPLE_SECONDS:
            return
        self.last_sample = time.monotonic()
        stamp = time.time()
        for key, value in self.sampler.sample().items():
            self.owner._queue.append(("metric", key, None, value, stamp))

    def stop(self) -> None:
        self.captured.set()  # a writer that never started must not make stop() wait
        self.stopping = True
        self.wake.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=30)
        self.flush_now()


def _png(image: Any) -> tuple[bytes, int, int]:
    from PIL import Image

    picture: Any
    if isinstance(image, (str, Path)):
        picture = Image.open(image)
    elif hasattr(image, "save"):
        picture = image
    else:
        import numpy as np

        array = np.asarray(image)
        if array.dtype != np.uint8:
            array = np.clip(array * (255 if array.max() <= 1.0 else 1), 0, 255).astype(np.uint8)
        picture = Image.fromarray(array)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue(), picture.width, picture.height


def _safe(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in key) or "image"


def init(project: str = "default", name: str | None = None, *, config: dict[str, Any] | None = None,
         tags: dict[str, str] | list[str] | None = None, store: Store | None = None,
         capture_output: bool = True) -> Run:
    """Start a run for this script: captures argv, git, environment, console output, resources;
    an uncaught exception marks it failed with the traceback; it ends when the process exits."""
    parent = _current[-1].id if _current else None
    run = Run(store or open_store(), project=project, name=name, config=config, tags=tags, parent_id=parent)
    _current.append(run)
    if capture_output:
        _tee_console(run)
    _finish_on_exit(run)
    return run


@contextmanager
def start_run(project: str = "default", name: str | None = None, *, config: dict[str, Any] | None = None,
              tags: dict[str, str] | list[str] | None = None, store: Store | None = None) -> Iterator[Run]:
    """``with tidal.start_run(...) as run:`` — a run that ends with the block (nested runs allowed)."""
    parent = _current[-1].id if _current else None
    with Run(store or open_store(), project=project, name=name, config=config, tags=tags,
             parent_id=parent) as run:
        _current.append(run)
        yield run


def current_run() -> Run | None:
    return _current[-1] if _current else None


def _tee_console(run: Run) -> None:
    if not isinstance(sys.stdout, Tee):
        sys.stdout = Tee(sys.stdout, "stdout", run.log_text)  # type: ignore[assignment]
    if not isinstance(sys.stderr, Tee):
        sys.stderr = Tee(sys.stderr, "stderr", run.log_text)  # type: ignore[assignment]


def _finish_on_exit(run: Run) -> None:
    previous = sys.excepthook

    def hook(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
        status = RunStatus.INTERRUPTED if issubclass(kind, KeyboardInterrupt) else RunStatus.FAILED
        text = "".join(traceback.format_exception(kind, error, trace))
        previous(kind, error, trace)
        run.log_text(text, "stderr")
        run.finish(status, text)

    sys.excepthook = hook
    atexit.register(run.finish)


