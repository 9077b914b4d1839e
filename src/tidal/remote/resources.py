"""What a remote run asks of the cluster, and whether the cluster has it free.

tidal's resources are Ray's: ``cpus`` → ``entrypoint_num_cpus`` (Ray's ``CPU``), ``gpus`` →
``entrypoint_num_gpus`` (``GPU``, fractions allowed: 0.25 shares a GPU four ways), ``memory``
(bytes) → ``entrypoint_memory`` (``memory``). Ray reserves them for the script's driver process
for as long as it runs, which is what lets the dispatcher count them.

Example::

    shortfall(Resources(cpus=1, gpus=1), Resources(cpus=8, gpus=0))   # "needs 1 GPU, cluster has 0 free"
    lacking(Resources(cpus=1, gpus=2), Resources(cpus=8, gpus=1))     # "2 GPUs"
"""

from __future__ import annotations

from dataclasses import dataclass

from tidal.errors import UsageError


@dataclass(frozen=True)
class Resources:
    cpus: float = 0.0
    gpus: float = 0.0
    memory: float = 0.0  # bytes

    def __post_init__(self) -> None:
        for name in ("cpus", "gpus", "memory"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} = {getattr(self, name)}: a resource cannot be negative")

    def __sub__(self, other: Resources) -> Resources:
        return Resources(max(0.0, self.cpus - other.cpus), max(0.0, self.gpus - other.gpus),
                         max(0.0, self.memory - other.memory))

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpus + other.cpus, self.gpus + other.gpus, self.memory + other.memory)


def shortfall(needed: Resources, free: Resources) -> str | None:
    """Why ``needed`` does not fit in ``free`` ("needs 1 GPU, cluster has 0 free"), None when it fits."""
    missing = _missing(needed, free)
    if not missing:
        return None
    return "; ".join(f"needs {_amount(name, want)}, cluster has {_number(name, have)} free"
                     for name, want, have in missing)


def lacking(needed: Resources, free: Resources) -> str:
    """What of ``needed`` does not fit in ``free``, as asked for ("2 GPUs"); empty when it all fits."""
    return ", ".join(_amount(name, want) for name, want, _ in _missing(needed, free))


def _missing(needed: Resources, free: Resources) -> list[tuple[str, float, float]]:
    return [(name, want, have) for name, want, have in (
        ("GPU", needed.gpus, free.gpus), ("CPU", needed.cpus, free.cpus), ("memory", needed.memory, free.memory))
        if want > have + 1e-9]


def _amount(name: str, value: float) -> str:
    if name == "memory":
        return f"{_number(name, value)} of memory"
    return f"{value:g} {name}{'s' if value != 1 else ''}"


def _number(name: str, value: float) -> str:
    return f"{value / 2**30:.1f} GiB" if name == "memory" else f"{value:g}"
