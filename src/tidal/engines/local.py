"""The local engine: a pool of worker processes on this machine (the embedded default).

Each worker sets the processor up once, then reads the partitions it is given: frames are
decoded inside the worker and only small JSON rows travel back. The main process assigns at
most ``inflight_per_worker`` partitions to each worker, so memory stays bounded whatever the
size of the job, and it is the only writer. A worker that dies (a segfault in a codec or a
model, the OOM killer) fails the partition it was running and is replaced; its other queued
partitions go to the replacement.

Workers cost little beyond the work itself: :meth:`LocalEngine.start` lets them start (spawn,
imports, ``setup()``) while the main process lists the partitions, and a worker told to stop
runs ``teardown()``, its threads and ``atexit`` handlers, then exits without the interpreter's
slow teardown of every module (about 0.5 s with numba loaded, which the job used to wait for).
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from typing import Any, Literal

from tidal.children import die_with_parent, exit_reason
from tidal.engines.base import BatchMessage, Engine, Task, Work
from tidal.engines.partition import PartitionReader
from tidal.errors import ProcessorError
from tidal.processors.host import ProcessorHost
from tidal.settings import INFLIGHT_PER_WORKER
from tidal.status import PartitionStatus

POLL_SECONDS = 0.5
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class LocalEngine(Engine):
    """Runs partitions in ``workers`` processes (default: one per CPU core)."""

    def __init__(
        self,
        workers: int | None = None,
        start_method: Literal["spawn", "forkserver", "fork"] = "spawn",
        inflight_per_worker: int = INFLIGHT_PER_WORKER,
    ) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.start_method = start_method
        self.inflight = max(1, inflight_per_worker)
        self._started: tuple[Work, _Pool] | None = None

    def start(self, work: Work) -> None:
        """Start the workers now: they import and set the processor up while the caller plans."""
        self.close()
        self._started = (work, self._pool(work))

    def run(self, work: Work, tasks: Iterable[Task]) -> Iterator[BatchMessage]:
        started, self._started = self._started, None
        if started is not None and started[0] is not work:
            started[1].close(graceful=False)
            started = None
        pool = started[1] if started is not None else self._pool(work)
        finished = False
        try:
            yield from pool.drive(iter(tasks), self.inflight)
            finished = True
        finally:
            pool.close(graceful=finished)

    def close(self) -> None:
        """Stop workers that no run took: the job did not run, so no teardown is waited for."""
        started, self._started = self._started, None
        if started is not None:
            started[1].close(graceful=False)

    def _pool(self, work: Work) -> _Pool:
        return _Pool(work, self.workers, multiprocessing.get_context(self.start_method))


@dataclass
class _Slot:
    """One worker: its process, its task queue, the pipe it answers on, the tasks it holds."""

    index: int
    process: Any
    tasks: Any
    results: Connection
    pending: deque[Task] = field(default_factory=deque)


class _Pool:
    def __init__(self, work: Work, size: int, context: BaseContext) -> None:
        self.work = work
        self.context = context
        self.threads_per_worker = str(max(1, (os.cpu_count() or 1) // size))
        self.slots = [self._start(index) for index in range(size)]

    def _start(self, index: int) -> _Slot:
        # Results go through a plain pipe, written synchronously by the worker: a worker that
        # dies cannot take already-sent results with it (a Queue's feeder thread could).
        tasks = self.context.Queue()
        receiver, sender = self.context.Pipe(duplex=False)
        process = self.context.Process(  # type: ignore[attr-defined]
            target=_worker_main, args=(self.work, tasks, sender, index),
            name=f"tidal-worker-{index}", daemon=True,
        )
        with _thread_limits(self.threads_per_worker):
            process.start()
        sender.close()
        return _Slot(index, process, tasks, receiver)

    def drive(self, tasks: Iterator[Task], inflight: int) -> Iterator[BatchMessage]:
        """Feed tasks to the least busy workers and yield their messages until all are done."""
        exhausted = False
        while True:
            exhausted = exhausted or self._feed(tasks, inflight)
            if exhausted and not any(slot.pending for slot in self.slots):
                return
            readers = {slot.results: slot for slot in self.slots}
            sentinels = {slot.process.sentinel: slot for slot in self.slots}
            for ready in wait([*readers, *sentinels], timeout=POLL_SECONDS):
                if ready in readers:
                    yield from self._receive(readers[ready])  # type: ignore[index]
                elif not sentinels[ready].process.is_alive():  # type: ignore[index]
                    yield from self._replace(sentinels[ready])  # type: ignore[index]

    def _feed(self, tasks: Iterator[Task], inflight: int) -> bool:
        """Top up every worker to ``inflight`` tasks; True once ``tasks`` is exhausted."""
        while True:
            slot = min(self.slots, key=lambda s: len(s.pending))
            if len(slot.pending) >= inflight:
                return False
            task = next(tasks, None)
            if task is None:
                return True
            slot.pending.append(task)
            slot.tasks.put(task)

    def _receive(self, slot: _Slot) -> Iterator[BatchMessage]:
        """Handle every message waiting on ``slot``'s pipe."""
        while self.slots[slot.index] is slot and slot.results.poll():
            try:
                kind, payload = slot.results.recv()
            except (EOFError, OSError):  # the worker died; its sentinel handles the rest
                return
            if kind == "setup_failed":
                raise ProcessorError(payload)
            if payload.end is not None and slot.pending and slot.pending[0].partition.id == payload.partition_id:
                slot.pending.popleft()
            yield payload

    def _replace(self, slot: _Slot) -> Iterator[BatchMessage]:
        """A worker died: keep what it sent, fail the partition it was in, restart it."""
        yield from self._receive(slot)
        if slot.pending:
            failed = slot.pending.popleft()
            reason = exit_reason(slot.process.exitcode)
            yield BatchMessage(failed.partition.id, [], (PartitionStatus.FAILED.value, (
                f"worker process died ({reason}) while running partition {failed.partition.id};"
                " run again with --retry-failed to retry it")))
        slot.results.close()
        replacement = self._start(slot.index)
        for task in slot.pending:
            replacement.pending.append(task)
            replacement.tasks.put(task)
        self.slots[slot.index] = replacement

    def close(self, graceful: bool) -> None:
        """Stop the workers: let them finish their teardown when the job ended normally."""
        for slot in self.slots:
            if graceful and slot.process.is_alive():
                slot.tasks.put(None)
        deadline = time.monotonic() + (10.0 if graceful else 0.0)
        for slot in self.slots:
            slot.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join(timeout=5.0)
            slot.tasks.cancel_join_thread()
            slot.results.close()


