"""A step's own virtual environment: built once, content-addressed, reused by every pipeline.

``env: {requirements: "bodies/requirements.txt"}`` or ``env: {pip: ["numpy<2"]}``. The folder is
``$TIDAL_HOME/envs/<key>``, where the key hashes the requirement lines (comments and blank lines
dropped, sorted) and the Python version, so two pipelines naming the same requirements share one
environment and a changed requirement builds a new one. It is built with ``uv`` when it is
installed (seconds, cached wheels) and with ``venv`` + ``pip`` otherwise; ``pip freeze`` of the
result (the resolved versions) is kept beside it and enters the step's identity.

The environment is layered over tidal's: a ``.pth`` file puts tidal and its dependencies *after*
the environment's own packages, so the step's pins win while ``from tidal import Processor`` still
works. Its workers receive rows as JSON and send results back as JSON (see
:mod:`tidal.pipelines.envhost`): nothing pickled crosses between environments.

A failed install raises :class:`~tidal.errors.PipelineError` with the installer's last lines,
before any item; the half-built folder is removed.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tidal.errors import ConfigError, PipelineError
from tidal.settings import home

ENV_KEYS = ("requirements", "pip")
READY_FILE = "tidal-ready.txt"  # written last: its presence means the build finished
INSTALL_TIMEOUT_SECONDS = 1800
ERROR_LINES = 15  # of the installer's output, in the error


@dataclass(frozen=True)
class EnvironmentSpec:
    """The requirements of one step's environment (already read from their file)."""

    requirements: tuple[str, ...]
    origin: str  # the file or "pip", for messages

    @property
    def key(self) -> str:
        """16 hex digits: the sorted requirement lines and this Python's version."""
        text = "\n".join([f"python {sys.version_info.major}.{sys.version_info.minor}", *sorted(self.requirements)])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        """What the step's canonical config records."""
        return {"requirements": sorted(self.requirements), "key": self.key}


def parse_environment(value: Any, where: str, folder: Path) -> EnvironmentSpec | None:
    """The ``env`` key of a step: ``{requirements: FILE}`` (relative to the config) or ``{pip: [...]}``."""
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in ENV_KEYS:
        raise ConfigError(f"{where}: expected {{requirements: \"requirements.txt\"}} or {{pip: [\"numpy<2\"]}}, "
                          f"got {value!r}")
    (kind, setting), = value.items()
    if kind == "pip":
        if not isinstance(setting, list) or not all(isinstance(line, str) for line in setting):
            raise ConfigError(f"{where}.pip: expected a list of requirement strings, got {setting!r}")
        return EnvironmentSpec(tuple(line.strip() for line in setting if line.strip()), "pip")
    if not isinstance(setting, str):
        raise ConfigError(f"{where}.requirements: expected a file path, got {setting!r}")
    path = (folder / setting).resolve()
    if not path.is_file():
        raise ConfigError(f"{where}.requirements: no file {path}; the path is relative to the config's folder")
    return EnvironmentSpec(_requirement_lines(path), str(path))


def _requirement_lines(path: Path) -> tuple[str, ...]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return tuple(line for line in lines if line)


class Environment:
    """One built environment: its folder, its Python, its frozen requirements.

    Example::

        env = Environment.ensure(spec)          # builds it the first time (uv or pip), else reuses it
        subprocess.run([str(env.python), "-c", "import numpy"])
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def python(self) -> Path:
        return self.folder / "bin" / "python"

    @property
    def frozen(self) -> str:
        """``pip freeze`` of the built environment: the resolved versions."""
        return (self.folder / READY_FILE).read_text(encoding="utf-8")

    @property
    def digest(self) -> str:
        """What the step's identity takes from its environment: the resolved versions."""
        return hashlib.sha256(self.frozen.encode()).hexdigest()[:16]

    @classmethod
    def ensure(cls, spec: EnvironmentSpec, state_home: Path | None = None) -> Environment:
        """The environment for ``spec``, built now unless an earlier build finished."""
        folder = (state_home or home()) / "envs" / spec.key
        environment = cls(folder)
        if not (folder / READY_FILE).is_file():
            _build(spec, folder)
        return environment


def _build(spec: EnvironmentSpec, folder: Path) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{spec.key}.lock", "w") as lock:  # two builds of the same one: one waits
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / READY_FILE).is_file():
            return
        shutil.rmtree(folder, ignore_errors=True)  # a build that died half way
        try:
            frozen = _install(spec, folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        _layer_over_tidal(folder)
        (folder / READY_FILE).write_text(frozen, encoding="utf-8")


def _install(spec: EnvironmentSpec, folder: Path) -> str:
    uv = shutil.which("uv") or _beside_python("uv")
    python = str(folder / "bin" / "python")
    if uv:
        _call([uv, "venv", "--quiet", "--python", sys.executable, str(folder)], spec)
        if spec.requirements:
            _call([uv, "pip", "install", "--quiet", "--python", python, *spec.requirements], spec)
        return _call([uv, "pip", "freeze", "--python", python], spec)
    _call([sys.executable, "-m", "venv", str(folder)], spec)
    if spec.requirements:
        _call([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *spec.requirements], spec)
    return _call([python, "-m", "pip", "freeze", "--disable-pip-version-check"], spec)


def _beside_python(name: str) -> str | None:
    """A tool installed in tidal's own environment (``pip install uv``) when it is not on PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None


def _call(command: list[str], spec: EnvironmentSpec) -> str:
    started = time.monotonic()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PipelineError(f"building the environment of {spec.origin} failed: {error}") from error
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip().splitlines()[-ERROR_LINES:]
        raise PipelineError(
            f"installing the environment of {spec.origin} ({', '.join(spec.requirements) or 'no requirements'}) "
            f"failed after {time.monotonic() - started:.1f}s; `{' '.join(command[:3])} ...` said:\n  "
            + "\n  ".join(output) + "\nfix the requirements and run again (no item was processed)")
    return done.stdout


def _layer_over_tidal(folder: Path) -> None:
    """Put tidal and its dependencies after the environment's own packages (a ``.pth`` file)."""
    import tidal

    tidal_root = Path(tidal.__file__).resolve().parent.parent
    layers = dict.fromkeys([str(tidal_root), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    for site in (folder / "lib").glob("python*/site-packages"):
        (site / "zz_tidal_layer.pth").write_text("\n".join(layers) + "\n", encoding="utf-8")
