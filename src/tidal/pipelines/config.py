"""A pipeline's config: named steps, validated as a whole before any work starts.

A pipeline file is a mapping with ``steps`` (name → step), and optionally ``imports``,
``engine`` and ``name``. A step is one of:

- a **source** step: ``{source: {"tidal.sources.VideoFrames": {...}}}`` (no processor: it names
  items for the steps that read ``from`` it; frames are decoded inside their workers);
- a **map** step: a ``source`` or ``from: STEP``, a ``processor``, optionally ``where: FIELD``
  (keep the earlier step's rows whose field is true; a list means all of them) and ``env:
  {requirements: FILE}`` or ``{pip: [...]}`` (its own virtual environment);
- a **reduce** step: ``from: STEP``, ``group_by: FIELD`` and ``reduce: {"tidal.reducers.Describe": {...}}``.

Checked before any work: every key, every name and argument (as ``tidal map`` does), unknown
``from`` steps, cycles, a ``where`` or ``group_by`` naming a field the earlier processor does not
declare (its ``fields`` class attribute), a reducer's fields, an ``env`` step reading decoded media.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tidal.config.base import check_keys, parse_imports
from tidal.config.files import read_config_file
from tidal.config.job import _engine_spec
from tidal.config.spec import ObjectSpec, canonical, import_paths, require_spec, resolve, validate_spec
from tidal.errors import ConfigError
from tidal.pipelines.environment import EnvironmentSpec, parse_environment
from tidal.pipelines.graph import order_steps
from tidal.processors.host import ProcessorSpec
from tidal.settings import allowed_modules

TOP_LEVEL_KEYS = ("steps", "imports", "engine", "name")
STEP_KEYS = ("source", "from", "processor", "where", "env", "group_by", "reduce")
# fields every row has whatever the processor: the item's key and the sources' metadata
META_FIELDS = ("key", "path", "frame_index", "time", "member", "index")
STEP_EXAMPLE = ('{from: "pose", processor: {"bodies.Measure": {}}} or '
                '{from: "measure", group_by: "path", reduce: {"tidal.reducers.Describe": {}}}')


@dataclass
class Step:
    """One validated step. ``kind`` is ``source``, ``map`` or ``reduce``."""

    name: str
    kind: str
    where_in_file: str  # e.g. steps.pose
    source: ObjectSpec | None = None
    upstream: str | None = None  # the ``from`` step
    processor: ProcessorSpec | None = None
    where: tuple[str, ...] = ()
    env: EnvironmentSpec | None = None
    group_by: str | None = None
    reducer: ObjectSpec | None = None
    canonical: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] | None = None  # what its rows hold (None: not declared)

    @property
    def target(self) -> str:
        """The dotted name of the code the step runs (its processor or reducer)."""
        spec = self.processor or self.reducer or self.source
        return spec.target if spec is not None else ""


@dataclass
class PipelineConfig:
    """A validated pipeline: its steps in the order they run."""

    path: Path
    name: str
    steps: dict[str, Step]  # in run order (every step after the ones it reads)
    imports: list[str]
    paths: tuple[str, ...]
    engine: ObjectSpec

    @property
    def allowed(self) -> list[str]:
        return [*self.imports, *allowed_modules()]

    def step(self, name: str) -> Step:
        """The step called ``name``; the error lists the steps and the closest name."""
        if name not in self.steps:
            raise ConfigError(f"{self.path}: no step {name!r}{_did_you_mean(name, self.steps)}; "
                              f"steps: {', '.join(self.steps)}")
        return self.steps[name]

    def after(self, name: str) -> list[str]:
        """``name`` and every step that reads it, directly or not, in run order."""
        found = {self.step(name).name}
        for step in self.steps.values():
            if step.upstream in found:
                found.add(step.name)
        return [step for step in self.steps if step in found]


def load_pipeline(path: str | Path) -> PipelineConfig:
    """Read and validate a pipeline file (nothing runs); ConfigError names the file and the path."""
    path = Path(path)
    data = read_config_file(path)
    if not is_pipeline(data):
        raise ConfigError(f"{path}: a pipeline needs a top-level 'steps' mapping of named steps, e.g. "
                          f"steps: {{frames: {{source: ...}}, pose: {{from: \"frames\", processor: ...}}}}")
    try:
        return _parse(data, path)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def is_pipeline(data: Any) -> bool:
    """Whether a parsed config file is a pipeline (it has ``steps``) rather than a job."""
    return isinstance(data, dict) and "steps" in data


def is_pipeline_file(path: Path) -> bool:
    """Whether the file at ``path`` parses as a pipeline."""
    try:
        return is_pipeline(read_config_file(path))
    except ConfigError:
        return False


def _parse(data: dict[str, Any], path: Path) -> PipelineConfig:
    check_keys(data, TOP_LEVEL_KEYS)
    raw_steps = data["steps"]
    if not isinstance(raw_steps, dict) or not raw_steps:
        raise ConfigError(f"steps: expected a mapping of named steps such as {STEP_EXAMPLE}, got {raw_steps!r}")
    imports, paths = parse_imports(data.get("imports", []), path.parent)
    name = str(data.get("name") or path.stem)
    allowed = [*imports, *allowed_modules()]
    steps = {key: _parse_step(str(key), value, allowed, paths, path.parent) for key, value in raw_steps.items()}
    ordered = order_steps({key: step.upstream for key, step in steps.items()})
    pipeline = PipelineConfig(path, name, {key: steps[key] for key in ordered}, imports, paths,
                              _engine_spec(data.get("engine")))
    with import_paths(paths):
        validate_spec(pipeline.engine, allowed)
        for step in pipeline.steps.values():
            _check_step(step, pipeline)
    return pipeline


def _parse_step(name: str, value: Any, allowed: list[str], paths: tuple[str, ...], folder: Path) -> Step:
    where = f"steps.{name}"
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a step such as {STEP_EXAMPLE}, got {value!r}")
    try:
        check_keys(value, STEP_KEYS, hint=" in a step")
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None
    if "reduce" in value or "group_by" in value:
        return _reduce_step(name, value, where)
    if "source" in value and "from" in value:
        raise ConfigError(f"{where}: a step reads either a 'source' or 'from' an earlier step, not both")
    step = Step(name, "map", where)
    if "source" in value:
        step.source = require_spec(value["source"], f"{where}.source",
                                   '{"tidal.sources.VideoFrames": {paths: "videos/*.mp4"}}')
    elif "from" in value:
        step.upstream = _step_name(value["from"], f"{where}.from")
    else:
        raise ConfigError(f"{where}: give it a 'source' or 'from: STEP', e.g. {STEP_EXAMPLE}")
    if "processor" in value:
        spec = require_spec(value["processor"], f"{where}.processor", '{"tidal.processors.PoseKeypoints": {}}')
        step.processor = ProcessorSpec.from_object_spec(spec, allowed, paths)
    elif step.source is not None and not {"where", "env"} & set(value):
        step.kind = "source"
    else:
        raise ConfigError(f"{where}: a step reading 'from' another needs a 'processor' (or 'group_by' and "
                          f"'reduce'), e.g. {STEP_EXAMPLE}")
    step.where = _field_list(value.get("where"), f"{where}.where")
    step.env = parse_environment(value.get("env"), f"{where}.env", folder)
    return step


def _reduce_step(name: str, value: dict[str, Any], where: str) -> Step:
    missing = [key for key in ("from", "group_by", "reduce") if key not in value]
    if missing:
        raise ConfigError(f"{where}: a reduce step needs 'from', 'group_by' and 'reduce'; missing "
                          f"{', '.join(missing)}, e.g. {STEP_EXAMPLE}")
    extra = [key for key in ("source", "processor", "where", "env") if key in value]
    if extra:
        raise ConfigError(f"{where}: a reduce step takes no {', '.join(extra)}; put them in a map step before it")
    group_by = value["group_by"]
    if not isinstance(group_by, str) or not group_by:
        raise ConfigError(f"{where}.group_by: expected a field name such as \"path\", got {group_by!r}")
    reducer = require_spec(value["reduce"], f"{where}.reduce", '{"tidal.reducers.Describe": {fields: ["height*"]}}')
    return Step(name, "reduce", where, upstream=_step_name(value["from"], f"{where}.from"),
                group_by=group_by, reducer=reducer)


def _step_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected the name of an earlier step, got {value!r}")
    return value


def _field_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"{where}: expected a field name (or a list of them) of the earlier step's results, "
                          f"e.g. where: \"complete\"; got {value!r}")
    return tuple(names)


# --- checks that need the whole graph --------------------------------------------------------


def _check_step(step: Step, pipeline: PipelineConfig) -> None:
    upstream = pipeline.steps[step.upstream] if step.upstream else None
    if step.kind == "source":
        assert step.source is not None
        step.canonical = {"source": canonical(step.source, validate_spec(step.source, pipeline.allowed))}
    elif step.kind == "map":
        _check_map(step, upstream, pipeline)
    else:
        _check_reduce(step, upstream, pipeline)


def _check_map(step: Step, upstream: Step | None, pipeline: PipelineConfig) -> None:
    assert step.processor is not None
    if upstream is not None and upstream.kind == "reduce":
        raise ConfigError(f"{step.where_in_file}.from: {upstream.name!r} is a reduce step; a map step reads "
                          "a source or another map step")
    reads_media = step.source is not None or (upstream is not None and upstream.kind == "source")
    if step.where and reads_media:
        raise ConfigError(f"{step.where_in_file}.where: filters an earlier step's results, but this step reads "
                          "a source; move 'where' to a step that reads 'from' a map step")
    if step.env is not None and reads_media:
        raise ConfigError(f"{step.where_in_file}.env: a step in its own environment receives rows (JSON), "
                          "never decoded media; run it 'from' a map step (e.g. the pose step), not a source")
    if upstream is not None:
        _check_fields(step.where, upstream, f"{step.where_in_file}.where", "filter on")
    step.canonical = {"processor": step.processor.check()}
    if step.source is not None:
        step.canonical["source"] = canonical(step.source, validate_spec(step.source, pipeline.allowed))
    if step.where:
        step.canonical["where"] = list(step.where)
    if step.env is not None:
        step.canonical["env"] = step.env.describe()
    step.fields = declared_fields(resolve(step.processor.object_spec, pipeline.allowed))


def _check_reduce(step: Step, upstream: Step | None, pipeline: PipelineConfig) -> None:
    assert step.reducer is not None and step.group_by is not None and upstream is not None
    if upstream.kind != "map":
        raise ConfigError(f"{step.where_in_file}.from: {upstream.name!r} is a {upstream.kind} step; a reduce step "
                          "reads a map step's results")
    _check_fields((step.group_by,), upstream, f"{step.where_in_file}.group_by", "group by")
    target = validate_spec(step.reducer, pipeline.allowed)
    from tidal.reducers import Reducer  # reducers import NumPy lazily; keep config parsing light

    reducer = _build_reducer(step.reducer, pipeline.allowed)
    if not isinstance(reducer, Reducer):
        raise ConfigError(f"{step.reducer.where}: {step.reducer.target} is not a tidal.reducers.Reducer")
    if upstream.fields is not None:
        problem = reducer.check_fields(upstream.fields)
        if problem:
            raise ConfigError(f"{step.reducer.where}: {problem} (the fields of step {upstream.name!r}: "
                              f"{', '.join(upstream.fields) or 'none'})")
    step.canonical = {"group_by": step.group_by, "reduce": canonical(step.reducer, target)}


def _build_reducer(spec: ObjectSpec, allowed: list[str]) -> Any:
    from tidal.config.spec import build

    return build(spec, allowed)


def _check_fields(names: tuple[str, ...], upstream: Step, where: str, verb: str) -> None:
    known = upstream.fields
    for name in names:
        if name in META_FIELDS:
            continue
        if known is None:
            raise ConfigError(f"{where}: cannot {verb} {name!r}: {upstream.target} (step {upstream.name!r}) "
                              "declares no fields; give its class a `fields = {\"name\": type, ...}` attribute")
        if name not in known:
            raise ConfigError(f"{where}: step {upstream.name!r} has no field {name!r}"
                              f"{_did_you_mean(name, [*known, *META_FIELDS])}; its fields: "
                              f"{', '.join([*known, *META_FIELDS])}")


def declared_fields(target: Any) -> dict[str, Any] | None:
    """A processor's ``fields`` class attribute (name → type), or None when it declares none."""
    found = getattr(target, "fields", None)
    if isinstance(found, dict):
        return dict(found)
    if isinstance(found, (list, tuple)):
        return {str(name): Any for name in found}
    return None


def _did_you_mean(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
