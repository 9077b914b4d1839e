"""A service's config: which processor to serve, and how (HTTP, batching, scaling, uploads).

A service config file (hjson, JSON, YAML or TOML) uses the same object specs and ``imports``
as a job config; ``source`` and ``engine`` make no sense for a service and are refused::

    {
      processor: {"tidal.processors.RepetitionCounter": {max_period: 4}}
      imports: []                      # modules besides tidal the config may name
      name: repetitions                # the service's name (its tracked run's name)
      project: services                # the tracking project of its run
      http: {max_batch_size: 4, idle_timeout: 300, allow_urls: ["s3://uploads"]}
      media: {video: "clip", width: 112}
      backend: "local"                 # or "ray", or {ray: {address: "ray://head:10001", num_gpus: 0.25}}
    }

``tidal serve package.module:ClassName`` serves a class with default settings instead.

Loading a service config never imports the processor's module: the front process stays light
(the processor is imported, validated and described in a short-lived worker process, see
:func:`tidal.serve.worker.describe_processor`).

``http`` settings, their defaults, and the ``tidal serve`` flag that overrides each:

- ``max_batch_size`` (the processor's ``batch_size``; ``--max-batch-size``): items per
  ``process()`` call; a 300-frame video decoded frame by frame is 300 items.
- ``max_wait_ms`` (0; ``--max-wait-ms``): how long a batch's first item may wait for more
  before it is processed. 0 never waits: requests that arrive while the worker is busy still
  leave together as the next batch.
- ``idle_timeout`` (300; ``--idle-timeout``): seconds without a request after which a worker
  exits, releasing its memory and GPU.
- ``min_workers`` (0; ``--min-workers``): workers kept while idle; 0 scales to zero.
- ``max_workers`` (1; ``--max-workers``): workers started under load.
- ``queue_limit`` (100; ``--queue-limit``): requests held while no worker can take them (cold
  start, load); more get 503 with ``Retry-After``.
- ``request_timeout`` (120; ``--request-timeout``): seconds a request may take, waiting
  included, before a 504.
- ``max_upload_bytes`` (100 MiB; ``--max-upload-bytes``): the body limit, enforced while the
  body streams in (413).
- ``allow_urls`` ([]; ``--allow-url``): URL prefixes ``{"url": ...}`` requests may name:
  ``s3://bucket/prefix``, ``s3://*`` (any bucket), ``file:///folder``, ``https://host/path``
  (an artifact store's URLs are ``file://`` or ``s3://`` ones). Nothing else is fetched (403).
  ``s3://`` URLs use ``$TIDAL_S3_ENDPOINT_URL`` as the artifact store does. The front fetches
  (never the model worker): a ``file://`` path must resolve (symlinks included) inside the
  entry's folder and be a regular file; an ``http(s)`` redirect is followed only to a URL the
  list allows, and a private, loopback or link-local address only when the entry names its
  host exactly (not ``*``). See :mod:`tidal.serve.allowlist`.
- ``fetch_timeout`` (60; ``--fetch-timeout``): seconds a URL's fetch may take in all (within
  ``request_timeout``); connecting and each read have shorter limits of their own. Past it: 504.

``media`` says how uploaded or fetched images and videos become items: ``video`` is
``"frames"`` (one item per frame, an ``HxWx3`` uint8 array) or ``"clip"`` (one item per video,
a :class:`~tidal.sources.clips.Clip`); when it is not set, a processor class attribute
``video_input = "clip"`` chooses, else frames. ``width``/``height`` scale frames and images
(clips default to 112 px wide, as :func:`~tidal.sources.clips.decode_clip`), ``fps`` and
``max_frames`` select frames.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tidal.config.base import ProcessorConfig, check_keys, name_of, parse_imports, processor_spec_of
from tidal.config.files import read_config_file
from tidal.config.spec import ObjectSpec, check_names
from tidal.config.typecheck import mismatch
from tidal.errors import ConfigError
from tidal.serve.allowlist import AllowedURL, AllowList, parse_allowed_url, url_allowed

__all__ = ["AllowedURL", "HTTPSettings", "MediaSettings", "RaySettings", "ServiceConfig", "load_service",
           "parse_allowed_url", "parse_service", "service_from_target", "url_allowed"]

TOP_LEVEL_KEYS = ("processor", "imports", "name", "project", "http", "media", "backend")
BACKENDS = ("local", "ray")
DEFAULT_PROJECT = "services"
VideoInput = Literal["frames", "clip"]


@dataclass(frozen=True)
class HTTPSettings:
    """How the service answers and scales (see the table in this module's docstring)."""

    max_batch_size: int | None = None
    max_wait_ms: float = 0.0
    idle_timeout: float = 300.0
    min_workers: int = 0
    max_workers: int = 1
    queue_limit: int = 100
    request_timeout: float = 120.0
    max_upload_bytes: int = 100 * 1024 * 1024
    allow_urls: list[str] = field(default_factory=list)
    fetch_timeout: float = 60.0

    def check(self, where: str = "http") -> None:
        """Raise ConfigError naming the setting when a value is out of range."""
        _at_least(where, "max_batch_size", self.max_batch_size, 1)
        _at_least(where, "max_wait_ms", self.max_wait_ms, 0)
        _above(where, "idle_timeout", self.idle_timeout)
        _at_least(where, "min_workers", self.min_workers, 0)
        _at_least(where, "max_workers", self.max_workers, 1)
        _at_least(where, "queue_limit", self.queue_limit, 0)
        _above(where, "request_timeout", self.request_timeout)
        _at_least(where, "max_upload_bytes", self.max_upload_bytes, 1)
        if self.min_workers > self.max_workers:
            raise ConfigError(f"{where}: min_workers ({self.min_workers}) is above max_workers "
                              f"({self.max_workers}); raise max_workers or lower min_workers")
        _above(where, "fetch_timeout", self.fetch_timeout)
        AllowList(self.allow_urls, f"{where}.allow_urls")


@dataclass(frozen=True)
class MediaSettings:
    """How uploaded images and videos are decoded (see this module's docstring)."""

    video: VideoInput | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    max_frames: int | None = None

    def check(self, where: str = "media") -> None:
        _at_least(where, "width", self.width, 2)
        _at_least(where, "height", self.height, 2)
        _above(where, "fps", self.fps)
        _at_least(where, "max_frames", self.max_frames, 1)


@dataclass(frozen=True)
class RaySettings:
    """Where and with what the Ray backend deploys (``backend: {ray: {...}}``, see
    :mod:`tidal.serve.ray`): ``address`` of the cluster (none: ``$RAY_ADDRESS``, else a Ray
    started here), each replica's ``num_cpus`` and ``num_gpus`` (fractions allowed), Ray's
    ``runtime_env`` for the replicas."""

    address: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    runtime_env: dict[str, Any] = field(default_factory=dict)

    def check(self, where: str = "backend.ray") -> None:
        _at_least(where, "num_cpus", self.num_cpus, 0)
        _at_least(where, "num_gpus", self.num_gpus, 0)


@dataclass(frozen=True)
class ServiceConfig(ProcessorConfig):
    """A validated service config; the processor spec is checked by name, not imported yet.

    Workers build the processor from :attr:`processor_spec` (it carries the allow-list and the
    folders to import the config's modules from).
    """

    processor: ObjectSpec
    imports: list[str]
    name: str
    project: str = DEFAULT_PROJECT
    http: HTTPSettings = field(default_factory=HTTPSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    backend: str = "local"
    ray: RaySettings = field(default_factory=RaySettings)
    origin: str = ""
    paths: tuple[str, ...] = ()

    def with_http(self, **changes: Any) -> ServiceConfig:
        """A copy with some ``http`` settings changed (checked)."""
        http = dataclasses.replace(self.http, **changes)
        http.check()
        return dataclasses.replace(self, http=http)


def load_service(path: str | Path, http: dict[str, Any] | None = None,
                 media: dict[str, Any] | None = None, backend: Any = None) -> ServiceConfig:
    """Read and check a service config file; ``http``, ``media`` and ``backend`` override its settings."""
    path = Path(path)
    raw = read_config_file(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a service config is one mapping of top-level keys "
                          f"({', '.join(TOP_LEVEL_KEYS)}), got {type(raw).__name__}")
    try:
        return parse_service(raw, str(path), path.parent, http, media, backend)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def service_from_target(target: str, http: dict[str, Any] | None = None,
                        media: dict[str, Any] | None = None, backend: Any = None) -> ServiceConfig:
    """The service for ``package.module:ClassName`` (its module is allowed), default settings."""
    module, _, name = target.partition(":")
    if not module or not name or not all(part.isidentifier() for part in [*module.split("."), name]):
        raise ConfigError(f"{target!r} is neither a service config file nor package.module:ClassName; "
                          "check the path, or write e.g. mypackage.models:Detector")
    data = {"processor": {f"{module}.{name}": {}}, "imports": [module], "name": name}
    return parse_service(data, target, Path.cwd(), http, media, backend)


def parse_service(
    data: dict[str, Any], origin: str, folder: Path = Path("."), http: dict[str, Any] | None = None,
    media: dict[str, Any] | None = None, backend: Any = None,
) -> ServiceConfig:
    """Check a service config's top-level keys, processor spec and settings (``backend``, in the
    file's form, overrides the file's: ``"ray"`` or ``{"ray": {"address": ...}}``)."""
    check_keys(data, TOP_LEVEL_KEYS, " (a service has no source or engine: requests are its input)"
               if {"source", "engine"} & set(data) else "")
    processor = processor_spec_of(data)
    imports, paths = parse_imports(data.get("imports", []), folder)
    config = ServiceConfig(processor, imports, name_of(data, processor), origin=origin, paths=paths)
    check_names(processor, config.allowed)
    http_settings = _settings(HTTPSettings, {**_mapping(data, "http"), **(http or {})}, "http")
    media_settings = _settings(MediaSettings, {**_mapping(data, "media"), **(media or {})}, "media")
    project = data.get("project") or DEFAULT_PROJECT
    if not isinstance(project, str):
        raise ConfigError(f"project: expected a string, got {project!r}")
    backend_name, ray = _backend(data.get("backend"), backend)
    return dataclasses.replace(config, project=project, http=http_settings, media=media_settings,
                               backend=backend_name, ray=ray)


def _backend(value: Any, override: Any) -> tuple[str, RaySettings]:
    """The ``backend`` key: ``"local"`` (the default), ``"ray"`` or ``{ray: {settings}}``; the
    override's name wins, its settings over the file's (for the same backend)."""
    name, settings = _backend_of(value)
    if override is not None:
        new_name, new_settings = _backend_of(override)
        settings = {**settings, **new_settings} if new_name == name else new_settings
        name = new_name
    if settings and name != "ray":
        raise ConfigError(f"backend.{name}: takes no settings, got {settings!r}")
    return name, _settings(RaySettings, settings, "backend.ray")


def _backend_of(value: Any) -> tuple[str, dict[str, Any]]:
    if value is None:
        return "local", {}
    if isinstance(value, dict) and len(value) == 1:
        [(name, settings)] = value.items()
    else:
        name, settings = value, {}
    if name not in BACKENDS or not isinstance(settings, dict):
        raise ConfigError(f"backend: expected {' or '.join(map(repr, BACKENDS))}, or e.g. "
                          f"{{ray: {{address: \"ray://head:10001\", num_gpus: 0.25}}}}; got {value!r}")
    return name, dict(settings or {})


def _mapping(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping of settings, got {value!r}")
    return value


_Settings = typing.TypeVar("_Settings", HTTPSettings, MediaSettings, RaySettings)


def _settings(kind: type[_Settings], values: dict[str, Any], where: str) -> _Settings:
    """Build a settings dataclass from a mapping: unknown keys and wrong types name the key."""
    hints = typing.get_type_hints(kind)
    names = [f.name for f in dataclasses.fields(kind)]
    for key, value in values.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"{where}.{key}: unknown setting; {hint}known: {', '.join(names)}")
        expected = mismatch(value, hints[key])
        if expected is not None:
            raise ConfigError(f"{where}.{key}: expected {expected}, got {value!r} ({type(value).__name__})")
    plain: dict[str, Any] = {key: list(value) if isinstance(value, tuple) else value for key, value in values.items()}
    settings = kind(**plain)
    settings.check(where)
    return settings


def _at_least(where: str, key: str, value: float | None, minimum: float) -> None:
    if value is not None and value < minimum:
        raise ConfigError(f"{where}.{key}: must be at least {minimum}, not {value}")


def _above(where: str, key: str, value: float | None) -> None:
    if value is not None and not value > 0:
        raise ConfigError(f"{where}.{key}: must be above 0, not {value}")
