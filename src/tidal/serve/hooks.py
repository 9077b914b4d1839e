"""What serving asks of a processor (its optional hooks) and what the front learns of it.

Processor conventions for serving (all optional):

- ``input_model``: a pydantic model (or any type pydantic validates) for JSON requests; else
  the type hint of ``preprocess``'s first parameter; else any JSON is accepted as is.
- ``preprocess(request) -> list``: turn one validated JSON request into items (values or
  :class:`~tidal.sources.base.Item`); without it, a JSON request is one item.
- ``postprocess(results) -> response``: turn a request's results (one per item, in order) into
  the JSON response; without it the response is ``{"results": [...]}`` (plus ``"times"``, the
  seconds of each frame, for a video decoded frame by frame).
- ``video_input = "clip"``: uploaded videos become one :class:`~tidal.sources.clips.Clip`
  item instead of one item per frame (the service config's ``media.video`` wins). Such a
  processor takes videos only: images and JSON values (other than ``{"url": ...}``) are
  refused with a 4xx, unless it declares a JSON input.
- ``json_input = False``: the processor takes media only; JSON values are refused (422) by the
  front before any worker starts. The default: True, except for whole-video processors.
- raise :class:`RequestError` from a hook to answer a 4xx with your message.

:func:`describe` runs in a short-lived worker process and returns a :class:`ProcessorInfo`:
the front learns the processor's batch size, input schema and hooks without importing it.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tidal.errors import ConfigError, TidalError

if typing.TYPE_CHECKING:
    from tidal.serve.protocol import WorkerSettings


@dataclass(frozen=True)
class ProcessorInfo:
    """What the front knows of the processor, learnt from a worker without importing it."""

    name: str
    target: str
    batch_size: int
    video: str = "frames"
    input_schema: dict[str, Any] | None = None
    input_fields: list[str] = field(default_factory=list)
    takes_json: bool = True
    preprocess: bool = False
    postprocess: bool = False
    canonical: dict[str, Any] = field(default_factory=dict)
    doc: str = ""


def hook(processor: Any, name: str) -> Callable[..., Any] | None:
    """The processor's hook ``name`` (``preprocess``, ``postprocess``), or None."""
    found = getattr(processor, name, None)
    return found if callable(found) else None


def declared_input_type(processor: Any) -> Any:
    """The type JSON requests are validated as: ``input_model``, else the hint of
    ``preprocess``'s first parameter, else None (any JSON)."""
    model = getattr(processor, "input_model", None)
    if model is not None:
        return model
    preprocess = hook(processor, "preprocess")
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


def describe(settings: WorkerSettings) -> ProcessorInfo:
    """Import, validate and describe the processor (in a worker: the front never imports it),
    without setting it up. Raises TidalError (ConfigError) naming the spec when it is wrong."""
    from tidal.processors.base import FunctionProcessor
    from tidal.serve.inputs import Inputs

    spec = settings.processor
    try:
        canonical = spec.check()
        processor = spec.build()
        inputs = Inputs(processor, settings)
        function = processor.fn if isinstance(processor, FunctionProcessor) else None
        return ProcessorInfo(
            name=spec.name if function else type(processor).__name__, target=spec.target,
            batch_size=max(1, int(processor.batch_size or 1)), video=inputs.video, input_schema=inputs.schema(),
            input_fields=inputs.fields(), takes_json=inputs.takes_json, preprocess=inputs.preprocess is not None,
            postprocess=hook(processor, "postprocess") is not None, canonical=canonical,
            doc=(inspect.getdoc(function or type(processor)) or "").split("\n\n")[0],
        )
    except TidalError:
        raise
    except Exception as error:
        raise ConfigError(f"{spec.where}: {spec.target}: {type(error).__name__}: {error}") from None
