"""A remote run's request: what to execute, with which resources and environment, as stored with
its queue entry (JSON) and turned into a Ray job's entrypoint and ``runtime_env``.

Example::

    spec = RemoteSpec("train.py", ["--lr", "0.01"], gpus=1, requirements=read_requirements(Path("requirements.txt")))
    spec.runtime_env("/tmp/snapshot", {"TIDAL_RUN_ID": run_id})   # working_dir, pip, env_vars (image_uri)
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tidal.errors import UsageError
from tidal.remote.resources import Resources

INSTALLERS = ("pip", "uv")


@dataclass
class RemoteSpec:
    """``script`` (a path inside the snapshot) run with ``args`` by ``python`` on the cluster.

    ``requirements``: lines of a requirements file, installed by ``installer`` (pip or uv) into
    the job's environment; ``image``: a container image (Ray's ``image_uri``, where the cluster
    runs podman) that already holds them; ``env``: extra environment variables; ``tracking_uri``:
    the store the remote process logs to (None when the cluster cannot reach it).
    """

    script: str
    args: list[str] = field(default_factory=list)
    cpus: float = 1.0
    gpus: float = 0.0
    memory: float = 0.0
    requirements: list[str] = field(default_factory=list)
    installer: str = "pip"
    image: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    tracking_uri: str | None = None
    python: str = "python"

    def __post_init__(self) -> None:
        if self.installer not in INSTALLERS:
            raise UsageError(f"--installer {self.installer!r}: use one of {', '.join(INSTALLERS)}")
        if self.image and self.requirements:
            raise UsageError(f"--image {self.image} with --requirements: Ray cannot install packages into a "
                             "container image; build them into the image, or drop --image")
        self.resources()  # negative amounts are refused now

    def resources(self) -> Resources:
        return Resources(self.cpus, self.gpus, self.memory)

    def entrypoint(self) -> str:
        return shlex.join([self.python, self.script, *self.args])

    def runtime_env(self, working_dir: str, env: dict[str, str]) -> dict[str, Any]:
        """Ray's ``runtime_env``: the snapshot as working_dir, the requirements, the image, ``env`` on top."""
        runtime: dict[str, Any] = {"working_dir": working_dir,
                                   "env_vars": {"PYTHONUNBUFFERED": "1"} | self.env | env}
        if self.requirements:
            runtime[self.installer] = {"packages": list(self.requirements)}
        if self.image:
            runtime["image_uri"] = self.image
        return runtime

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> RemoteSpec:
        known = {spec_field.name for spec_field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in document.items() if key in known})


def read_requirements(path: Path) -> list[str]:
    """The lines of a requirements file that name something (comments and blank lines dropped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read the requirements file {path}: {error}; check the path given to "
                         "--requirements") from error
    lines = [line.split(" #", 1)[0].strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]
