"""Reading config files: hjson (also JSON), YAML and TOML, chosen by extension."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from tidal.errors import ConfigError

SUFFIXES = (".hjson", ".json", ".yaml", ".yml", ".toml")


def read_config_file(path: Path) -> Any:
    """Parse ``path`` by its extension; a syntax error names the file and the line."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file; check the path (relative to {Path.cwd()})")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ConfigError(f"{path}: unknown config format {suffix!r}; use one of {', '.join(SUFFIXES)}")
    text = path.read_text(encoding="utf-8")
    try:
        return _parse(text, suffix)
    except Exception as error:  # each parser has its own exception type
        raise ConfigError(f"{path}: cannot parse as {suffix[1:]}: {error}") from error


def _parse(text: str, suffix: str) -> Any:
    if suffix == ".json":
        return json.loads(text)
    if suffix == ".toml":
        return tomllib.loads(text)
    if suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text)
    import hjson

    return _plain(hjson.loads(text))


def _plain(value: Any) -> Any:
    """hjson returns OrderedDicts; turn them into plain dicts and lists."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
