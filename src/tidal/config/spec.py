"""Object specs: a config value naming a Python callable with keyword arguments.

Two spellings are accepted, nested anywhere::

    {"tidal.processors.DominantColors": {"k": 5}}          # ktf style: one dotted key
    {"_target_": "tidal.processors.DominantColors", "k": 5}  # Hydra style

Names resolve only from ``tidal`` and the modules a config lists under ``imports`` (or
``$TIDAL_ALLOW``): resolving checks the prefix *before* importing, so loading a config never
imports code the user did not name.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import sys
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tidal.config.registry import registered
from tidal.config.typecheck import mismatch
from tidal.errors import ConfigError

TARGET_KEY = "_target_"
VERSION_KEY = "_version_"  # a class's ``results_version`` in the canonical form, from version 2 on


@dataclass(frozen=True)
class ObjectSpec:
    """A callable's dotted name and its keyword arguments (values may be nested specs)."""

    target: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    where: str = ""  # config path, e.g. processor["tidal.processors.DominantColors"]


def parse_spec(value: Any, where: str) -> ObjectSpec | None:
    """Return the ObjectSpec ``value`` spells, or None when it is a plain value."""
    if not isinstance(value, dict):
        return None
    if TARGET_KEY in value:
        target = value[TARGET_KEY]
        if not isinstance(target, str):
            raise ConfigError(f"{where}.{TARGET_KEY}: expected a dotted name, got {target!r}")
        kwargs = {k: v for k, v in value.items() if k != TARGET_KEY}
        return ObjectSpec(target, _nested(kwargs, where), where)
    if len(value) == 1:
        (name, kwargs), = value.items()
        if ("." in name or registered(name) is not None) and (kwargs is None or isinstance(kwargs, dict)):
            inner = f"{where}[{name!r}]".replace("'", '"')
            return ObjectSpec(name, _nested(kwargs or {}, inner), inner)
    return None


def _nested(kwargs: dict[str, Any], where: str) -> dict[str, Any]:
    return {key: _parse_value(item, f"{where}.{key}") for key, item in kwargs.items()}


def _parse_value(value: Any, where: str) -> Any:
    spec = parse_spec(value, where)
    if spec is not None:
        return spec
    if isinstance(value, list):
        return [_parse_value(item, f"{where}[{i}]") for i, item in enumerate(value)]
    return value


def require_spec(value: Any, where: str, example: str) -> ObjectSpec:
    """Parse ``value`` as a spec or raise a ConfigError showing the expected shape."""
    spec = parse_spec(value, where)
    if spec is None:
        raise ConfigError(
            f"{where}: expected an object spec such as {example}, got {value!r}"
        )
    return spec


def is_allowed(name: str, allowed: Sequence[str]) -> bool:
    """True when ``name`` lies in ``tidal`` or one of the ``allowed`` module prefixes."""
    return any(name == prefix or name.startswith(prefix + ".") for prefix in ["tidal", *allowed])


def require_allowed(spec: ObjectSpec, allowed: Sequence[str]) -> None:
    """Refuse a name outside the allowed modules, before anything is imported (a name registered
    with ``@tidal.register`` is the user's own choice: allowed)."""
    if not is_allowed(spec.target, allowed) and registered(spec.target) is None:
        raise ConfigError(
            f"{spec.where}: {spec.target!r} is outside the allowed modules (tidal"
            f"{''.join(', ' + a for a in allowed)}); list its module under 'imports' in the"
            " config or in TIDAL_ALLOW"
        )


def check_names(spec: ObjectSpec, allowed: Sequence[str]) -> None:
    """:func:`require_allowed` for ``spec`` and every spec nested in its kwargs; imports nothing
    (a service's front checks names this way and leaves importing to its workers)."""
    require_allowed(spec, allowed)
    for value in spec.kwargs.values():
        for nested in value if isinstance(value, list) else [value]:
            if isinstance(nested, ObjectSpec):
                check_names(nested, allowed)


@contextlib.contextmanager
def import_paths(paths: Sequence[str]) -> Iterator[None]:
    """``paths`` first on ``sys.path`` inside the block only: checking a config imports the
    modules it names without leaving the process's import path changed."""
    added = add_import_paths(paths)
    try:
        yield
    finally:
        for path in added:  # only ours: what an imported module added itself stays
            with contextlib.suppress(ValueError):
                sys.path.remove(path)


def add_import_paths(paths: Sequence[str]) -> list[str]:
    """Put ``paths`` first on ``sys.path`` for good (those missing; returned): done by the
    process that builds what a config names, so user modules can import their neighbours later."""
    missing = [path for path in dict.fromkeys(paths) if path not in sys.path]
    sys.path[:0] = missing
    return missing


def resolve(spec: ObjectSpec, allowed: Sequence[str]) -> Callable[..., Any]:
    """Import and return the callable ``spec.target`` names, refusing names not allowed."""
    require_allowed(spec, allowed)
    target = registered(spec.target) or import_dotted(spec.target, spec.where)
    if not callable(target):
        raise ConfigError(f"{spec.where}: {spec.target!r} is not callable")
    return target  # type: ignore[no-any-return]


