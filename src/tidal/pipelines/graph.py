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


def layout(upstreams: dict[str, str | None]) -> dict[str, tuple[int, int]]:
    """Where to draw each step: ``(column, row)``, a step's column one right of the step it reads.

    Rows follow a depth-first walk, so a step's first reader sits on its row and the others below
    (a forest of trees never crosses its edges). ``upstreams`` must be ordered (:func:`order_steps`).

    >>> layout({"frames": None, "pose": "frames", "video": "pose", "faces": "frames"})
    {'frames': (0, 0), 'pose': (1, 0), 'video': (2, 0), 'faces': (1, 1)}
    """
    readers: dict[str | None, list[str]] = {}
    for name, upstream in upstreams.items():
        readers.setdefault(upstream, []).append(name)
    places: dict[str, tuple[int, int]] = {}
    rows = [0]  # the next free row, shared by the walk

    def place(name: str, column: int) -> None:
        places[name] = (column, rows[0])
        children = readers.get(name, [])
        for child in children:
            place(child, column + 1)
        if not children:
            rows[0] += 1

    for root in readers.get(None, []):
        place(root, 0)
    return places
