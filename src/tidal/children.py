"""Processes tidal starts or watches: dying with the parent, why a child exited, whether one still runs,
stopping a process group."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time


def die_with_parent(signal_number: int = signal.SIGKILL) -> None:
    """Ask Linux to send this process ``signal_number`` (SIGKILL: to kill it) when its parent dies
    (a ``kill -9`` of tidal leaves no orphan holding memory or a GPU); SIGTERM lets a launcher stop
    what it started first. A no-op where ``prctl`` does not exist."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal_number)  # PR_SET_PDEATHSIG


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


def stop_group(process: subprocess.Popen[bytes], term_seconds: float = 10.0, kill_seconds: float = 5.0) -> None:
    """Stop ``process`` and everything it started, when it leads a process group of its own
    (``start_new_session=True``): SIGTERM, ``term_seconds`` for the group to go, then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, term_seconds), (signal.SIGKILL, kill_seconds)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and group_alive(process.pid):
            process.poll()
            time.sleep(0.2)
    process.wait(timeout=term_seconds)


def group_alive(group: int) -> bool:
    """Whether any process of the process group ``group`` still runs."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
