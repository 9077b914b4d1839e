"""A training config: cycles of named parts, validated before any training starts.

A file holds one mapping or a list of them, the *cycles*; a cycle inherits every top-level key it
does not set from the one before (so a fine-tuning cycle may set only ``optimizer`` and
``train_loop``). Keys:

| key | what | built with |
| --- | --- | --- |
| ``datasets`` | a callable returning :class:`~tidal.train.datasets.Splits` | its kwargs |
| ``model`` | a ``torch.nn.Module`` | its kwargs |
| ``loss`` | ``loss(outputs, targets)`` | its kwargs |
| ``metrics`` | a list of :class:`~tidal.train.metrics.Metric` (optional) | their kwargs |
| ``optimizer`` | a ``torch.optim.Optimizer`` | the model's parameters, then its kwargs |
| ``scheduler`` | a learning-rate scheduler (optional) | the optimizer, then its kwargs |
| ``train_loop`` | :class:`~tidal.train.loop.Loop` (optional) | its kwargs (epochs, freeze...) |
| ``callbacks`` | a list of :class:`~tidal.train.callbacks.Callback` (optional) | their kwargs |
| ``imports`` | modules the config may name, imported first (so ``@tidal.register`` runs) | |
| ``name``, ``seed`` | the run's name, the seed (default 0) | |

Checking happens in two passes: first everything that needs no import (keys, shapes, the
allow-list, and names and argument names read from the modules' source, see ``preflight``),
then every name is imported and every argument checked against its signature and type hints.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tidal.config.base import check_keys, parse_imports
from tidal.config.files import read_config_file
from tidal.config.spec import (
    ObjectSpec,
    build,
    canonical,
    check_names,
    import_paths,
    require_spec,
    resolve,
    validate_kwargs,
)
from tidal.errors import ConfigError
from tidal.settings import allowed_modules
from tidal.train import preflight

LOOP_TARGET = "tidal.train.Loop"
EXAMPLES = {
    "datasets": '{"tidal.train.datasets.Digits": {"batch_size": 64}}',
    "model": '{"tidal.train.models.SmallCNN": {"num_outputs": 10}}',
    "loss": '{"torch.nn.CrossEntropyLoss": {}}',
    "metrics": '[{"tidal.train.metrics.Accuracy": {}}]',
    "optimizer": '{"torch.optim.Adam": {"lr": 0.001}}',
    "scheduler": '{"torch.optim.lr_scheduler.StepLR": {"step_size": 5}}',
    "train_loop": '{"tidal.train.Loop": {"epochs": 10}}',
    "callbacks": '[{"mymodule.MyCallback": {}}]',
}
ALWAYS_ALLOWED = ("torch",)
REQUIRED = ("datasets", "model", "loss", "optimizer")
SPEC_LISTS = ("metrics", "callbacks")
BUILT_WITH_FIRST_ARGUMENT = ("optimizer", "scheduler")  # the parameters, the optimizer: wired by role
TOP_LEVEL_KEYS = (*EXAMPLES, "imports", "name", "seed")


@dataclass
class CycleConfig:
    """One cycle: its specs by key (``metrics``/``callbacks`` are lists) and its canonical form."""

    index: int
    specs: dict[str, ObjectSpec | None]
    lists: dict[str, list[ObjectSpec]]
    canonical: dict[str, Any] = field(default_factory=dict)
    origin: str = ""


@dataclass
class TrainConfig:
    """A validated training config: its cycles, the modules it may name, its name and seed."""

    path: Path
    cycles: list[CycleConfig]
    imports: list[str]
    paths: tuple[str, ...]
    name: str
    seed: int

    @property
    def allowed(self) -> list[str]:
        """Besides ``tidal``: torch (every training names it), the config's imports, ``$TIDAL_ALLOW``."""
        return [*ALWAYS_ALLOWED, *self.imports, *allowed_modules()]

    @property
    def canonical(self) -> dict[str, Any]:
        """What the training id is hashed from: every cycle's canonical parts, and the seed."""
        return {"cycles": [cycle.canonical for cycle in self.cycles], "seed": self.seed}

    @property
    def train_id(self) -> str:
        """12 hex digits of the canonical config's sha256: the same config resumes the same training."""
        text = json.dumps(self.canonical, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def load_train_config(path: str | Path) -> TrainConfig:
    """Read and check every cycle of a training config; nothing is built and no training starts.

    A ConfigError names the file, the cycle, the config path and, for a misspelling, the closest
    name. Wrong names and argument names are found before torch is imported where their module's
    source tells.
    """
    path = Path(path)
    raw = read_config_file(path)
    merged_cycles = _merge_cycles(raw, path)
    first = merged_cycles[0][1]
    imports, paths = _imports(first, path)
    config = TrainConfig(path, [], imports, paths, _name(first), _seed(first, path))
    with import_paths(paths):
        _import_user_modules(imports, path)
        config.cycles = [_parse_cycle(index, data, origin) for index, (origin, data) in enumerate(merged_cycles)]
        for cycle in config.cycles:
            with _within(cycle.origin):
                _check_before_import(cycle, config.allowed)
        for cycle in config.cycles:
            with _within(cycle.origin):
                _validate(cycle, config.allowed)
    return config


def _merge_cycles(raw: Any, path: Path) -> list[tuple[str, dict[str, Any]]]:
    cycles = raw if isinstance(raw, list) else [raw]
    if not cycles:
        raise ConfigError(f"{path}: the config is an empty list; give at least one cycle")
    merged: dict[str, Any] = {}
    result = []
    for index, cycle in enumerate(cycles):
        origin = str(path) if len(cycles) == 1 else f"{path} cycle {index}"
        if not isinstance(cycle, dict):
            raise ConfigError(f"{origin}: expected a mapping of top-level keys, got {cycle!r}")
        with _within(origin):
            check_keys(cycle, TOP_LEVEL_KEYS)
        for key in ("imports", "seed", "name"):
            if index and key in cycle and cycle[key] != merged.get(key):
                raise ConfigError(f"{origin}: {key!r} belongs to the whole training; set it in cycle 0 only")
        merged = {**merged, **cycle}
        result.append((origin, merged))
    return result


@contextlib.contextmanager
def _within(origin: str) -> Iterator[None]:
    """Prefix a ConfigError raised inside with the file and cycle."""
    try:
        yield
    except ConfigError as error:
        raise ConfigError(f"{origin}: {error}") from None


def _imports(data: dict[str, Any], path: Path) -> tuple[list[str], tuple[str, ...]]:
    with _within(str(path)):
        return parse_imports(data.get("imports", []), path.parent)


def _name(data: dict[str, Any]) -> str:
    name = data.get("name") or ""
    if not isinstance(name, str):
        raise ConfigError(f"name: expected a string, got {name!r}")
    return name


def _seed(data: dict[str, Any], path: Path) -> int:
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"{path}: seed: expected an integer, got {seed!r}")
    return seed


