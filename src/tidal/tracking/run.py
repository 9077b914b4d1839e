"""The Run API: ``tidal.init`` / ``tidal.start_run`` and what a run logs.

Logging never waits on the disk or the network: each call checks its input (a bad key, step,
value, image or artifact is a ``UsageError`` right there: ``tidal.tracking.records``) and appends
a tuple to an in-process queue (about a microsecond); a background writer
(``tidal.tracking.writer``) sends what accumulated every ``FLUSH_SECONDS`` — so a ``kill -9``
loses at most about that much. When the store cannot be reached, at ``init`` or later, records
go to an offline spool on disk (``tidal.tracking.spool``) and are sent when it answers again, or
by ``tidal sync``: tracking never crashes or hangs the script.

A run started by ``init`` ends when the script does: its last records are written before the
interpreter stops its thread pools (an S3 upload needs one), an uncaught exception marks it
failed, SIGTERM (Slurm, Kubernetes, ``docker stop``) interrupted. ``init(resume=RUN_ID)``
continues a run after preemption.

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
import os
import signal
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
from types import FrameType, TracebackType
from typing import Any

from tidal import settings
from tidal.errors import RunNotFound, TidalError, TokenRefused, UsageError
from tidal.status import RunStatus
from tidal.tracking import records
from tidal.tracking.artifacts import validate_run_id
from tidal.tracking.capture import ConsoleCapture
from tidal.tracking.delivery import Create, Item, Update, is_outage, single_attempt
from tidal.tracking.spool import Spool
from tidal.tracking.store import Store
from tidal.tracking.stores import open_store
from tidal.tracking.writer import Writer

FLUSH_SECONDS = settings.FLUSH_SECONDS
_current: list[Run] = []  # the runs started by init()/start_run() in this process, innermost last
_terminated_by: list[int] = []  # the signal (SIGTERM) that is ending this process, once caught


class Run:
    """One tracked execution. Build it with :func:`init` or :func:`start_run`.

    ``resume``: the id of an earlier run to continue (same id, status back to running; its
    highest step so far is ``last_step``).
    """

    def __init__(self, store: Store, *, project: str = "default", name: str | None = None,
                 kind: str = "script", config: dict[str, Any] | None = None,
                 tags: dict[str, str] | list[str] | None = None, parent_id: str | None = None,
                 job_id: str | None = None, capture: bool = True, resume: str | None = None) -> None:
        self.store = store
        self.id = validate_run_id(resume) if resume else uuid.uuid4().hex[:16]
        self.project = project
        self.status = RunStatus.RUNNING
        self.last_step: int | None = None
        self._queue: deque[tuple[Any, ...]] = deque()
        self._broken: str | None = None  # why the writer stopped, if it ever does
        self._metric_keys: set[str] = set()  # keys already checked
        self._console: ConsoleCapture | None = None
        first = self._resume(capture) if resume else Create(self._record(name, kind, config, parent_id, job_id,
                                                                          capture))
        self.spool = Spool.for_run(self.id, store)
        self._writer = Writer(self.id, store, self._queue, self.spool, capture=capture, on_death=self._died)
        self._send_first(first)
        if tags:
            self.set_tags(tags)
        self._writer.start()

    def _record(self, name: str | None, kind: str, config: dict[str, Any] | None, parent_id: str | None,
                job_id: str | None, capture: bool) -> dict[str, Any]:
        return {"id": self.id, "project": self.project, "kind": kind, "status": RunStatus.RUNNING.value,
                "name": name or Path(sys.argv[0] or "python").stem or "run", "config": config,
                "parent_id": parent_id, "job_id": job_id, "host": socket.gethostname(),
                "pid": os.getpid(), "started_at": time.time(), "heartbeat_at": time.time(),
                "argv": list(sys.argv) if capture else None}

    def _resume(self, capture: bool) -> Update:
        """The update that sets an earlier run running again; its project and last step are read
        when the store answers."""
        try:
            with single_attempt():
                found = self.store.get_run(self.id)
                points = self.store.metrics(self.id)
        except RunNotFound:
            raise RunNotFound(f"no run {self.id!r} to resume in {self.store.describe()}; `tidal runs ls` "
                              "lists the runs (resume takes the full id)") from None
        except TidalError as error:
            if not is_outage(error) or isinstance(error, TokenRefused):
                raise
            found, points = {}, {}
        self.project = str(found.get("project") or self.project)
        steps = [step for key, series in points.items() if not key.startswith("system/")
                 for step, _, _ in series if step is not None]
        self.last_step = max(steps, default=None)
        return Update({"status": RunStatus.RUNNING.value, "ended_at": None, "error": None,
                       "heartbeat_at": time.time(), "host": socket.gethostname(), "pid": os.getpid()}
                      | ({"argv": list(sys.argv)} if capture else {}))

    def _send_first(self, item: Item) -> None:
        """Create (or resume) the run now, trying the store once: if it cannot be reached, the run
        starts offline and the item is the spool's first. A refused token is an error here."""
        try:
            with single_attempt():
                item.send(self.store, self.id)
        except TidalError as error:
            if not is_outage(error) or isinstance(error, TokenRefused):
                raise
            self._writer.outbox.append(item)
            self._writer._go_offline(error)

    def _died(self, reason: str) -> None:
        self._broken = reason

    def _check_writer(self) -> None:
        if self._broken is not None:
            raise TidalError(f"run {self.id} no longer records anything: its writer stopped ({self._broken}); "
                             "please report this bug, and start a new run to go on tracking")

    # -- what a run logs -------------------------------------------------------------------------

    def log_params(self, params: dict[str, Any]) -> None:
        """Record parameters (any JSON-serialisable values); a later value replaces an earlier one."""
        self._check_writer()
        self._queue.append(("param", records.json_snapshot(dict(params), "param")))

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Record one number (NaN and infinities are kept as such) at an optional 64-bit step."""
        if self._broken is not None:
            self._check_writer()
        if key not in self._metric_keys:
            self._metric_keys.add(records.check_key(key, "metric"))
        if type(value) is not float:
            value = records.metric_value(key, value)
        if step is not None:
            step = records.check_step(key, step)
        self._queue.append(("metric", key, step, value, time.time()))

    def log_metrics(self, values: dict[str, float], step: int | None = None) -> None:
        for key, value in values.items():
            self.log_metric(key, value, step)

    def log_image(self, key: str, image: Any, step: int | None = None) -> None:
        """Record an image: a NumPy array (HxW, HxWxC or CxHxW, C in 1, 3, 4; uint8, or floats in
        0-1), a PIL image, or a file path. A copy is taken now: the caller may reuse its buffer."""
        self._check_writer()
        records.check_key(key, "image")
        step = records.check_step(key, step)
        self._queue.append(("image", key, step, records.image_snapshot(key, image), time.time()))

    def log_artifact(self, path: str | Path, name: str | None = None) -> None:
        """Store a file as one of the run's artifacts (in the background, streamed, with its sha256).

        The file is opened now: deleting it afterwards (a ``NamedTemporaryFile``) loses nothing.
        """
        self._check_writer()
        self._queue.append(("artifact", records.artifact_file(path, name)))

    def set_tags(self, tags: dict[str, str] | list[str]) -> None:
        """Tags as ``{"key": "value"}`` or a list of names."""
        self._check_writer()
        self._queue.append(("tags", records.tag_values(tags)))

    def log_text(self, text: str, stream: str = "stdout") -> None:
        stamp = time.time()
        for chunk in records.log_chunks(text, stream):
            self._queue.append(("log", stream, chunk, stamp))

    def set_stats(self, stats: dict[str, Any]) -> None:
        """Replace the run's live statistics (a job's progress: counts, rate, ETA), shown while it runs."""
        self._queue.append(("stats", records.json_snapshot(dict(stats), "stat")))

    def flush(self) -> None:
        """Write everything logged so far, now (the writer does it every half second anyway)."""
        self._writer.flush_now()

    def finish(self, status: RunStatus | str = RunStatus.COMPLETED, error: str | None = None,
               stats: dict[str, Any] | None = None) -> None:
        """Flush, then record the run's end, status (and final statistics). Safe to call twice.

        When the store cannot be reached this returns within ``EXIT_STALL_SECONDS`` of the last
        progress, with what is left in the spool (a warning names it).
        """
        if self.status is not RunStatus.RUNNING:
            return
        self.status = RunStatus(status)
        if self._console is not None:
            self._console.stop()
        end: dict[str, Any] = {"status": self.status.value, "ended_at": time.time(), "error": error}
        self._queue.append(("update", end | ({"stats": records.json_snapshot(stats, "stat")} if stats else {})))
        self._writer.stop()
        if self in _current:
            _current.remove(self)

    attached_remotely = False  # started by init() inside a job that `tidal submit` sent to Ray

    def execute_remotely(self, address: str | None = None, *, gpus: float = 0.0, cpus: float = 1.0,
                         image: str | None = None, requirements: str | Path | None = None, priority: int = 0,
                         exit: bool = True) -> None:
        """Send this script to a Ray cluster as this same run, then end the local process (``exit``).

        On the cluster the script runs again from the top: there ``init()`` attaches to this run and
        this call does nothing, so the code after it is what runs remotely. Options as ``tidal submit``'s.

        Example::

            run = tidal.init(project="detectron2", name="train")
            run.execute_remotely(address="http://head:8265", gpus=1, image="detectron2:v3")
        """
        if self.attached_remotely:
            return
        from tidal.remote.submit import execute_in_cluster

        self.flush()
        submission = execute_in_cluster(self.id, self.store, address=address, gpus=gpus, cpus=cpus, image=image,
                                        requirements=Path(requirements) if requirements else None,
                                        priority=priority, project=self.project)
        self.status = RunStatus.QUEUED  # ends the local process without ending the run
        if self._console is not None:
            self._console.stop()
        self._writer.stop()
        if self in _current:
            _current.remove(self)
        print(f"tidal: run {self.id} sent to Ray at {submission.address} ({submission.status}); "
              f"follow it: tidal logs {self.id} --follow", file=sys.stderr)
        if exit:
            sys.exit(0)

    def capture_console(self, mode: str) -> None:
        """Record what the process writes to its console: ``fd`` (file descriptors 1 and 2, so
        subprocesses, C code and ``logging`` too), ``python`` (``sys.stdout``/``sys.stderr``) or ``off``."""
        if mode not in settings.CONSOLE_CAPTURE_MODES:
            raise UsageError(f"capture mode {mode!r}: use one of {', '.join(settings.CONSOLE_CAPTURE_MODES)}")
        if mode != "off" and self._console is None:
            self._console = ConsoleCapture(self.log_text, file_descriptors=mode == "fd")
            self._console.start()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.finish(*_ending(kind, error, trace))


def _ending(kind: type[BaseException] | None, error: BaseException | None,
            trace: TracebackType | None) -> tuple[RunStatus, str | None]:
    """The status (and error text) of a run ended by ``error`` (None: a normal end)."""
    if _terminated_by:
        return RunStatus.INTERRUPTED, f"stopped by signal {signal.Signals(_terminated_by[0]).name}"
    if kind is None or (issubclass(kind, SystemExit) and getattr(error, "code", None) in (None, 0)):
        return RunStatus.COMPLETED, None
    if issubclass(kind, KeyboardInterrupt):
        return RunStatus.INTERRUPTED, None
    return RunStatus.FAILED, "".join(traceback.format_exception(kind, error, trace))


def init(project: str = "default", name: str | None = None, *, config: dict[str, Any] | None = None,
         tags: dict[str, str] | list[str] | None = None, store: Store | None = None,
         capture_output: bool | str = True, resume: str | None = None) -> Run:
    """Start a run for this script: captures argv, git, environment, console output, resources;
    an uncaught exception marks it failed with the traceback; it ends when the process exits.

    ``capture_output``: True (``$TIDAL_CAPTURE``, by default ``fd``: everything the process and
    its subprocesses write to stdout and stderr), ``"python"``, or False. ``resume``: the id of a
    run to continue (after a preemption).
    """
    console = settings.console_capture() if capture_output is True else str(capture_output or "off")
    parent = _current[-1].id if _current else None
    # in a job `tidal submit` started: attach to the submitted run (once: not in child processes)
    attached = None if resume else os.environ.pop("TIDAL_RUN_ID", None)
    run = Run(store or open_store(), project=project, name=name, config=config, tags=tags, parent_id=parent,
              resume=resume or attached)
    run.attached_remotely = attached is not None
    _current.append(run)
    _finish_on_exit(run)
    run.capture_console(console)
    return run


@contextmanager
def start_run(project: str = "default", name: str | None = None, *, config: dict[str, Any] | None = None,
              tags: dict[str, str] | list[str] | None = None, store: Store | None = None,
              resume: str | None = None) -> Iterator[Run]:
    """``with tidal.start_run(...) as run:`` — a run that ends with the block (nested runs allowed)."""
    parent = _current[-1].id if _current else None
    with Run(store or open_store(), project=project, name=name, config=config, tags=tags,
             parent_id=parent, resume=resume) as run:
        _current.append(run)
        _finish_before_shutdown(run)
        yield run


def current_run() -> Run | None:
    return _current[-1] if _current else None


def _finish_on_exit(run: Run) -> None:
    previous = sys.excepthook

    def hook(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
        status, text = _ending(kind, error, trace)
        previous(kind, error, trace)
        run.log_text("".join(traceback.format_exception(kind, error, trace)), "stderr")
        run.finish(status, text)

    sys.excepthook = hook
    _finish_before_shutdown(run)


def _finish_before_shutdown(run: Run) -> None:
    """Finish ``run`` when the interpreter exits, before it stops its thread pools: an S3 upload
    (s3fs runs on one) scheduled later fails with "cannot schedule new futures after interpreter
    shutdown". Hooks of ``threading._register_atexit`` run newest first, so concurrent.futures'
    own is registered (imported) before ours."""
    _stop_on_sigterm()
    finish = lambda: run.finish(*_ending(None, None, None))  # noqa: E731
    import concurrent.futures.thread  # noqa: F401  registers its shutdown hook first

    register = getattr(threading, "_register_atexit", None)
    try:
        if register is None:
            raise RuntimeError("no threading._register_atexit")
        register(finish)
    except RuntimeError:  # already shutting down, or another Python: the plain atexit hook
        atexit.register(finish)


def _stop_on_sigterm() -> None:
    """SIGTERM ends the process as SystemExit (143), so runs finish 'interrupted' after a flush.
    Only where nothing else handles SIGTERM, and only from the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return
    signal.signal(signal.SIGTERM, _terminate)


def _terminate(signum: int, frame: FrameType | None) -> None:
    if not _current:  # no run left to finish: die the way SIGTERM kills
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _terminated_by.append(signum)
    raise SystemExit(128 + signum)
