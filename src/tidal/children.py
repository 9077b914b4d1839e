"""Processes tidal starts or watches: dying with the parent, why a child exited, whether one still runs."""

from __future__ import annotations

import contextlib
import ctypes
import os
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


def alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
