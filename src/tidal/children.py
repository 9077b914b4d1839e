"""Child processes (engine workers, model workers): dying with their parent, and why they exited."""

from __future__ import annotations

import contextlib
import ctypes
import signal


def die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (a ``kill -9`` of tidal leaves no
    orphan holding memory or a GPU). A no-op where ``prctl`` does not exist."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def exit_reason(exitcode: int | None) -> str:
    """A child's exit code in words: ``killed by SIGKILL``, ``exit code 1``."""
    if exitcode is not None and exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"
