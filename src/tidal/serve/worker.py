"""The model worker: a process that builds the processor, sets it up once and serves batches.

The front starts a worker with ``python -c "...worker.main()" FD FRONT_PID``: a fresh
interpreter that imports only tidal's light core, the processor's module and, when an upload
arrives, the decoders (NumPy, PyAV, Pillow). The two talk over a Unix socket pair, in frames of
an 8-byte length and a pickle. What the worker sends is built from builtins only (results are
JSON-encoded here, in the worker), and the front unpickles with a loader that refuses every
class, so the front never imports NumPy or the processor.

The conversation::

    front → worker   ("setup", settings)            or ("describe", settings): describe, exit
    worker → front   ("status", text)...            warm-up progress, for the logs
                     ("ready", info)                or ("setup_failed", message, traceback)
    front → worker   ("request", id, kind, data)    kind: "json", "upload" or "url"
    worker → front   ("accepted", id, items)        decoded into that many items
                     ("busy", items)                a batch went into process() (the front's watchdog)
                     ("batch", items, requests, seconds)
                     ("result", id, json_bytes) | ("error", id, status, body, traceback) | ("cancelled", id)
    front → worker   ("cancel", id)                 the request timed out: drop its items
                     ("stop",)                      idle: tear down and exit

The worker dies with the front (``PR_SET_PDEATHSIG``, and the socket's end of file), so a
killed front leaves no process holding memory.

Processor conventions for serving (all optional):

- ``input_model``: a pydantic model (or any type pydantic validates) for JSON requests; else
  the type hint of ``preprocess``'s first parameter; else any JSON is accepted as is.
- ``preprocess(request) -> list``: turn one validated JSON request into items (values or
  :class:`~tidal.sources.base.Item`); without it, a JSON request is one item.
- ``postprocess(results) -> response``: turn a request's results (one per item, in order) into
  the JSON response; without it the response is ``{"results": [...]}`` (plus ``"times"``, the
  seconds of each frame, for a video decoded frame by frame).
- ``video_input = "clip"``: uploaded videos become one :class:`~tidal.sources.clips.Clip`
  item instead of one item per frame (the service config's ``media.video`` wins).
- raise :class:`RequestError` from a hook to answer a 4xx with your message.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import io
import json
import os
import pickle
import posixpath
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
import typing
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from tidal.errors import ConfigError, TidalError

if typing.TYPE_CHECKING:
    from tidal.processors.base import Processor
    from tidal.serve.config import ServiceConfig

HEADER = struct.Struct("!Q")
DESCRIBE_TIMEOUT_SECONDS = 300.0  # importing a processor's module may load torch and friends
_FAILED = object()  # a hook failed and the request is answered already
IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


class RequestError(TidalError):
    """A request the service refuses: the HTTP ``status`` and a message for the client.

    Raise it from ``preprocess`` or ``postprocess`` to answer a 4xx instead of a 500::

        if len(request.text) > 10_000:
            raise RequestError(413, "text longer than 10000 characters; split it")
    """

    def __init__(self, status: int, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail


@dataclass(frozen=True)
class ProcessorInfo:
    """What the front knows of the processor, learnt from a worker without importing it."""

    name: str
    target: str
    batch_size: int
    video: str = "frames"
    input_schema: dict[str, Any] | None = None
    input_fields: list[str] = field(default_factory=list)
    preprocess: bool = False
    postprocess: bool = False
    canonical: dict[str, Any] = field(default_factory=dict)
    doc: str = ""


# --- framing --------------------------------------------------------------------------------


class _BuiltinsOnly(pickle.Unpickler):
    """Unpickles builtins (str, bytes, numbers, lists, dicts, tuples) and refuses any class."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"a worker sent a {module}.{name}; only builtins may cross to the front")


