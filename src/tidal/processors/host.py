"""The processor host: the one place a processor is built, set up, run, encoded and torn down.

Every engine (inline, local, Ray) and every serving backend hosts its processor through this
module, so a processor behaves the same in ``tidal map`` and ``tidal serve``: one
:class:`ProcessorSpec` travels to every worker (no ``sys.path`` side effects elsewhere), one
batch-size default, one failure isolation (a failing batch is bisected until the bad items
fail alone), one "one result per item" check and one JSON encoder.

Example::

    spec = ProcessorSpec("tidal.processors.NoOp", {"batch_size": 4})
    with ProcessorHost(spec) as host:               # build + setup(); ProcessorError if it fails
        outcomes = host.process(items)              # one Outcome(result, error) per item, in order
    [encode_json(outcome.result) for outcome in outcomes if outcome.error is None]

The host returns raw results: a batch engine encodes each one into its row, a service hands
them to the processor's ``postprocess`` hook first.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from tidal.config.spec import ObjectSpec, add_import_paths, build, canonical, import_paths, resolve, validate_kwargs
from tidal.errors import ConfigError, ProcessorError
from tidal.processors.base import FunctionProcessor, Processor, is_processor_class
from tidal.settings import DEFAULT_BATCH_SIZE
from tidal.sources.base import Item

LOG = logging.getLogger("tidal.processors")
_Value = TypeVar("_Value")


@dataclass(frozen=True)
class ProcessorSpec:
    """How to build a processor anywhere: plain, picklable data sent to every worker.

    ``target`` is a dotted name (a Processor class or a function ``f(data, **kwargs)``),
    ``kwargs`` its arguments (values may be nested :class:`~tidal.config.spec.ObjectSpec`),
    ``allowed`` the module prefixes besides ``tidal`` it may name, ``paths`` the folders its
    modules are imported from (the config's folder): they go on ``sys.path`` only in the process
    that builds the processor. ``where`` is its config path, for error messages.
    """

    target: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    allowed: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    where: str = "processor"

    @classmethod
    def from_object_spec(cls, spec: ObjectSpec, allowed: Sequence[str] = (),
                         paths: Sequence[str] = ()) -> ProcessorSpec:
        """The spec of a config's ``processor`` object spec."""
        return cls(spec.target, dict(spec.kwargs), tuple(allowed), tuple(paths), spec.where or "processor")

    @property
    def object_spec(self) -> ObjectSpec:
        return ObjectSpec(self.target, self.kwargs, self.where)

    @property
    def name(self) -> str:
        """The last part of the dotted name: ``DominantColors``."""
        return self.target.rsplit(".", 1)[-1]

    def check(self) -> dict[str, Any]:
        """Resolve the name and check every argument against the signature and type hints, then
        return the canonical form (defaults filled, keys sorted) a job id is hashed from."""
        with import_paths(self.paths):
            target = resolve(self.object_spec, self.allowed)
            function = not is_processor_class(target)
            validate_kwargs(self.object_spec, target, self.allowed, skip_first=function)
        return canonical(self.object_spec, target, function)

    def build(self) -> Processor:
        """The processor, constructed but not set up: a Processor class is instantiated with the
        kwargs, a function wrapped in a :class:`FunctionProcessor`."""
        add_import_paths(self.paths)  # for good: the processor may import its neighbours later
        target = resolve(self.object_spec, self.allowed)
        if is_processor_class(target):
            return build(self.object_spec, self.allowed)  # type: ignore[no-any-return]
        return FunctionProcessor(target, dict(self.kwargs))


class Outcome(NamedTuple):
    """One item's outcome: its raw ``result``, or the ``error`` that made it fail (then None)."""

    result: Any
    error: str | None


class _WrongCount(ProcessorError):
    """process() did not return one result per item: no result can be matched to its item."""


class ProcessorHost:
    """Hosts one processor in this process: start once, process batches, stop once."""

    def __init__(self, spec: ProcessorSpec) -> None:
        self.spec = spec
        self._processor: Processor | None = None

    def __enter__(self) -> ProcessorHost:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def processor(self) -> Processor:
        if self._processor is None:
            raise ProcessorError(f"{self.spec.target}: the processor is not started; call start() first")
        return self._processor

    @property
    def batch_size(self) -> int:
        """Items per ``process()`` call: the processor's ``batch_size``, else the default."""
        declared = getattr(self.processor, "batch_size", None)
        return max(1, int(declared)) if declared else DEFAULT_BATCH_SIZE

    def start(self) -> None:
        """Build the processor and run its ``setup()``; a failure says which and where."""
        processor = self._stage("while building it", self.spec.build)
        self._stage(f"in {type(processor).__name__}.setup()", processor.setup)
        self._processor = processor

    def _stage(self, stage: str, step: Callable[[], _Value]) -> _Value:
        try:
            return step()
        except ConfigError:  # already names the config path; exits with 2 as config errors do
            raise
        except Exception as error:
            raise ProcessorError(f"{self.spec.target}: setting up the processor failed {stage}: "
                                 f"{describe_error(error, with_origin=True)}") from error

    def process(self, items: list[Item]) -> list[Outcome]:
        """One outcome per item, in order. A batch that raises is halved until the failing items
        fail alone; one that returns the wrong number of results is retried item by item."""
        processor = self.processor  # not started: raise, not a failure of every item
        if not items:
            return []
        try:
            results = _one_per_item(processor.process(items), len(items))
        except _WrongCount as error:
            if len(items) == 1:
                return [Outcome(None, str(error))]
            return [outcome for item in items for outcome in self.process([item])]
        except Exception as error:
            if len(items) == 1:
                return [Outcome(None, describe_error(error, with_origin=True))]
            middle = len(items) // 2
            return self.process(items[:middle]) + self.process(items[middle:])
        return [Outcome(result, None) for result in results]

    def stop(self) -> str | None:
        """Run ``teardown()``; a failure is logged and returned, never raised (the work is done)."""
        processor, self._processor = self._processor, None
        if processor is None:
            return None
        try:
            processor.teardown()
        except Exception as error:
            message = f"{self.spec.target}: teardown() failed: {describe_error(error, with_origin=True)}"
            LOG.error(message)
            return message
        return None


def _one_per_item(results: Any, count: int) -> list[Any]:
    if not isinstance(results, (list, tuple)):
        raise _WrongCount(f"process() returned {type(results).__name__}, not a list; return a list with "
                          "one result per item, in order")
    if len(results) != count:
        raise _WrongCount(f"process() returned {len(results)} results for {count} items; return exactly "
                          "one result per item, in order")
    return list(results)


def describe_error(error: BaseException, with_origin: bool = False) -> str:
    """``ValueError: bad frame``, with ``(at file:line in function)`` of the raising frame."""
    text = f"{type(error).__name__}: {error}"
    if with_origin:
        frames = traceback.extract_tb(error.__traceback__)
        if frames:
            last = frames[-1]
            text += f" (at {last.filename}:{last.lineno} in {last.name})"
    return text


# --- results as JSON ------------------------------------------------------------------------


def encode_json(value: Any) -> str:
    """THE result encoder, compact JSON: NumPy arrays and scalars, dataclasses, pydantic models,
    dates and times (ISO 8601), sets, paths are converted; NaN and infinities are written as
    ``NaN``/``Infinity`` (Python's json reads them back); bytes are refused, saying what to do.
    Raises TypeError for anything else.

    >>> encode_json({"at": datetime.date(2024, 5, 1), "n": {1}})
    '{"at":"2024-05-01","n":[1]}'
    """
    return _ENCODER.encode(value)


def encode_json_bytes(value: Any) -> bytes:
    """:func:`encode_json` as UTF-8 bytes (what an HTTP response body needs)."""
    return _ENCODER.encode(value).encode()


def is_record(value: Any) -> bool:
    """True for a dataclass instance or a pydantic model: encoded as a JSON object of its fields."""
    return hasattr(value, "model_dump") or (dataclasses.is_dataclass(value) and not isinstance(value, type))


def _plain(value: Any) -> Any:
    """The encoder's fallback: a JSON-ready stand-in for a value json cannot write itself."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{type(value).__name__} cannot be written as JSON; base64-encode it "
                        "(base64.b64encode(data).decode()) or save it to a file (an artifact) and return its path")
    if hasattr(value, "tolist"):  # NumPy arrays and scalars, without importing NumPy here
        return value.tolist()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {item.name: getattr(value, item.name) for item in dataclasses.fields(value)}
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return _sorted_if_possible(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable; return dicts, lists, strings, numbers, "
                    "NumPy arrays, dataclasses or pydantic models")


def _sorted_if_possible(values: set[Any] | frozenset[Any]) -> list[Any]:
    """A set's members sorted, so the same set always gives the same JSON (string hashes vary)."""
    try:
        return sorted(values)
    except TypeError:
        return list(values)


_ENCODER = json.JSONEncoder(default=_plain, separators=(",", ":"), allow_nan=True)