def import_dotted(name: str, where: str) -> Any:
    """Import the longest module prefix of ``name`` and get the rest as attributes."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name and module_name.startswith(error.name):
                continue
            raise ConfigError(f"{where}: importing {module_name!r} failed: {error}") from error
        return _get_attributes(module, parts[cut:], name, where)
    raise ConfigError(f"{where}: cannot import {name!r}: no module {parts[0]!r} is installed")


def _get_attributes(module: Any, attributes: list[str], name: str, where: str) -> Any:
    value = module
    for attribute in attributes:
        if not hasattr(value, attribute):
            choices = _public_names(value)
            close = difflib.get_close_matches(attribute, choices, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{where}: {name!r} not found: {value.__name__!r} has no {attribute!r}{hint}")
        value = getattr(value, attribute)
    return value


def _public_names(value: Any) -> list[str]:
    names = getattr(value, "__all__", None) or dir(value)
    return [n for n in names if not n.startswith("_")]


def signature_of(target: Callable[..., Any], skip_first: bool = False) -> list[inspect.Parameter]:
    """The keyword parameters ``target`` accepts (``skip_first``: a function's data argument)."""
    parameters = list(inspect.signature(target).parameters.values())
    if skip_first and parameters:
        parameters = parameters[1:]
    return parameters


def validate_kwargs(
    spec: ObjectSpec, target: Callable[..., Any], allowed: Sequence[str], skip_first: bool = False
) -> None:
    """Check every kwarg's name and type against ``target``'s signature and type hints."""
    parameters = signature_of(target, skip_first)
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in parameters)
    named = {p.name: p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    hints = _type_hints(target)
    for key, value in spec.kwargs.items():
        if key not in named and not accepts_any:
            _unknown_kwarg(spec, key, list(named))
        _check_value(spec, key, value, hints.get(key, Any), allowed)
    missing = [n for n, p in named.items() if p.default is p.empty and n not in spec.kwargs]
    if missing:
        raise ConfigError(f"{spec.where}: missing required argument(s) {', '.join(missing)}")


def _unknown_kwarg(spec: ObjectSpec, key: str, names: list[str]) -> None:
    close = difflib.get_close_matches(key, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    accepted = ", ".join(names) or "none"
    raise ConfigError(
        f"{spec.where}.{key}: {spec.target} has no argument {key!r}; {hint}accepted: {accepted}"
    )


def _check_value(spec: ObjectSpec, key: str, value: Any, hint: Any, allowed: Sequence[str]) -> None:
    where = f"{spec.where}.{key}"
    if isinstance(value, ObjectSpec):
        validate_spec(value, allowed)
        return
    expected = mismatch(value, hint)
    if expected is not None:
        raise ConfigError(f"{where}: expected {expected}, got {value!r} ({type(value).__name__})")


def _type_hints(target: Callable[..., Any]) -> dict[str, Any]:
    function = target.__init__ if inspect.isclass(target) else target  # type: ignore[misc]
    try:
        return typing.get_type_hints(function)
    except Exception:  # an unresolvable forward reference must not block a valid config
        return {}


def validate_spec(spec: ObjectSpec, allowed: Sequence[str]) -> Callable[..., Any]:
    """Resolve ``spec`` and validate its kwargs (recursively); return the callable."""
    target = resolve(spec, allowed)
    validate_kwargs(spec, target, allowed)
    return target


def canonical(spec: ObjectSpec, target: Callable[..., Any], skip_first: bool = False) -> dict[str, Any]:
    """The spec with defaults filled and keys sorted: what the job id is hashed from.

    An argument a class lists in ``added_arguments`` (added in a later release) is left out while
    it holds its default, so a job configured before it existed keeps its id and still resumes.
    A class whose ``results_version`` is above 1 (its results for the same input changed) has it
    in the canonical form, so its earlier jobs start over instead of mixing two algorithms' results.
    """
    added = frozenset(getattr(target, "added_arguments", ()))
    defaults: dict[str, Any] = {}
    for parameter in signature_of(target, skip_first):
        if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        if parameter.default is not parameter.empty and _is_plain(parameter.default):
            defaults[parameter.name] = parameter.default
    values = {name: value for name, value in defaults.items() if name not in added}
    values.update({key: _canonical_value(value) for key, value in spec.kwargs.items()
                   if not (key in added and key in defaults and value == defaults[key])})
    version = getattr(target, "results_version", 1)
    if version != 1:
        values[VERSION_KEY] = version
    return {TARGET_KEY: spec.target, **dict(sorted(values.items()))}


def _canonical_value(value: Any) -> Any:
    if isinstance(value, ObjectSpec):
        return {TARGET_KEY: value.target, **dict(sorted(_canonical_value(value.kwargs).items()))}
    if isinstance(value, dict):
        return {key: _canonical_value(item) for key, item in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_canonical_value(item) for item in value]
    return value


def _is_plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_is_plain(item) for item in value)
    return value is None or isinstance(value, (bool, int, float, str))


def build(spec: ObjectSpec, allowed: Sequence[str] | None = None) -> Any:
    """Call the spec's target with its kwargs, building nested specs first."""
    target = resolve(spec, allowed or [])
    try:
        return target(**{key: _build_value(value, allowed) for key, value in spec.kwargs.items()})
    except ConfigError as error:  # a constructor's own check: say where in the config
        raise ConfigError(f"{spec.where}: {error}") from None


def _build_value(value: Any, allowed: Sequence[str] | None) -> Any:
    if isinstance(value, ObjectSpec):
        return build(value, allowed)
    if isinstance(value, list):
        return [_build_value(item, allowed) for item in value]
    return value