@contextlib.contextmanager
def _thread_limits(count: str) -> Iterator[None]:
    """Start workers with BLAS/OpenMP threads split between them (unless the user set them)."""
    added = [name for name in THREAD_VARIABLES if name not in os.environ]
    for name in added:
        os.environ[name] = count
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _worker_main(work: Work, tasks: Any, results: Connection, index: int) -> None:
    """A worker's life: set up once, run the tasks it is given, tear down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    die_with_parent()
    host = ProcessorHost(work.processor)
    try:
        host.start()
    except Exception as error:
        results.send(("setup_failed", str(error)))
        return
    reader = PartitionReader(work, host)
    try:
        while (task := _next_task(tasks)) is not None:
            for message in reader.run(task):
                results.send(("batch", message))
    finally:
        host.stop()
    _exit_quickly()


def _exit_quickly() -> None:
    """End a worker as the interpreter would, minus its teardown of every module and object:
    other threads are joined, ``atexit`` handlers run, standard streams flushed (Python never
    promised ``__del__`` at exit; the fork start method's children skip even the handlers)."""
    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not current and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # multiprocessing's own finalizers are among them
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


def _next_task(tasks: Any) -> Task | None:
    """The next task, or None when told to stop or when the main process is gone."""
    parent = multiprocessing.parent_process()
    while True:
        try:
            return tasks.get(timeout=1.0)  # type: ignore[no-any-return]
        except queue.Empty:
            if parent is not None and not parent.is_alive():
                return None
