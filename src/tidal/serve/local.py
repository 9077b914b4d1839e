"""The local backend: model workers are processes on this machine, started on demand.

:class:`LocalBackend` puts the :class:`~tidal.serve.scaling.Scaler` over
:class:`WorkerProcess` handles: each worker is a fresh interpreter running
:func:`tidal.serve.worker.main`, connected to the front by a Unix socket pair that carries the
typed messages of :mod:`tidal.serve.protocol`. The front reads them with the loader that
refuses every class. A message the front does not expect (a protocol error) means the worker
cannot be trusted: it is killed, and what it held gets a 502.

:func:`describe_processor` runs the same worker briefly, to learn the processor's
:class:`~tidal.serve.hooks.ProcessorInfo` without importing it in the front.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

from tidal.children import exit_reason
from tidal.errors import ConfigError, ProtocolError
from tidal.serve.backend import Backend, Reply
from tidal.serve.config import ServiceConfig
from tidal.serve.hooks import ProcessorInfo
from tidal.serve.metrics import ServeMetrics
from tidal.serve.payload import Payload
from tidal.serve.protocol import (
    HEADER,
    Accepted,
    BatchDone,
    Busy,
    Cancelled,
    Channel,
    Describe,
    Described,
    DescribeFailed,
    Failed,
    Message,
    Ready,
    Result,
    Setup,
    SetupFailed,
    Status,
    WorkerSettings,
    frame,
    read_builtins,
    unexpected,
)
from tidal.serve.scaling import STOP_GRACE_SECONDS, Scaler, Worker
from tidal.serve.tracker import ServiceTracker

LOG = logging.getLogger("tidal.serve")
DESCRIBE_TIMEOUT_SECONDS = 300.0  # importing a processor's module may load torch and friends


def worker_settings(config: ServiceConfig, batch_size: int) -> WorkerSettings:
    """What a worker needs from the service config (``batch_size``: the processor's, used
    unless ``http.max_batch_size`` is set)."""
    http = config.http
    return WorkerSettings(
        processor=config.processor_spec, media=dataclasses.asdict(config.media),
        max_upload_bytes=http.max_upload_bytes, max_wait=http.max_wait_ms / 1000,
        max_batch_size=http.max_batch_size or batch_size,
    )


def _launch(child: socket.socket) -> subprocess.Popen[bytes]:
    # -c, not -m: run as __main__, the worker module's classes would exist twice
    command = [sys.executable, "-c", "from tidal.serve.worker import main; main()", str(child.fileno()),
               str(os.getpid())]
    return subprocess.Popen(command, pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL)


def describe_processor(config: ServiceConfig) -> ProcessorInfo:
    """Import, validate and describe the processor in a short-lived worker; ConfigError if wrong."""
    parent, child = socket.socketpair()
    try:
        process = _launch(child)
    finally:
        child.close()
    parent.settimeout(DESCRIBE_TIMEOUT_SECONDS)
    channel = Channel(parent, builtins_only=True)
    try:
        channel.send(Describe(worker_settings(config, 1)))
        reply = channel.receive()
    except (EOFError, OSError) as error:
        process.kill()
        raise ConfigError(f"{config.origin}: describing processor {config.processor.target} failed: the worker "
                          f"process exited ({error}); run it with python -X faulthandler to see why") from None
    finally:
        parent.close()
        process.wait()
    if isinstance(reply, DescribeFailed):
        raise ConfigError(f"{config.origin}: {reply.message}")
    if not isinstance(reply, Described):
        raise unexpected(reply, "the front describing a processor")
    return ProcessorInfo(**reply.info)


class WorkerProcess(Worker):
    """The front's handle on one worker process: start it, send to it, read what it says."""

    def __init__(self, number: int) -> None:
        super().__init__(number)
        self.process: subprocess.Popen[bytes] | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def start(self, settings: WorkerSettings) -> None:
        """Launch the process and send it its settings; OSError if it cannot start."""
        parent, child = socket.socketpair()
        try:
            self.process = _launch(child)
        finally:
            child.close()
        self._reader, self._writer = await asyncio.open_unix_connection(sock=parent)
        self.send(Setup(settings))

    def send(self, message: Message) -> bool:
        if self._writer is None or self._writer.is_closing():
            return False
        for chunk in frame(message):
            self._writer.write(chunk)
        return True

    async def messages(self) -> AsyncIterator[Message]:
        """What the worker sends, until it exits; ProtocolError for what breaks the protocol."""
        assert self._reader is not None
        while True:
            try:
                (size,) = HEADER.unpack(await self._reader.readexactly(HEADER.size))
                data = await self._reader.readexactly(size)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            yield read_builtins(data)

    async def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the process to exit (killing it after ``timeout``); its exit code."""
        process = self.process
        if process is None:
            return None
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(None, process.wait), timeout)
        except TimeoutError:
            self.kill()
            return await loop.run_in_executor(None, process.wait)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class LocalBackend(Backend):
    """Worker processes on this machine, scaled by a :class:`~tidal.serve.scaling.Scaler`.

    Example::

        backend = LocalBackend(load_service("service.hjson"), info)
        await backend.start()
        reply = await backend.predict(Payload("json", {"text": "hello"}))
    """

    def __init__(self, config: ServiceConfig, info: ProcessorInfo, tracker: ServiceTracker | None = None,
                 metrics: ServeMetrics | None = None) -> None:
        self.config = config
        self.info = info
        self.metrics = metrics or ServeMetrics()
        batch_size = config.http.max_batch_size or info.batch_size
        self.settings = worker_settings(config, batch_size)
        self.scaler = Scaler(config.http, batch_size, self.metrics, tracker or ServiceTracker(), WorkerProcess,
                             self._run_worker)
        self._handlers: dict[type[Message], Callable[[Any, Any], None]] = {
            Result: self._on_result, Failed: self._on_failed, Accepted: self._on_accepted, Busy: self._on_busy,
            BatchDone: self._on_batch_done, Cancelled: self._on_cancelled, Status: self._on_status,
            Ready: self._on_ready, SetupFailed: self._on_setup_failed,
        }

    async def start(self) -> None:
        await self.scaler.start()
        http = self.config.http
        LOG.info("serving %s: batches of up to %d items, %d-%d workers, idle timeout %g s", self.info.target,
                 self.scaler.batch_size, http.min_workers, http.max_workers, http.idle_timeout)

    async def stop(self) -> None:
        await self.scaler.stop()

    async def predict(self, payload: Payload) -> Reply:
        return await self.scaler.predict(payload)

    def status(self) -> dict[str, Any]:
        return self.scaler.status()

    def scale(self, min_workers: int | None = None, max_workers: int | None = None) -> None:
        self.scaler.scale(min_workers, max_workers)

    def render_metrics(self) -> str:
        return self.scaler.render_metrics()

    # --- the conversation with one worker -----------------------------------------------

    async def _run_worker(self, worker: Worker) -> str:
        """Start the worker, act on what it says until it exits; why it exited."""
        assert isinstance(worker, WorkerProcess)
        await worker.start(self.settings)
        try:
            async for message in worker.messages():
                self.handle(worker, message)
        except ProtocolError as error:  # this worker cannot be trusted any more
            LOG.error("worker %d (pid %s) broke the protocol, killing it: %s", worker.number, worker.pid, error)
            worker.kill()
        except Exception:  # a bug in a handler: the worker's state is unknown, replace it
            LOG.exception("acting on what worker %d (pid %s) said failed; killing it", worker.number, worker.pid)
            worker.kill()
        worker.close()
        return exit_reason(await worker.wait(STOP_GRACE_SECONDS))

    def handle(self, worker: WorkerProcess, message: Message) -> None:
        """Act on one message from ``worker``; ProtocolError for a kind the front never gets."""
        handler = self._handlers.get(type(message))
        if handler is None:
            raise unexpected(message, "the front")
        handler(worker, message)

    def _on_result(self, worker: WorkerProcess, message: Result) -> None:
        self.scaler.finish(worker, message.request_id, Reply(200, message.body))

    def _on_failed(self, worker: WorkerProcess, message: Failed) -> None:
        if message.status >= 500:
            error = json.loads(message.body)
            LOG.error("request %s failed in worker %d (error id %s): %s\n%s", message.request_id, worker.number,
                      error.get("error_id"), error.get("error"), message.trace or "")
        self.scaler.finish(worker, message.request_id, Reply(message.status, message.body))

    def _on_accepted(self, worker: WorkerProcess, message: Accepted) -> None:
        self.scaler.accepted(worker, message.request_id, message.items)

    def _on_busy(self, worker: WorkerProcess, message: Busy) -> None:
        self.scaler.busy(worker)

    def _on_batch_done(self, worker: WorkerProcess, message: BatchDone) -> None:
        self.scaler.batch_done(worker, message.items, message.requests)

    def _on_cancelled(self, worker: WorkerProcess, message: Cancelled) -> None:
        self.scaler.finish(worker, message.request_id, None)

    def _on_status(self, worker: WorkerProcess, message: Status) -> None:
        LOG.info("worker %d (pid %s) warming up: %s", worker.number, worker.pid, message.text)

    def _on_ready(self, worker: WorkerProcess, message: Ready) -> None:
        self.scaler.worker_ready(worker, message.import_seconds, message.setup_seconds)

    def _on_setup_failed(self, worker: WorkerProcess, message: SetupFailed) -> None:
        self.scaler.setup_failed(worker, message.message, message.trace)