def _import_user_modules(imports: list[str], path: Path) -> None:
    """Import the config's own modules first: their ``@tidal.register`` names become nameable."""
    for module in imports:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ConfigError(f"{path}: imports: cannot import {module!r} ({error}); it is looked for next to "
                              "the config and in the working folder") from error


def _parse_cycle(index: int, data: dict[str, Any], origin: str) -> CycleConfig:
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        examples = "; ".join(f"{key}: {EXAMPLES[key]}" for key in missing)
        raise ConfigError(f"{origin}: missing top-level key(s) {', '.join(map(repr, missing))}, e.g. {examples}")
    specs: dict[str, ObjectSpec | None] = {}
    lists: dict[str, list[ObjectSpec]] = {}
    with _within(origin):
        for key in ("datasets", "model", "loss", "optimizer", "scheduler", "train_loop"):
            value = data.get(key, {LOOP_TARGET: {}} if key == "train_loop" else None)
            specs[key] = None if value is None else require_spec(value, key, EXAMPLES[key])
        for key in SPEC_LISTS:
            lists[key] = _spec_list(data.get(key, []), key)
    return CycleConfig(index, specs, lists, origin=origin)


def _spec_list(value: Any, key: str) -> list[ObjectSpec]:
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(f"{key}: expected a list of object specs such as {EXAMPLES[key]}, got {value!r}")
    return [require_spec(item, f"{key}[{i}]", EXAMPLES[key]) for i, item in enumerate(value)]


def _all_specs(cycle: CycleConfig) -> list[tuple[str, ObjectSpec]]:
    named = [(key, spec) for key, spec in cycle.specs.items() if spec is not None]
    return named + [(key, spec) for key, specs in cycle.lists.items() for spec in specs]


def _check_before_import(cycle: CycleConfig, allowed: Sequence[str]) -> None:
    for key, spec in _all_specs(cycle):
        check_names(spec, allowed)
        preflight.check_spec(spec, skip_first=key in BUILT_WITH_FIRST_ARGUMENT)


def _validate(cycle: CycleConfig, allowed: Sequence[str]) -> None:
    """Import every name, check every argument, and record the cycle's canonical form."""
    for key, spec in cycle.specs.items():
        cycle.canonical[key] = None if spec is None else _checked(spec, allowed, key in BUILT_WITH_FIRST_ARGUMENT)
    for key, specs in cycle.lists.items():
        cycle.canonical[key] = [_checked(spec, allowed, False) for spec in specs]
    loop = cycle.specs["train_loop"]
    assert loop is not None  # it defaults to Loop()
    from tidal.train.loop import Loop

    target = resolve(loop, allowed)
    if not (isinstance(target, type) and issubclass(target, Loop)):
        raise ConfigError(f"{loop.where}: {loop.target} is not tidal.train.Loop or a subclass of it")
    build(loop, allowed)  # its constructor checks values a signature cannot (epochs >= 1); it is cheap


def _checked(spec: ObjectSpec, allowed: Sequence[str], skip_first: bool) -> dict[str, Any]:
    target = resolve(spec, allowed)
    validate_kwargs(spec, target, allowed, skip_first=skip_first)
    return canonical(spec, target, skip_first=skip_first)
