"""``tidal serve TARGET``: a processor behind HTTP; its model worker starts on demand, stops when idle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer


def serve(
    target: Annotated[str, typer.Argument(help="A service config file (hjson, JSON, YAML, TOML) or "
                                                "package.module:ClassName.")],
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    idle_timeout: Annotated[Optional[float], typer.Option(
        help="Seconds without a request before a worker exits (default 300).")] = None,
    min_workers: Annotated[Optional[int], typer.Option(help="Workers kept while idle (default 0).")] = None,
    max_workers: Annotated[Optional[int], typer.Option(help="Workers started under load (default 1).")] = None,
    max_batch_size: Annotated[Optional[int], typer.Option(
        help="Items per process() call (default: the processor's batch_size).")] = None,
    max_wait_ms: Annotated[Optional[float], typer.Option(
        help="How long a batch may wait to fill (default 0: never wait).")] = None,
    queue_limit: Annotated[Optional[int], typer.Option(
        help="Requests held while no worker can take them; more get 503 (default 100).")] = None,
    request_timeout: Annotated[Optional[float], typer.Option(
        help="Seconds before a request gets 504, waiting included (default 120).")] = None,
    max_upload_bytes: Annotated[Optional[int], typer.Option(help="Body size limit (default 100 MiB).")] = None,
    allow_url: Annotated[Optional[list[str]], typer.Option(
        help="A URL prefix {\"url\": ...} requests may name, e.g. s3://uploads (repeatable).")] = None,
    fetch_timeout: Annotated[Optional[float], typer.Option(
        help="Seconds a URL's fetch may take in all before a 504 (default 60).")] = None,
    video: Annotated[Optional[str], typer.Option(
        help="How uploaded videos become items: frames (one per frame) or clip (one per video).")] = None,
    backend: Annotated[Optional[str], typer.Option(
        help="Where model workers run: local (processes here, the default) or ray (Ray Serve replicas, "
             "scaled from zero).")] = None,
    address: Annotated[Optional[str], typer.Option(
        help="The Ray cluster for --backend ray (implies it): ray://head:10001, head:6379 or auto (default: "
             "$RAY_ADDRESS, else a Ray started here).")] = None,
    track: Annotated[bool, typer.Option(help="Record the service as a tracked run.")] = True,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve a processor over HTTP: POST /v1/predict, GET /healthz /readyz /metrics /docs.

    The front holds requests while the model worker starts, and stops the worker after
    --idle-timeout seconds without a request (scale to zero).
    """
    from tidal.serve.app import serve as run_front
    from tidal.serve.config import load_service, service_from_target

    overrides = _overrides(idle_timeout=idle_timeout, min_workers=min_workers, max_workers=max_workers,
                           max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, queue_limit=queue_limit,
                           request_timeout=request_timeout, max_upload_bytes=max_upload_bytes, allow_urls=allow_url,
                           fetch_timeout=fetch_timeout)
    media = _overrides(video=video)
    where = _backend_override(backend, address)
    if Path(target).is_file() or ":" not in target:
        config = load_service(target, overrides, media, where)
    else:
        config = service_from_target(target, overrides, media, where)
    run_front(config, host, port, track=track, log_level=log_level.lower(), access_log=access_log)


def _backend_override(backend: str | None, address: str | None) -> Any:
    """``--backend``/``--address`` as the config's ``backend`` key (None: the config's own)."""
    if address is None:
        return backend
    if backend not in (None, "ray"):
        raise typer.BadParameter(f"--address is the Ray cluster's; it does not go with --backend {backend}")
    return {"ray": {"address": address}}


def _overrides(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}
