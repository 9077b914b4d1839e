"""A job's config: top-level keys, stages, validation before any work, and the job id.

Top-level keys: ``source`` and ``processor`` (object specs), optional ``engine``
(``{"local": {"workers": 2}}``, ``{"inline": {}}``, ``{"ray": {"address": ..., "num_gpus": 0.25}}``), optional
``imports`` (module names configs may use besides ``tidal``), optional ``name``. A file may
hold a list of stages: each later stage inherits the top-level keys it does not set.

The job id hashes the canonical ``source`` and ``processor`` (defaults filled, keys sorted); the
engine is left out, so the same work resumes whatever the number of workers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tidal.config.base import ProcessorConfig, check_keys, name_of, parse_imports, processor_spec_of
from tidal.config.files import read_config_file
from tidal.config.spec import ObjectSpec, add_import_paths, build, canonical, import_paths, require_spec, validate_spec
from tidal.errors import ConfigError
from tidal.processors.base import Processor
from tidal.processors.host import ProcessorSpec
from tidal.sources.base import Source
from tidal.types import JobId

TOP_LEVEL_KEYS = ("source", "processor", "engine", "imports", "name")
ENGINES = {
    "local": "tidal.engines.local.LocalEngine",
    "inline": "tidal.engines.inline.InlineEngine",
    "ray": "tidal.engines.ray.RayEngine",
}
SOURCE_EXAMPLE = '{"tidal.sources.VideoFrames": {"paths": "videos/*.mp4"}}'


@dataclass
class JobConfig(ProcessorConfig):
    """One validated stage of a config file, ready to build its source, processor and engine."""

    source: ObjectSpec
    processor: ObjectSpec
    engine: ObjectSpec
    imports: list[str]
    name: str
    origin: str
    canonical: dict[str, Any] = field(default_factory=dict)
    paths: tuple[str, ...] = ()  # folders the imports are imported from (see config.base)

    @property
    def job_id(self) -> JobId:
        """12 hex digits of the sha256 of the canonical source and processor."""
        text = json.dumps(self.canonical, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def build_source(self) -> Source:
        """The source, built in this process (which then imports the config's modules for good)."""
        add_import_paths(self.paths)
        try:
            source = build(self.source, self.allowed)
        except ConfigError as error:
            raise ConfigError(f"{self.origin}: {error}") from None
        if not isinstance(source, Source):
            raise ConfigError(f"{self.source.where}: {self.source.target} is not a tidal Source")
        return source

    def build_processor(self) -> Processor:
        """The processor, constructed but not set up (constructors are cheap by convention)."""
        try:
            return self.processor_spec.build()
        except ConfigError as error:
            raise ConfigError(f"{self.origin}: {error}") from None

    def build_engine(self) -> Any:
        return build(self.engine, self.allowed)


def build_processor(spec: ObjectSpec, allowed: list[str]) -> Processor:
    """A Processor from an object spec (see :meth:`ProcessorSpec.build`)."""
    return ProcessorSpec.from_object_spec(spec, allowed).build()


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> list[JobConfig]:
    """Read, validate and canonicalise every stage of a config file (no work is started)."""
    path = Path(path)
    raw = read_config_file(path)
    stages = raw if isinstance(raw, list) else [raw]
    if not stages:
        raise ConfigError(f"{path}: the config is an empty list; give at least one stage")
    merged: dict[str, Any] = {}
    jobs = []
    for index, stage in enumerate(stages):
        origin = f"{path}" if len(stages) == 1 else f"{path} stage {index}"
        if not isinstance(stage, dict):
            raise ConfigError(f"{origin}: expected a mapping of top-level keys, got {stage!r}")
        merged = {**merged, **stage}
        jobs.append(parse_job(merged | (overrides or {}), origin, path.parent))
    return jobs


def parse_job(data: dict[str, Any], origin: str, folder: Path = Path(".")) -> JobConfig:
    """Validate one stage's top-level keys and specs; raise ConfigError naming the path."""
    try:
        job = _parse_job(data, folder)
    except ConfigError as error:
        raise ConfigError(f"{origin}: {error}") from None
    job.origin = origin
    return job


def _parse_job(data: dict[str, Any], folder: Path) -> JobConfig:
    check_keys(data, TOP_LEVEL_KEYS)
    if "source" not in data:
        raise ConfigError(f"missing top-level key 'source', e.g. source: {SOURCE_EXAMPLE}")
    imports, paths = parse_imports(data.get("imports", []), folder)
    source = require_spec(data["source"], "source", SOURCE_EXAMPLE)
    processor = processor_spec_of(data)
    job = JobConfig(source, processor, _engine_spec(data.get("engine")), imports, name_of(data, processor),
                    "", {}, paths)
    with import_paths(paths):  # only while names are checked: parsing leaves sys.path alone
        source_target = validate_spec(source, job.allowed)
        job.canonical = {"source": canonical(source, source_target), "processor": job.processor_spec.check()}
        validate_spec(job.engine, job.allowed)
    return job


def _engine_spec(value: Any) -> ObjectSpec:
    if value is None:
        return ObjectSpec(ENGINES["local"], {}, "engine")
    if isinstance(value, str):
        value = {value: {}}
    if isinstance(value, dict) and len(value) == 1:
        (name, kwargs), = value.items()
        if name in ENGINES:
            if kwargs is not None and not isinstance(kwargs, dict):
                raise ConfigError(f"engine.{name}: expected a mapping of settings, got {kwargs!r}")
            return ObjectSpec(ENGINES[name], dict(kwargs or {}), f"engine.{name}")
    raise ConfigError(
        f"engine: expected one of {', '.join(ENGINES)} with its settings, e.g. "
        f'{{"local": {{"workers": 2}}}}; got {value!r}'
    )
