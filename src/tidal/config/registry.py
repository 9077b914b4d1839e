"""Names users give their own classes and functions, so configs can name them briefly.

``@tidal.register`` puts a class (or function) here under its ``__name__`` (or a name given);
a config then names it ``"MyNet"`` instead of its dotted path. Registering is the user's own
code running, so a registered name needs no ``imports`` allow-listing; the module that registers
must still be imported, which a config does by listing it under ``imports``.

Example::

    import tidal

    @tidal.register                      # configs may now say {"MyNet": {"width": 64}}
    class MyNet(torch.nn.Module): ...

    @tidal.register(name="tiny-net")     # or under a name of one's choosing
    class TinyNet(torch.nn.Module): ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from tidal.errors import ConfigError

T = TypeVar("T", bound=Callable[..., Any])
_REGISTERED: dict[str, Callable[..., Any]] = {}


@overload
def register(target: T, *, name: str | None = None) -> T: ...


@overload
def register(target: None = None, *, name: str | None = None) -> Callable[[T], T]: ...


def register(target: T | None = None, *, name: str | None = None) -> T | Callable[[T], T]:
    """Make ``target`` nameable in configs by ``name`` (default: its ``__name__``)."""
    if target is None:
        return lambda decorated: register(decorated, name=name)
    key = name or getattr(target, "__name__", "")
    if not key or "." in key:
        raise ConfigError(f"register: {key!r} cannot be a config name; give a name without dots, "
                          "e.g. @tidal.register(name='MyNet')")
    existing = _REGISTERED.get(key)
    if existing is not None and _qualified(existing) != _qualified(target):
        raise ConfigError(f"register: the name {key!r} is taken by {_qualified(existing)}; "
                          f"register {_qualified(target)} under another name with name='...'")
    _REGISTERED[key] = target
    return target


def registered(name: str) -> Callable[..., Any] | None:
    """The callable registered under ``name``, or None."""
    return _REGISTERED.get(name)


def registered_names() -> list[str]:
    """Every registered name, sorted (for "did you mean" hints)."""
    return sorted(_REGISTERED)


def _qualified(target: Callable[..., Any]) -> str:
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', '?')}"