def pack(message: Any) -> tuple[bytes, bytes]:
    """A message's frame: its header and its pickle (apart: an upload is not copied once more)."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)), data


def _chunks(header: bytes, data: bytes) -> tuple[bytes, ...]:
    """One write for a small message, two for a large one (no copy of an upload)."""
    return (header + data,) if len(data) < 65536 else (header, data)


def unpack_builtins(data: bytes) -> Any:
    return _BuiltinsOnly(io.BytesIO(data)).load()


class Channel:
    """A blocking, framed channel over a socket (the worker's side, and ``describe``)."""

    def __init__(self, sock: socket.socket, builtins_only: bool = False) -> None:
        self.sock = sock
        self.builtins_only = builtins_only
        self.lock = threading.Lock()

    def send(self, message: Any) -> None:
        with self.lock:
            for chunk in _chunks(*pack(message)):
                self.sock.sendall(chunk)

    def receive(self) -> Any:
        (size,) = HEADER.unpack(self._exactly(HEADER.size))
        data = self._exactly(size)
        return unpack_builtins(data) if self.builtins_only else pickle.loads(data)

    def _exactly(self, size: int) -> bytes:
        buffer = bytearray(size)
        view = memoryview(buffer)
        received = 0
        while received < size:
            count = self.sock.recv_into(view[received:])
            if count == 0:
                raise EOFError("the other end closed the connection")
            received += count
        return bytes(buffer)


# --- the front's side -------------------------------------------------------------------------


class WorkerState(str, Enum):
    STARTING = "starting"  # importing, running setup()
    READY = "ready"  # taking requests
    STOPPING = "stopping"  # told to stop (idle or shutdown), tearing down
    GONE = "gone"  # the process has exited


def _launch(child: socket.socket) -> subprocess.Popen[bytes]:
    # -c, not -m: run as __main__, this module's classes (RequestError) would exist twice
    command = [sys.executable, "-c", "from tidal.serve.worker import main; main()", str(child.fileno()),
               str(os.getpid())]
    return subprocess.Popen(command, pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL)


def setup_message(config: ServiceConfig, info: ProcessorInfo | None = None) -> dict[str, Any]:
    """What a worker needs to build and serve the processor (plain data, picklable)."""
    http = config.http
    return {
        "spec": config.processor, "allowed": config.allowed, "sys_path": list(sys.path),
        "media": dataclasses.asdict(config.media), "allow_urls": list(http.allow_urls),
        "max_upload_bytes": http.max_upload_bytes, "max_wait": http.max_wait_ms / 1000,
        "max_batch_size": http.max_batch_size or (info.batch_size if info else 1),
    }


class WorkerProcess:
    """The front's handle on one worker process: start it, send to it, read what it says."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.state = WorkerState.STARTING
        self.started = time.monotonic()
        self.ready_at: float | None = None
        self.last_active = self.started
        self.outstanding: dict[str, Any] = {}  # request id → the front's request object
        self.items: dict[str, int] = {}  # request id → items (1 until the worker says)
        self.stop_requested: float | None = None
        self.busy_since: float | None = None  # a batch is in process() since then (None: not busy)
        self.process: subprocess.Popen[bytes] | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def load(self) -> int:
        """Items sent and not yet answered."""
        return sum(self.items.values())

    async def start(self, setup: dict[str, Any]) -> None:
        parent, child = socket.socketpair()
        try:
            self.process = _launch(child)
        finally:
            child.close()
        self._reader, self._writer = await asyncio.open_unix_connection(sock=parent)
        self.send(("setup", setup))

    def send(self, message: Any) -> bool:
        """Queue a message for the worker; False when its connection is gone."""
        if self._writer is None or self._writer.is_closing():
            return False
        for chunk in _chunks(*pack(message)):
            self._writer.write(chunk)
        return True

    async def messages(self) -> AsyncIterator[Any]:
        """What the worker sends, until it exits or breaks the protocol."""
        assert self._reader is not None
        while True:
            try:
                (size,) = HEADER.unpack(await self._reader.readexactly(HEADER.size))
                message = unpack_builtins(await self._reader.readexactly(size))
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            yield message

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
        channel.send(("describe", setup_message(config)))
        reply = channel.receive()
    except (EOFError, OSError) as error:
        process.kill()
        raise ConfigError(f"{config.origin}: describing processor {config.processor.target} failed: the worker "
                          f"process exited ({error}); run it with python -X faulthandler to see why") from None
    finally:
        parent.close()
        process.wait()
    if reply[0] == "describe_failed":
        raise ConfigError(f"{config.origin}: {reply[1]}")
    return ProcessorInfo(**reply[1])


# --- the worker's side ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """A worker process's life: receive the settings, describe or serve, exit."""
    arguments = sys.argv[1:] if argv is None else argv
    fd, front_pid = int(arguments[0]), int(arguments[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the front's: it stops its workers
    _die_with_front(front_pid)
    channel = Channel(socket.socket(fileno=fd))
    try:
        kind, setup = channel.receive()
    except (EOFError, OSError):
        return
    sys.path[:0] = [entry for entry in setup["sys_path"] if entry not in sys.path]
    if kind == "describe":
        channel.send(_describe(setup))
        return
    ModelWorker(channel, setup).run()


def _die_with_front(front_pid: int) -> None:
    from tidal.engines.local import _die_with_parent

    _die_with_parent()
    if os.getppid() != front_pid:  # the front died before the line above
        os._exit(0)


def _describe(setup: dict[str, Any]) -> tuple[str, Any]:
    from tidal.config.spec import canonical, resolve, validate_kwargs
    from tidal.processors.base import is_processor_class

    spec, allowed = setup["spec"], setup["allowed"]
    try:
        target = resolve(spec, allowed)
        function = not is_processor_class(target)
        validate_kwargs(spec, target, allowed, skip_first=function)
        processor = _build(spec, allowed)
        inputs = Inputs(processor, setup)
        info = ProcessorInfo(
            name=type(processor).__name__ if not function else spec.target.rsplit(".", 1)[-1],
            target=spec.target, batch_size=max(1, int(getattr(processor, "batch_size", 1) or 1)),
            video=inputs.video, input_schema=inputs.schema(), input_fields=inputs.fields(),
            preprocess=inputs.preprocess is not None, postprocess=_hook(processor, "postprocess") is not None,
            canonical=canonical(spec, target, function), doc=(inspect.getdoc(target) or "").split("\n\n")[0],
        )
    except TidalError as error:
        return ("describe_failed", str(error))
    except Exception as error:
        return ("describe_failed", f"{spec.where}: {spec.target}: {type(error).__name__}: {error}")
    return ("described", dataclasses.asdict(info))


def _build(spec: Any, allowed: list[str]) -> Processor:
    from tidal.config.job import build_processor

    return build_processor(spec, allowed)


def _hook(processor: Any, name: str) -> Callable[..., Any] | None:
    hook = getattr(processor, name, None)
    return hook if callable(hook) else None


class ModelWorker:
    """Serves one processor: a reader thread decodes requests, this thread runs the batches."""

    def __init__(self, channel: Channel, setup: dict[str, Any]) -> None:
        from tidal.serve.batching import Batcher

        self.channel = channel
        self.setup = setup
        self.batcher = Batcher(setup["max_batch_size"], setup["max_wait"])
        self.extras: dict[str, dict[str, Any]] = {}
        self.processor: Processor | None = None
        self.inputs: Inputs | None = None
        self.postprocess: Callable[..., Any] | None = None

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
        """Build and set up the processor, telling the front how far it got."""
        spec = self.setup["spec"]
        started = time.perf_counter()
        try:
            self.channel.send(("status", f"importing {spec.target}"))
            processor = _build(spec, self.setup["allowed"])
            imported = time.perf_counter()
            self.channel.send(("status", f"running {type(processor).__name__}.setup()"))
            processor.setup()
            self.inputs = Inputs(processor, self.setup)
        except Exception as error:
            text = str(error) if isinstance(error, TidalError) else f"{type(error).__name__}: {error}"
            self.channel.send(("setup_failed", f"{spec.target}: setting up the processor failed: {text}",
                               traceback.format_exc()))
            return False
        self.processor = processor
        self.postprocess = _hook(processor, "postprocess")
        done = time.perf_counter()
        self.channel.send(("ready", {"pid": os.getpid(), "import_seconds": imported - started,
                                     "setup_seconds": done - imported}))
        return True

    def _teardown(self) -> None:
        try:
            if self.processor is not None:
                self.processor.teardown()
        except Exception:  # the process exits anyway; say why the teardown failed
            traceback.print_exc()

    def _read(self) -> None:
        """The reader thread: decode requests into items and queue them for batching."""
        while True:
            try:
                message = self.channel.receive()
            except (EOFError, OSError):  # the front is gone: stop now, nobody awaits the answers
                self.batcher.close(drop=True)
                return
            if message[0] == "request":
                self._accept(*message[1:])
            elif message[0] == "cancel":
                if self.batcher.cancel(message[1]):
                    self.extras.pop(message[1], None)
                    self.channel.send(("cancelled", message[1]))
            elif message[0] == "stop":
                self.batcher.close()
                return

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
        self.channel.send(("accepted", request_id, len(items)))
        self.batcher.add(request_id, items)

    def _run_batch(self, pieces: list[Any]) -> None:
        started = time.perf_counter()
        self.channel.send(("busy", len(pieces)))  # so the front can kill a process() that never returns
        groups: dict[str, list[Any]] = {}
        for piece in pieces:
            groups.setdefault(piece.request_id, []).append(piece)
        results, failures = self._process_groups(pieces, groups)
        self.channel.send(("batch", len(pieces), len(groups), time.perf_counter() - started))
        for request_id, (message, trace) in failures.items():
            self.batcher.fail(request_id)
            self.extras.pop(request_id, None)
            self._send_error(request_id, 500, message, trace)
        kept = [(piece, results[id(piece)]) for piece in pieces if piece.request_id not in failures]
        for finished in self.batcher.complete([piece for piece, _ in kept], [result for _, result in kept]):
            extra = self.extras.pop(finished.request_id, {})
            if finished.cancelled:
                self.channel.send(("cancelled", finished.request_id))
            else:
                self._respond(finished.request_id, finished.results, extra)

    def _process_groups(
        self, pieces: list[Any], groups: dict[str, list[Any]]
    ) -> tuple[dict[int, Any], dict[str, tuple[str, str]]]:
        """Process the batch; when it raises, process each request alone so one bad request
        fails alone. Returns results by piece and the failed requests' errors."""
        try:
            return dict(zip(map(id, pieces), self._process(pieces), strict=True)), {}
        except Exception as error:
            if len(groups) == 1:
                return {}, {pieces[0].request_id: (_processor_error(error), traceback.format_exc())}
        results: dict[int, Any] = {}
        failures: dict[str, tuple[str, str]] = {}
        for request_id, group in groups.items():
            try:
                results.update(zip(map(id, group), self._process(group), strict=True))
            except Exception as error:
                failures[request_id] = (_processor_error(error), traceback.format_exc())
        return results, failures

    def _process(self, pieces: list[Any]) -> list[Any]:
        assert self.processor is not None
        results = self.processor.process([piece.item for piece in pieces])
        if len(results) != len(pieces):
            raise ValueError(f"process() returned {len(results)} results for {len(pieces)} items; "
                             "return exactly one result per item, in order")
        return results

    def _respond(self, request_id: str, results: list[Any], extra: dict[str, Any]) -> None:
        postprocess = self.postprocess
        response = self._guarded(request_id, "postprocess", lambda: postprocess(results) if postprocess
                                 else {"results": results, **extra})
        if response is _FAILED:
            return
        try:
            body = encode_json(response)
        except (TypeError, ValueError) as error:
            self._send_error(request_id, 500, f"the response cannot be encoded as JSON: {error}; return "
                             "dicts, lists, strings, numbers (NumPy values are converted)", traceback.format_exc())
            return
        self.channel.send(("result", request_id, body))

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
        self.channel.send(("error", request_id, status, encode_json(body), trace))


def _import_decoders() -> None:
    """Import NumPy, PyAV and Pillow through tidal's decoders (about 0.15 s) ahead of need; a
    missing one is reported by the upload that needs it."""
    with contextlib.suppress(ImportError):
        import tidal.sources.clips
        import tidal.sources.images  # noqa: F401


def _processor_error(error: BaseException) -> str:
    return f"the processor raised {type(error).__name__}: {error}"


def encode_json(value: Any) -> bytes:
    """JSON bytes of a response; NumPy values, pydantic models and dataclasses are converted."""
    return json.dumps(value, default=_plain, separators=(",", ":")).encode()


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):  # NumPy arrays and scalars
        return value.tolist()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# --- requests into items ----------------------------------------------------------------------


class Inputs:
    """Turns requests into items: JSON validated by the processor's input type, uploads and
    fetched URLs decoded (images with Pillow, videos with PyAV, frame by frame or as clips)."""

    def __init__(self, processor: Any, setup: dict[str, Any]) -> None:
        self.processor = processor
        self.preprocess = _hook(processor, "preprocess")
        self.input_type = declared_input_type(processor)
        self.adapter = _type_adapter(self.input_type) if self.input_type is not None else None
        media = setup["media"]
        self.video = media.get("video") or getattr(processor, "video_input", None) or "frames"
        if self.video not in ("frames", "clip"):
            raise ConfigError(f"{type(processor).__name__}.video_input must be 'frames' or 'clip', not {self.video!r}")
        self.media = media
        self.allow_urls: list[str] = setup["allow_urls"]
        self.max_bytes: int = setup["max_upload_bytes"]

    def schema(self) -> dict[str, Any] | None:
        """The JSON schema of JSON requests (refs point into OpenAPI's components)."""
        if self.adapter is None:
            return None
        try:
            return self.adapter.json_schema(ref_template="#/components/schemas/{model}")  # type: ignore[no-any-return]
        except Exception:  # a type pydantic validates but cannot describe: docs without a schema
            return None

    def fields(self) -> list[str]:
        schema = self.schema() or {}
        return list(schema.get("properties", {}))

    def prepare(self, request_id: str, kind: str, data: Any) -> tuple[list[Any], dict[str, Any]]:
        """The request's items, and what the default response adds to the results."""
        if kind == "json":
            return self._json(request_id, data), {}
        files = [self._fetch(data)] if kind == "url" else data
        items: list[Any] = []
        times: list[float] = []
        for name, content_type, content in files:
            decoded, file_times = self._decode(f"{request_id}/{len(items)}", name, content_type, content)
            items.extend(decoded)
            times.extend(file_times)
        return items, ({"times": times} if times else {})

    def _json(self, request_id: str, data: Any) -> list[Any]:
        from tidal.sources.base import Item

        value = data
        if self.adapter is not None:
            value = self._validate(data)
        if self.preprocess is None:
            return [Item(request_id, value)]
        produced = self.preprocess(value)
        if not isinstance(produced, (list, tuple)):
            raise TypeError(f"preprocess() returned {type(produced).__name__}; return a list of items")
        return [entry if isinstance(entry, Item) else Item(f"{request_id}/{index}", entry)
                for index, entry in enumerate(produced)]

    def _validate(self, data: Any) -> Any:
        from pydantic import ValidationError

        assert self.adapter is not None
        try:
            return self.adapter.validate_python(data)
        except ValidationError as error:
            problems = error.errors(include_url=False, include_context=False, include_input=False)
            where = "; ".join(f"{'.'.join(map(str, problem['loc'])) or 'body'}: {problem['msg']}"
                              for problem in problems)
            name = getattr(self.input_type, "__name__", str(self.input_type))
            detail = [{"loc": list(p["loc"]), "msg": p["msg"], "type": p["type"]} for p in problems]
            raise RequestError(422, f"the request does not match {name}: {where}", detail) from None

    def _decode(self, key: str, name: str, content_type: str, content: bytes) -> tuple[list[Any], list[float]]:
        from tidal.errors import DecodeError
        from tidal.sources.base import Item

        if not content:
            raise RequestError(400, f"the upload {name!r} is empty (0 bytes); send the file's content, "
                               "e.g. curl -F video=@clip.mp4 URL")
        try:
            if _is_image(name, content_type, content):
                return [Item(key, self._image(content, name), {"file": name})], []
            clip = self._clip(content, name)
        except DecodeError as error:
            raise RequestError(422, str(error)) from None
        if self.video == "clip":
            return [Item(key, clip, {"file": name, "frames": len(clip), "fps": clip.fps})], []
        times = [float(t) for t in clip.times]
        items = [Item(f"{key}/{index}", frame, {"file": name, "frame_index": index, "time": times[index]})
                 for index, frame in enumerate(clip.frames)]
        return items, times

    def _image(self, content: bytes, name: str) -> Any:
        from tidal.sources.images import decode_image

        return decode_image(content, f"the upload {name!r}", self.media.get("width"), self.media.get("height"), 0)

    def _clip(self, content: bytes, name: str) -> Any:
        from tidal.sources.clips import decode_clip

        width, height = self.media.get("width"), self.media.get("height")
        if self.video == "clip" and width is None and height is None:
            width = 112  # decode_clip's default: a whole video must fit in memory
        return decode_clip(content, width, height, self.media.get("fps"), self.media.get("max_frames"))

    def _fetch(self, url: str) -> tuple[str, str, bytes]:
        """Read an allowed URL (fsspec), at most ``max_upload_bytes``."""
        from tidal.serve.config import url_allowed

        if not url_allowed(url, self.allow_urls):  # the front checked; a second look costs nothing
            raise RequestError(403, f"{url} is not under an allowed URL prefix")
        name = posixpath.basename(urllib.parse.urlsplit(url).path) or url
        try:
            with _open_url(url) as file:
                content = file.read(self.max_bytes + 1)
        except FileNotFoundError:
            raise RequestError(404, f"{url} does not exist; check the URL") from None
        except ImportError as error:
            raise RequestError(501, f"fetching {url} needs a package this server lacks: {error}") from None
        except Exception as error:
            raise RequestError(502, f"cannot fetch {url}: {type(error).__name__}: {error}") from None
        if len(content) > self.max_bytes:
            raise RequestError(413, f"{url} is larger than the service's limit of {self.max_bytes} bytes")
        return name, "", content


def _open_url(url: str) -> Any:
    import fsspec

    from tidal.tracking.artifacts import ENDPOINT_ENV

    options: dict[str, Any] = {}
    if url.startswith("s3://") and os.environ.get(ENDPOINT_ENV):
        options["endpoint_url"] = os.environ[ENDPOINT_ENV]
    return fsspec.open(url, "rb", **options)


def _is_image(name: str, content_type: str, content: bytes) -> bool:
    from tidal.sources.images import IMAGE_EXTENSIONS

    if content_type.startswith("image/"):
        return True
    if content_type.startswith("video/"):
        return False
    if name.rsplit(".", 1)[-1].lower() in IMAGE_EXTENSIONS:
        return True
    return content.startswith(IMAGE_SIGNATURES) or (content[:4] == b"RIFF" and content[8:12] == b"WEBP")


def declared_input_type(processor: Any) -> Any:
    """The type JSON requests are validated as: ``input_model``, else the hint of
    ``preprocess``'s first parameter, else None (any JSON)."""
    model = getattr(processor, "input_model", None)
    if model is not None:
        return model
    preprocess = _hook(processor, "preprocess")
    if preprocess is None:
        return None
    parameters = list(inspect.signature(preprocess).parameters.values())
    if not parameters:
        raise ConfigError(f"{type(processor).__name__}.preprocess() takes no argument; it must take the request")
    try:
        hint = typing.get_type_hints(preprocess).get(parameters[0].name)
    except Exception:  # an unresolvable forward reference: accept any JSON
        return None
    return None if hint in (None, Any) else hint


def _type_adapter(input_type: Any) -> Any:
    from pydantic import TypeAdapter

    try:
        return TypeAdapter(input_type)
    except Exception as error:
        raise ConfigError(f"cannot validate JSON requests as {input_type!r}: {error}; declare a pydantic model "
                          "as the processor's input_model") from None
