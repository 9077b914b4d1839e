"""Checking a config value against a type hint, with messages a user can act on.

Only the shapes configs use are checked (scalars, unions, Literal, lists, tuples, dicts, paths);
an annotation we do not understand accepts anything rather than rejecting valid input.
"""

from __future__ import annotations

import collections.abc
import inspect
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

_SEQUENCES = (list, tuple, collections.abc.Sequence, collections.abc.Iterable)
_MAPPINGS = (dict, collections.abc.Mapping)


def mismatch(value: Any, annotation: Any) -> str | None:
    """None when ``value`` fits ``annotation``, else what was expected (``"int or None"``)."""
    return None if _fits(value, annotation) else describe(annotation)


def _fits(value: Any, annotation: Any) -> bool:
    if annotation in (Any, inspect.Parameter.empty, object):
        return True
    origin = get_origin(annotation)
    if origin is not None:
        return _fits_generic(value, origin, get_args(annotation))
    return _fits_plain(value, annotation)


def _fits_plain(value: Any, annotation: Any) -> bool:
    if annotation is None or annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if inspect.isclass(annotation) and issubclass(annotation, Path):
        return isinstance(value, (str, Path))
    if annotation in (list, tuple):
        return isinstance(value, (list, tuple))
    if annotation is dict:
        return isinstance(value, dict)
    return True


def _fits_generic(value: Any, origin: Any, args: tuple[Any, ...]) -> bool:
    if origin in (Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if origin is Literal:
        return any(value == arg and type(value) is type(arg) for arg in args)
    if origin in _MAPPINGS:
        return isinstance(value, dict) and _fits_mapping(value, args)
    if origin is tuple and args and args[-1] is not Ellipsis:
        fixed = isinstance(value, (list, tuple)) and len(value) == len(args)
        return fixed and all(_fits(item, arg) for item, arg in zip(value, args, strict=True))
    if origin in _SEQUENCES:
        element = args[0] if args else Any
        return isinstance(value, (list, tuple)) and all(_fits(item, element) for item in value)
    return True


def _fits_mapping(value: dict[Any, Any], args: tuple[Any, ...]) -> bool:
    if not args:
        return True
    key_type, value_type = args
    return all(_fits(k, key_type) and _fits(v, value_type) for k, v in value.items())


def describe(annotation: Any) -> str:
    """A short readable name for a type hint: ``list of int``, ``'fast' or 'exact'``."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin in (Union, types.UnionType):
        return " or ".join(describe(arg) for arg in args)
    if origin is Literal:
        return " or ".join(repr(arg) for arg in args)
    if origin in _MAPPINGS:
        return f"a mapping of {describe(args[0])} to {describe(args[1])}" if args else "a mapping"
    if origin in _SEQUENCES:
        return f"a list of {describe(args[0])}" if args else "a list"
    if annotation is None or annotation is type(None):
        return "None (null)"
    return getattr(annotation, "__name__", str(annotation))
