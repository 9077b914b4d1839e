"""The conversation between the front and a model worker: typed messages and their framing.

Each message kind is a frozen dataclass. On the wire a message is a tagged tuple of its fields,
``(tag, field, ...)``, pickled in a frame of an 8-byte length and the pickle, over a Unix
socket. What a worker sends is builtins only (results are JSON bytes already), and the front
reads it with a loader that refuses every class: the front never imports NumPy or the
processor, and a compromised worker cannot make the front run code. The front's messages to a
worker may hold classes (the processor's spec): the worker trusts its front.

The conversation::

    front → worker   Setup(settings)                 or Describe(settings): describe, exit
    worker → front   Status(text)...                 warm-up progress, for the logs
                     Ready(pid, import_seconds, setup_seconds)  or SetupFailed(message, trace)
                     Described(info)                 or DescribeFailed(message), to a Describe
    front → worker   Predict(id, kind, data)         kind: "json" or "upload" (the front fetches URLs)
    worker → front   Accepted(id, items)             decoded into that many items
                     Busy(items)                     a batch went into process() (the front's watchdog)
                     BatchDone(items, requests, seconds)
                     Result(id, body) | Failed(id, status, body, trace) | Cancelled(id)
    front → worker   Cancel(id)                      the request timed out: drop its items
                     Stop()                          idle: tear down and exit

A tag nobody knows, a field count that does not match, or a kind the receiver does not expect
is a :class:`ProtocolError`, never silently dropped: the two ends disagree about the protocol.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
import socket
import struct
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from tidal.errors import ProtocolError

if TYPE_CHECKING:
    from tidal.processors.host import ProcessorSpec

HEADER = struct.Struct("!Q")
LARGE_MESSAGE_BYTES = 65536  # from this size a frame's header and body are written apart (no copy)


@dataclass(frozen=True)
class Message:
    """Base of every message; ``tag`` names the kind on the wire."""

    tag: ClassVar[str] = ""


@dataclass(frozen=True)
class WorkerSettings:
    """What a worker needs to build and serve the processor (from the service config)."""

    processor: ProcessorSpec
    media: dict[str, Any]
    max_upload_bytes: int
    max_wait: float
    max_batch_size: int


# --- front → worker ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup(Message):
    tag: ClassVar[str] = "setup"
    settings: WorkerSettings


@dataclass(frozen=True)
class Describe(Message):
    tag: ClassVar[str] = "describe"
    settings: WorkerSettings


@dataclass(frozen=True)
class Predict(Message):
    tag: ClassVar[str] = "predict"
    request_id: str
    kind: str
    data: Any


@dataclass(frozen=True)
class Cancel(Message):
    tag: ClassVar[str] = "cancel"
    request_id: str


@dataclass(frozen=True)
class Stop(Message):
    tag: ClassVar[str] = "stop"


# --- worker → front ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Status(Message):
    tag: ClassVar[str] = "status"
    text: str


@dataclass(frozen=True)
class Ready(Message):
    tag: ClassVar[str] = "ready"
    pid: int
    import_seconds: float
    setup_seconds: float


@dataclass(frozen=True)
class SetupFailed(Message):
    tag: ClassVar[str] = "setup_failed"
    message: str
    trace: str


@dataclass(frozen=True)
class Described(Message):
    tag: ClassVar[str] = "described"
    info: dict[str, Any]


@dataclass(frozen=True)
class DescribeFailed(Message):
    tag: ClassVar[str] = "describe_failed"
    message: str


@dataclass(frozen=True)
class Accepted(Message):
    tag: ClassVar[str] = "accepted"
    request_id: str
    items: int


@dataclass(frozen=True)
class Busy(Message):
    tag: ClassVar[str] = "busy"
    items: int


@dataclass(frozen=True)
class BatchDone(Message):
    tag: ClassVar[str] = "batch"
    items: int
    requests: int
    seconds: float


@dataclass(frozen=True)
class Result(Message):
    tag: ClassVar[str] = "result"
    request_id: str
    body: bytes


@dataclass(frozen=True)
class Failed(Message):
    tag: ClassVar[str] = "failed"
    request_id: str
    status: int
    body: bytes
    trace: str | None


@dataclass(frozen=True)
class Cancelled(Message):
    tag: ClassVar[str] = "cancelled"
    request_id: str


KINDS: dict[str, type[Message]] = {kind.tag: kind for kind in (
    Setup, Describe, Predict, Cancel, Stop, Status, Ready, SetupFailed, Described, DescribeFailed, Accepted, Busy,
    BatchDone, Result, Failed, Cancelled)}


# --- encoding ---------------------------------------------------------------------------------


def encode(message: Message) -> tuple[Any, ...]:
    """The tagged tuple a message travels as (its fields, not copied)."""
    return (message.tag, *(getattr(message, item.name) for item in dataclasses.fields(message)))


def decode(wire: Any) -> Message:
    """The message a tagged tuple stands for; ProtocolError for anything else."""
    if not isinstance(wire, tuple) or not wire or not isinstance(wire[0], str):
        raise ProtocolError(f"expected a tagged tuple (kind, fields...), got {type(wire).__name__}")
    kind = KINDS.get(wire[0])
    if kind is None:
        raise ProtocolError(f"unknown message kind {wire[0]!r}; known: {', '.join(sorted(KINDS))} (are the front "
                            "and the worker the same tidal version?)")
    expected = len(dataclasses.fields(kind))
    if len(wire) - 1 != expected:
        raise ProtocolError(f"a {wire[0]!r} message has {expected} field(s), got {len(wire) - 1}")
    return kind(*wire[1:])


def unexpected(message: Message, receiver: str) -> ProtocolError:
    """The error for a known kind that ``receiver`` must never get (e.g. a Stop sent to the front)."""
    return ProtocolError(f"{receiver} got a {message.tag!r} message, which only travels the other way")


# --- framing ----------------------------------------------------------------------------------


class _BuiltinsOnly(pickle.Unpickler):
    """Unpickles builtins (str, bytes, numbers, lists, dicts, tuples) and refuses any class."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"a worker sent a {module}.{name}; only builtins may cross to the front")


def frame(message: Message) -> tuple[bytes, ...]:
    """A message's frame as the chunks to write: one for a small message, a header and the
    pickle apart for a large one (an upload is not copied once more)."""
    data = pickle.dumps(encode(message), protocol=pickle.HIGHEST_PROTOCOL)
    header = HEADER.pack(len(data))
    return (header + data,) if len(data) < LARGE_MESSAGE_BYTES else (header, data)


def read_builtins(data: bytes) -> Message:
    """A worker's message, read by the front: builtins only, then decoded."""
    try:
        wire = _BuiltinsOnly(io.BytesIO(data)).load()
    except pickle.UnpicklingError as error:
        raise ProtocolError(str(error)) from None
    return decode(wire)


class Channel:
    """A blocking, framed channel over a socket (the worker's side, and the describing front).

    ``builtins_only``: read with the loader that refuses classes (the front's side)."""

    def __init__(self, sock: socket.socket, builtins_only: bool = False) -> None:
        self.sock = sock
        self.builtins_only = builtins_only
        self.lock = threading.Lock()  # the worker's reader thread and batch loop both send

    def send(self, message: Message) -> None:
        with self.lock:
            for chunk in frame(message):
                self.sock.sendall(chunk)

    def receive(self) -> Message:
        """The next message; EOFError when the other end closed the connection."""
        (size,) = HEADER.unpack(self._exactly(HEADER.size))
        data = self._exactly(size)
        return read_builtins(data) if self.builtins_only else decode(pickle.loads(data))

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
