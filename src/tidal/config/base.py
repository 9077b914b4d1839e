"""What every config that names a processor shares: jobs (``tidal map``) and services (``tidal serve``).

One place for the top-level key check, the ``imports`` key (the modules a config may name
besides ``tidal``, and the folders they are imported from), the allow-list, and the processor's
:class:`~tidal.processors.host.ProcessorSpec`. Parsing a config never changes ``sys.path``: the
folders travel in the spec's ``paths`` and are applied where the processor is built.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tidal.config.spec import ObjectSpec, require_spec
from tidal.errors import ConfigError
from tidal.processors.host import ProcessorSpec
from tidal.settings import allowed_modules

PROCESSOR_EXAMPLE = '{"tidal.processors.DominantColors": {"k": 5}}'


class ProcessorConfig:
    """Mixin of the job and service configs (dataclasses with these three fields)."""

    processor: ObjectSpec
    imports: list[str]  # module names the config lists under ``imports``
    paths: tuple[str, ...]  # folders those modules are imported from

    @property
    def allowed(self) -> list[str]:
        """Module prefixes the config may name besides ``tidal``: its imports and ``$TIDAL_ALLOW``."""
        return [*self.imports, *allowed_modules()]

    @property
    def processor_spec(self) -> ProcessorSpec:
        """What a worker needs to build the processor (the allow-list is fixed here, not in workers)."""
        return ProcessorSpec.from_object_spec(self.processor, self.allowed, self.paths)


def check_keys(data: dict[str, Any], known: Sequence[str], hint: str = "") -> None:
    """Refuse unknown top-level keys, suggesting the close one."""
    unknown = [key for key in data if key not in known]
    if not unknown:
        return
    close = difflib.get_close_matches(unknown[0], known, n=1)
    suggestion = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"unknown top-level key(s) {', '.join(map(repr, unknown))}{suggestion}{hint}; "
                      f"allowed: {', '.join(known)}")


def parse_imports(value: Any, folder: Path) -> tuple[list[str], tuple[str, ...]]:
    """The ``imports`` key: its module names, and where to import them from.

    User modules usually sit beside the config or in the working folder, so both folders (as
    absolute paths) come with a non-empty ``imports``.
    """
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"imports: expected a list of module names, got {value!r}")
    paths = (str(folder.resolve()), os.getcwd()) if value else ()
    return list(value), tuple(dict.fromkeys(paths))


def processor_spec_of(data: dict[str, Any]) -> ObjectSpec:
    """The ``processor`` key as an object spec (not imported yet)."""
    if "processor" not in data:
        raise ConfigError(f"missing top-level key 'processor', e.g. processor: {PROCESSOR_EXAMPLE}")
    return require_spec(data["processor"], "processor", PROCESSOR_EXAMPLE)


def name_of(data: dict[str, Any], processor: ObjectSpec) -> str:
    """The ``name`` key (a number is taken as its text), else the processor's last dotted part."""
    name = data.get("name") or processor.target.rsplit(".", 1)[-1]
    if not isinstance(name, (str, int, float)) or isinstance(name, bool):
        raise ConfigError(f"name: expected a string, got {name!r}")
    return str(name)
