"""The steps' graph: each step reads at most one earlier step, so the graph is a forest of chains
and trees; ordering it finds unknown names and cycles before any work."""

from __future__ import annotations

import difflib

from tidal.errors import ConfigError


def order_steps(upstreams: dict[str, str | None]) -> list[str]:
    """Step names so that every step comes after the one it reads (file order otherwise kept).

    Raises ConfigError for a ``from`` naming no step and for a cycle, naming the steps involved.

    >>> order_steps({"video": "measure", "measure": "frames", "frames": None})
    ['frames', 'measure', 'video']
    """
    for name, upstream in upstreams.items():
        if upstream is not None and upstream not in upstreams:
            close = difflib.get_close_matches(upstream, list(upstreams), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"steps.{name}.from: there is no step {upstream!r}{hint}; steps: {', '.join(upstreams)}")
    ordered: list[str] = []
    for name in upstreams:
        _place(name, upstreams, ordered, [])
    return ordered


def _place(name: str, upstreams: dict[str, str | None], ordered: list[str], path: list[str]) -> None:
    if name in ordered:
        return
    if name in path:
        cycle = " -> ".join([*path[path.index(name):], name])
        raise ConfigError(f"steps.{name}.from: the steps read each other in a cycle ({cycle}); "
                          "one of them must read a source instead")
    upstream = upstreams[name]
    if upstream is not None:
        _place(upstream, upstreams, ordered, [*path, name])
    ordered.append(name)
