"""The model worker process: builds the processor, sets it up once, serves batches, exits.

The local backend starts a worker with ``python -c "...worker.main()" FD FRONT_PID``: a fresh
interpreter that imports only tidal's light core, the processor's module and, when an upload
arrives, the decoders (NumPy, PyAV, Pillow). It talks to the front over a Unix socket in the
typed messages of :mod:`tidal.serve.protocol`; a message it does not expect is a protocol
error that ends the worker loudly (a traceback on stderr, exit code ``PROTOCOL_EXIT_CODE``).

The processor is hosted by :class:`~tidal.processors.host.ProcessorHost`, as in ``tidal map``:
the same build, setup, failure isolation (a request fails when one of its items fails, the
others in its batch do not), result-count check, teardown, and the same JSON encoder.

Two threads: a reader turns ``Predict`` messages into items (:mod:`tidal.serve.inputs`) and
queues them in the :class:`~tidal.serve.batching.Batcher`; the main thread runs the batches
and answers each request with its JSON bytes (encoded here: only builtins reach the front).

The worker dies with the front (``PR_SET_PDEATHSIG``, and the socket's end of file), so a
killed front leaves no process holding memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import sys
import threading
import time
import traceback
import typing
import uuid
from collections.abc import Callable
from typing import Any

from tidal.children import die_with_parent
from tidal.errors import ProtocolError, RequestError, TidalError
from tidal.processors.host import Outcome, ProcessorHost, encode_json_bytes
from tidal.serve.hooks import describe, hook
from tidal.serve.protocol import (
    Accepted,
    BatchDone,
    Busy,
    Cancel,
    Cancelled,
    Channel,
    Describe,
    Described,
    DescribeFailed,
    Failed,
    Message,
    Predict,
    Ready,
    Result,
    Setup,
    SetupFailed,
    Status,
    Stop,
    WorkerSettings,
    unexpected,
)

if typing.TYPE_CHECKING:
    from tidal.serve.batching import Piece
    from tidal.serve.inputs import Inputs

PROTOCOL_EXIT_CODE = 70  # EX_SOFTWARE: the front sent something this worker does not understand
_FAILED = object()  # a hook failed and the request is answered already


def main(argv: list[str] | None = None) -> None:
    """A worker process's life: receive the settings, describe or serve, exit."""
    arguments = sys.argv[1:] if argv is None else argv
    fd, front_pid = int(arguments[0]), int(arguments[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the front's: it stops its workers
    _die_with_front(front_pid)
    channel = Channel(socket.socket(fileno=fd))
    try:
        first = channel.receive()
    except (EOFError, OSError):
        return
    if not isinstance(first, (Setup, Describe)):
        raise unexpected(first, "a starting worker (it expects setup or describe first)")
    if isinstance(first, Describe):
        channel.send(_describe(first.settings))
        return
    worker = ModelWorker(channel, first.settings)
    worker.run()
    if worker.protocol_error is not None:
        sys.exit(PROTOCOL_EXIT_CODE)


def _die_with_front(front_pid: int) -> None:
    die_with_parent()
    if os.getppid() != front_pid:  # the front died before the line above
        os._exit(0)


def _describe(settings: WorkerSettings) -> Message:
    try:
        info = describe(settings)
    except TidalError as error:
        return DescribeFailed(str(error))
    return Described(dataclasses.asdict(info))


class ModelWorker:
    """Serves one processor: a reader thread decodes requests, this thread runs the batches."""

    def __init__(self, channel: Channel, settings: WorkerSettings) -> None:
        from tidal.serve.batching import Batcher

        self.channel = channel
        self.settings = settings
        self.batcher = Batcher(settings.max_batch_size, settings.max_wait)
        self.extras: dict[str, dict[str, Any]] = {}
        self.host = ProcessorHost(settings.processor)
        self.inputs: Inputs | None = None
        self.postprocess: Callable[..., Any] | None = None
        self.protocol_error: ProtocolError | None = None

    def run(self) -> None:
        if not self._start():
            return
        assert self.inputs is not None
        if self.inputs.input_type is None:  # uploads likely: load the decoders while the first request is read
            threading.Thread(target=_import_decoders, name="tidal-serve-warm-up", daemon=True).start()
        threading.Thread(target=self._read, name="tidal-serve-reader", daemon=True).start()
        try:
            while (pieces := self.batcher.next_batch()) is not None:
                self._run_batch(pieces)
        finally:
            self._teardown()

    def _start(self) -> bool:
        """Import, build and set up the processor, telling the front how far it got."""
        from tidal.serve.inputs import Inputs

        spec = self.settings.processor
        started = time.perf_counter()
        try:
            self.channel.send(Status(f"importing {spec.target}"))
            spec.check()  # imports its module: timed apart from setup(), the usual suspects of a slow start
            imported = time.perf_counter()
            self.channel.send(Status(f"building {spec.name} and running its setup()"))
            self.host.start()
            self.inputs = Inputs(self.host.processor, self.settings)
        except Exception as error:
            text = str(error) if isinstance(error, TidalError) else f"{type(error).__name__}: {error}"
            self.channel.send(SetupFailed(f"{spec.target}: setting up the processor failed: {text}",
                                          traceback.format_exc()))
            return False
        self.postprocess = hook(self.host.processor, "postprocess")
        self.channel.send(Ready(os.getpid(), imported - started, time.perf_counter() - imported))
        return True

    def _teardown(self) -> None:
        self.host.stop()  # a failing teardown() is logged (stderr) by the host

    def _read(self) -> None:
        """The reader thread: decode requests into items and queue them for batching."""
        while True:
            try:
                message = self.channel.receive()
                if not self._on_message(message):
                    return
            except (EOFError, OSError):  # the front is gone: stop now, nobody awaits the answers
                self.batcher.close(drop=True)
                return
            except ProtocolError as error:  # the front and this worker disagree: fail loudly
                print(f"tidal serve worker {os.getpid()}: protocol error, exiting: {error}", file=sys.stderr)
                self.protocol_error = error
                self.batcher.close(drop=True)
                return

    def _on_message(self, message: Message) -> bool:
        """Act on one message from the front; False once told to stop."""
        match message:
            case Predict(request_id, kind, data):
                self._accept(request_id, kind, data)
            case Cancel(request_id):
                if self.batcher.cancel(request_id):
                    self.extras.pop(request_id, None)
                    self.channel.send(Cancelled(request_id))
            case Stop():
                self.batcher.close()
                return False
            case _:
                raise unexpected(message, "a ready worker")
        return True

    def _accept(self, request_id: str, kind: str, data: Any) -> None:
        inputs = self.inputs
        assert inputs is not None
        prepared = self._guarded(request_id, "preprocessing", lambda: inputs.prepare(request_id, kind, data))
        if prepared is _FAILED:
            return
        items, extra = prepared
        if not items:
            self._respond(request_id, [], extra)
            return
        self.extras[request_id] = extra
        self.channel.send(Accepted(request_id, len(items)))
        self.batcher.add(request_id, items)

    def _run_batch(self, pieces: list[Piece]) -> None:
        started = time.perf_counter()
        self.channel.send(Busy(len(pieces)))  # so the front can kill a process() that never returns
        outcomes = self.host.process([piece.item for piece in pieces])
        requests = len({piece.request_id for piece in pieces})
        self.channel.send(BatchDone(len(pieces), requests, time.perf_counter() - started))
        failures = _failed_requests(pieces, outcomes)
        for request_id, message in failures.items():
            self.batcher.fail(request_id)
            self.extras.pop(request_id, None)
            self._send_error(request_id, 500, message)
        kept = [(piece, outcome.result) for piece, outcome in zip(pieces, outcomes, strict=True)
                if piece.request_id not in failures]
        for finished in self.batcher.complete([piece for piece, _ in kept], [result for _, result in kept]):
            extra = self.extras.pop(finished.request_id, {})
            if finished.cancelled:
                self.channel.send(Cancelled(finished.request_id))
            else:
                self._respond(finished.request_id, finished.results, extra)

    def _respond(self, request_id: str, results: list[Any], extra: dict[str, Any]) -> None:
        postprocess = self.postprocess
        response = self._guarded(request_id, "postprocess", lambda: postprocess(results) if postprocess
                                 else {"results": results, **extra})
        if response is _FAILED:
            return
        try:
            body = encode_json_bytes(response)
        except (TypeError, ValueError) as error:
            self._send_error(request_id, 500, f"the response cannot be encoded as JSON: {error}",
                             traceback.format_exc())
            return
        self.channel.send(Result(request_id, body))

    def _guarded(self, request_id: str, stage: str, step: Callable[[], Any]) -> Any:
        """Run a hook's step; on failure answer the request (4xx for RequestError, else 500) and
        return _FAILED."""
        try:
            return step()
        except RequestError as error:
            self._send_error(request_id, error.status, error.message, detail=error.detail)
        except Exception as error:
            self._send_error(request_id, 500, f"{stage} failed: {type(error).__name__}: {error}",
                             traceback.format_exc())
        return _FAILED

    def _send_error(self, request_id: str, status: int, message: str, trace: str | None = None,
                    detail: Any = None) -> None:
        body: dict[str, Any] = {"error": message}
        if detail is not None:
            body["detail"] = detail
        if status >= 500:
            body["error_id"] = uuid.uuid4().hex[:12]
        self.channel.send(Failed(request_id, status, encode_json_bytes(body), trace))


def _import_decoders() -> None:
    """Import NumPy, PyAV and Pillow through tidal's decoders (about 0.15 s) ahead of need; a
    missing one is reported by the upload that needs it."""
    with contextlib.suppress(ImportError):
        import tidal.sources.clips
        import tidal.sources.images  # noqa: F401


def _failed_requests(pieces: list[Piece], outcomes: list[Outcome]) -> dict[str, str]:
    """The requests with a failed item, each with its first failure's error."""
    failures: dict[str, str] = {}
    for piece, outcome in zip(pieces, outcomes, strict=True):
        if outcome.error is not None and piece.request_id not in failures:
            failures[piece.request_id] = f"the processor failed on item {piece.index} of this request: {outcome.error}"
    return failures
