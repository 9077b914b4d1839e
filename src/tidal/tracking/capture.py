"""What a run captures about where it ran: git state, environment, console output, resources."""

from __future__ import annotations

import io
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
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
            "remote": _git(folder, "config", "--get", "remote.origin.url"),
            "dirty": bool(diff or untracked), "untracked": untracked[:200],
            "diff": diff.encode()[:MAX_DIFF_BYTES].decode(errors="ignore") + ("\n[diff cut]" if cut else "")}


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
