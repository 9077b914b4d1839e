"""Running a step's processor inside its own environment: an engine and a host that talk JSON.

:class:`EnvironmentEngine` is an engine like the inline one, except that the processor lives in
worker processes started with the environment's Python (``python -m tidal.pipelines.envworker``).
Each :class:`EnvironmentHost` stands in for a :class:`~tidal.processors.host.ProcessorHost`:
items go to its worker as JSON lines (key, data, meta — the data are an earlier step's rows,
already JSON) and one ``[result, error]`` per item comes back, so nothing pickled by one
environment is ever read by another. The worker hosts the processor through the same
``ProcessorHost`` (setup once, failure isolation, one JSON encoder).

Several workers run side by side (one thread here per worker process, reading partitions and
waiting on its worker); the caller stays the only writer.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from tidal.engines.base import BatchMessage, Engine, Task, Work
from tidal.engines.partition import PartitionReader
from tidal.errors import ProcessorError, ProtocolError
from tidal.pipelines.environment import Environment
from tidal.processors.host import Outcome, ProcessorSpec, encode_json
from tidal.sources.base import Item

_DONE = object()  # a worker thread has stopped
_TASK_DONE = object()  # a worker thread finished one task


class EnvironmentHost:
    """A processor hosted by a worker process in ``environment``; ``process`` as ProcessorHost's."""

    def __init__(self, spec: ProcessorSpec, environment: Environment) -> None:
        self.spec = spec
        self.environment = environment
        self.batch_size = 1
        self._worker: subprocess.Popen[str] | None = None

    def __enter__(self) -> EnvironmentHost:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the worker and have it build and set up the processor; its error if it cannot."""
        if any(not _is_plain(value) for value in self.spec.kwargs.values()):
            raise ProcessorError(f"{self.spec.where}: a processor in its own environment takes plain JSON "
                                 "arguments (numbers, strings, lists, mappings), not nested object specs")
        self._worker = subprocess.Popen(
            [str(self.environment.python), "-m", "tidal.pipelines.envworker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONNOUSERSITE": "1"})
        reply = self._ask({"spec": {"target": self.spec.target, "kwargs": self.spec.kwargs,
                                    "allowed": list(self.spec.allowed), "paths": list(self.spec.paths),
                                    "where": self.spec.where}})
        if "error" in reply:
            self.stop()
            raise ProcessorError(f"{self.spec.target} in the environment {self.environment.folder}: {reply['error']}")
        self.batch_size = int(reply["batch_size"])

    def process(self, items: list[Item]) -> list[Outcome]:
        """One outcome per item, in order (results decoded from the worker's JSON)."""
        if not items:
            return []
        reply = self._ask({"items": [{"key": item.key, "data": item.data, "meta": item.meta} for item in items]})
        outcomes = reply.get("outcomes")
        if not isinstance(outcomes, list) or len(outcomes) != len(items):
            raise ProtocolError(f"the worker of {self.spec.target} answered {str(reply)[:200]} for {len(items)} items")
        return [Outcome(result, error) for result, error in outcomes]

    def stop(self) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        if worker.stdin is not None:
            worker.stdin.close()  # the worker tears the processor down and exits at end of input
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        if worker.stdout is not None:
            worker.stdout.close()

    def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        worker = self._worker
        assert worker is not None and worker.stdin is not None and worker.stdout is not None
        try:
            worker.stdin.write(encode_json(message) + "\n")
            worker.stdin.flush()
            line = worker.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            code = worker.poll()
            raise ProcessorError(f"{self.spec.target}: the worker in {self.environment.folder} died (exit code "
                                 f"{code}); its error is printed above")
        return json.loads(line)  # type: ignore[no-any-return]


class EnvironmentEngine(Engine):
    """Runs a job's partitions with ``workers`` worker processes of ``environment``."""

    def __init__(self, environment: Environment, workers: int = 1) -> None:
        self.environment = environment
        self.workers = max(1, workers)

    def describe(self) -> dict[str, Any]:
        return {"engine": "environment", "workers": self.workers, "environment": str(self.environment.folder)}

    def run(self, work: Work, tasks: Iterable[Task]) -> Iterator[BatchMessage]:
        """Tasks are pulled here, in the caller's thread (a plan reads the ledger as it goes), and
        handed to the worker threads, at most two per worker ahead."""
        todo: queue.Queue[Task | None] = queue.Queue()
        out: queue.Queue[Any] = queue.Queue()
        threads = [threading.Thread(target=self._worker, args=(work, todo, out), daemon=True)
                   for _ in range(self.workers)]
        for thread in threads:
            thread.start()
        feeder = _Feeder(iter(tasks), todo, 2 * self.workers, len(threads))
        feeder.feed()
        finished = 0
        while finished < len(threads):
            message = out.get()
            if message is _DONE:
                finished += 1
            elif message is _TASK_DONE:
                feeder.done()
            elif isinstance(message, BaseException):
                feeder.stop()
                raise message
            else:
                yield message

    def _worker(self, work: Work, todo: queue.Queue[Task | None], out: queue.Queue[Any]) -> None:
        try:
            with EnvironmentHost(work.processor, self.environment) as host:
                reader = PartitionReader(work, host)  # type: ignore[arg-type]
                while (task := todo.get()) is not None:
                    for message in reader.run(task):
                        out.put(message)
                    out.put(_TASK_DONE)
        except BaseException as error:  # handed to the caller, which raises it
            out.put(error)
        finally:
            out.put(_DONE)


class _Feeder:
    """Keeps ``ahead`` tasks queued for the workers; ends each worker with a None once all are handed out."""

    def __init__(self, tasks: Iterator[Task], todo: queue.Queue[Task | None], ahead: int, workers: int) -> None:
        self.tasks, self.todo, self.ahead, self.workers = tasks, todo, ahead, workers
        self.queued = 0
        self.exhausted = False

    def feed(self) -> None:
        while not self.exhausted and self.queued < self.ahead:
            task = next(self.tasks, None)
            if task is None:
                self.stop()
                return
            self.todo.put(task)
            self.queued += 1

    def done(self) -> None:
        self.queued -= 1
        self.feed()

    def stop(self) -> None:
        if not self.exhausted:
            self.exhausted = True
            for _ in range(self.workers):
                self.todo.put(None)


def _is_plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_is_plain(item) for item in value)
    if isinstance(value, dict):
        return all(_is_plain(item) for item in value.values())
    return value is None or isinstance(value, (bool, int, float, str))
