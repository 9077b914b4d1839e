"""What a run captures about where it ran: git state, environment, console output, resources.

The console is captured at the file-descriptor level by :class:`ConsoleCapture`: descriptors 1
and 2 are pointed at pipes (pseudo-terminals when they were terminals, so programs still see one
and colours and widths stay as they were) and a thread copies each byte to the original
destination and to the run's log. Whatever writes there is recorded: ``print``, a ``logging``
handler made before ``tidal.init``, subprocesses, C extensions, ``os.write(1, ...)``.
:class:`Tee` captures ``sys.stdout``/``sys.stderr`` only, where there are no such descriptors
(Jupyter), or when asked (``TIDAL_CAPTURE=python``).
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import platform
import resource
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

MAX_DIFF_BYTES = 2 * 2**20  # a bigger uncommitted diff is cut (and says so)


def git_state(folder: Path | None = None) -> dict[str, Any] | None:
    """Commit, branch, remote and uncommitted diff of the repository holding ``folder``."""
    folder = folder or Path.cwd()
    commit = _git(folder, "rev-parse", "HEAD")
    if commit is None:
        return None
    diff = _git(folder, "diff", "HEAD", strip=False) or ""
    untracked = (_git(folder, "ls-files", "--others", "--exclude-standard") or "").splitlines()
    cut = len(diff.encode()) > MAX_DIFF_BYTES
    return {"commit": commit, "branch": _git(folder, "rev-parse", "--abbrev-ref", "HEAD"),
            "remote": without_credentials(_git(folder, "config", "--get", "remote.origin.url")),
            "dirty": bool(diff or untracked), "untracked": untracked[:200],
            "diff": diff.encode()[:MAX_DIFF_BYTES].decode(errors="ignore") + ("\n[diff cut]" if cut else "")}


def without_credentials(remote: str | None) -> str | None:
    """A git remote without the user and token a URL may carry (``https://user:token@host/x``
    → ``https://host/x``): they must not reach the store, where every reader of the run sees them."""
    if not remote or "://" not in remote:
        return remote  # scp-like "git@host:org/repo" names an ssh user, no secret
    scheme, rest = remote.split("://", 1)
    authority, slash, path = rest.partition("/")
    return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"


def _git(folder: Path, *args: str, strip: bool = True) -> str | None:
    if shutil.which("git") is None:
        return None
    try:
        done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() if strip else done.stdout


def environment() -> dict[str, Any]:
    """Python, OS, CPU, GPU, memory, hostname and installed packages."""
    from importlib import metadata

    packages = sorted({f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions()
                       if d.metadata["Name"]}, key=str.lower)
    return {"python": sys.version.split()[0], "executable": sys.executable, "platform": platform.platform(),
            "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "memory_bytes": _memory_bytes(),
            "gpus": _gpus(), "hostname": socket.gethostname(), "cwd": os.getcwd(), "packages": packages}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gpus() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


class Tee(io.TextIOBase):
    """Writes to the real stream and hands each chunk to the run's log (never blocking)."""

    def __init__(self, original: TextIO, stream: str, sink: Callable[[str, str], None]) -> None:  # sink(text, stream)
        self.original = original
        self.stream = stream
        self.sink = sink

    def write(self, text: str) -> int:
        written = self.original.write(text)
        if text:
            self.sink(text, self.stream)
        return written

    def flush(self) -> None:
        self.original.flush()

    def isatty(self) -> bool:
        return self.original.isatty()

    def fileno(self) -> int:
        return self.original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.original.encoding


class ConsoleCapture:
    """Records the console in ``sink(text, stream)`` until :meth:`stop`; see the module's docstring.

    ``file_descriptors=False`` (or a ``sys.stdout`` that is not descriptor 1) falls back to a
    :class:`Tee` of the Python streams.
    """

    def __init__(self, sink: Callable[[str, str], None], file_descriptors: bool = True) -> None:
        self.sink = sink
        self.file_descriptors = file_descriptors
        self.pumps: list[_DescriptorPump] = []
        self.tees: list[tuple[str, TextIO]] = []

    def start(self) -> None:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if self.file_descriptors and _descriptor(stream) == (1 if name == "stdout" else 2):
                _line_buffered(stream)  # a print reaches the log as it happens, not 8 KiB later
                self.pumps.append(_DescriptorPump(stream, name, self.sink))
            elif not isinstance(stream, Tee):
                self.tees.append((name, stream))
                setattr(sys, name, Tee(stream, name, self.sink))

    def stop(self) -> None:
        """Put the console back; what was written before this call is in the sink when it returns."""
        for pump in self.pumps:
            pump.stop()
        for name, stream in self.tees:
            if isinstance(getattr(sys, name), Tee):
                setattr(sys, name, stream)
        self.pumps, self.tees = [], []


class _DescriptorPump:
    """One descriptor (1 or 2) pointed at a pipe whose bytes a thread copies on."""

    def __init__(self, stream: TextIO, name: str, sink: Callable[[str, str], None]) -> None:
        self.stream, self.name, self.sink = stream, name, sink
        self.descriptor = stream.fileno()
        stream.flush()
        self.original = os.dup(self.descriptor)  # where the output still goes: a terminal, a file
        self.reader, writer = _pipe_like(self.original)
        os.dup2(writer, self.descriptor)
        os.close(writer)
        self.stopping = False
        self.shown = True  # False once the original refuses writes (a closed pipe): still recorded
        self.thread = threading.Thread(target=self._pump, name=f"tidal-console-{name}", daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while True:
            ready, _, _ = select.select([self.reader], [], [], 0.0 if self.stopping else 0.1)
            if not ready:
                if self.stopping:
                    break
                continue
            try:
                data = os.read(self.reader, 65536)
            except OSError:  # a pseudo-terminal whose last writer closed: EIO
                break
            if not data:
                break
            self._show(data)
            text = decoder.decode(data).replace("\r\n", "\n")
            if text:
                self.sink(text, self.name)

    def _show(self, data: bytes) -> None:
        while data and self.shown:
            try:
                data = data[os.write(self.original, data):]
            except InterruptedError:
                continue
            except OSError:
                self.shown = False

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.stream.flush()
        os.dup2(self.original, self.descriptor)  # children may keep the pipe open: no waiting for EOF
        self.stopping = True
        self.thread.join(timeout=2)
        if not self.thread.is_alive():
            os.close(self.reader)
        os.close(self.original)


def _descriptor(stream: Any) -> int | None:
    try:
        return int(stream.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


def _line_buffered(stream: Any) -> None:
    with contextlib.suppress(AttributeError, ValueError, io.UnsupportedOperation):
        stream.reconfigure(line_buffering=True)


def _pipe_like(original: int) -> tuple[int, int]:
    """(read end, write end): a pseudo-terminal when ``original`` is a terminal (isatty stays true,
    with the same size, and output bytes pass unchanged), else a pipe."""
    if not os.isatty(original):
        return os.pipe()
    import fcntl
    import termios

    leader, follower = os.openpty()
    attributes = termios.tcgetattr(follower)
    attributes[1] &= ~termios.OPOST  # no "\n" → "\r\n": the original terminal does its own
    termios.tcsetattr(follower, termios.TCSANOW, attributes)
    try:
        size = fcntl.ioctl(original, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(follower, termios.TIOCSWINSZ, size)
    except OSError:
        pass
    return leader, follower


class ResourceSampler:
    """CPU use and resident memory of this process (and GPU use when nvidia-smi exists)."""

    def __init__(self) -> None:
        self.last_cpu = _cpu_seconds()
        self.last_time = time.monotonic()
        self.has_gpu = shutil.which("nvidia-smi") is not None

    def sample(self) -> dict[str, float]:
        cpu, now = _cpu_seconds(), time.monotonic()
        values = {"system/cpu_percent": 100.0 * (cpu - self.last_cpu) / max(1e-6, now - self.last_time)}
        self.last_cpu, self.last_time = cpu, now
        rss = _rss_bytes()
        if rss is not None:
            values["system/rss_mb"] = rss / 2**20
        if self.has_gpu:
            values.update(_gpu_sample())
        return values


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_bytes() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _gpu_sample() -> dict[str, float]:
    query = "--query-gpu=utilization.gpu,memory.used"
    try:
        done = subprocess.run(["nvidia-smi", query, "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=5)
        utilisation, memory = done.stdout.splitlines()[0].split(",")
        return {"system/gpu_percent": float(utilisation), "system/gpu_memory_mb": float(memory)}
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return {}
