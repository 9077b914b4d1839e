"""Defaults and settings, in one place. Each can be set by the environment variable named.

| setting | env var | default | note |
| --- | --- | --- | --- |
| home | ``TIDAL_HOME`` | ``./.tidal`` | the state folder: ``tidal.db`` (SQLite) and per-job folders |
| allow | ``TIDAL_ALLOW`` | (empty) | comma-separated module prefixes configs may name, besides ``tidal`` |
| batch_size | - | 16 | items per ``process`` call when a processor declares none |
| segment_frames | - | 256 | a video is cut at keyframes into segments of at least this many frames |
| images_per_partition | - | 64 | images per partition for the ``Images`` source |
| MEDIA_RANGE_BYTES | - | 1 MiB | a video in an object store is fetched in ranges this big while a segment decodes (a seek wastes at most one) |
| MEDIA_STREAM_BYTES | - | 8 MiB | an object read through (a video listed, a tar shard, a clip, an image) is fetched in ranges this big |
| inflight_per_worker | - | 2 | partitions queued ahead per worker (bounds memory) |
| ray_batches_ahead | - | 4 | batches a Ray worker may produce before the driver collects them (bounds the object store) |
| tracking_uri | ``TIDAL_TRACKING_URI`` | embedded | ``sqlite:///...``, ``postgresql://...``, ``http(s)://`` |
| token | ``TIDAL_TOKEN`` | (empty) | bearer token for a tidal server |
| artifacts | ``TIDAL_ARTIFACTS`` | ``<home>/artifacts`` | a SQL store's files: a folder or ``s3://bucket/x`` |
| s3_endpoint_url | ``TIDAL_S3_ENDPOINT_URL`` | (AWS) | an S3-protocol endpoint (MinIO); keys: ``AWS_*`` |
| spool_folder | ``TIDAL_SPOOL`` | ``<home>/spool`` | records a run's store could not take yet (``tidal sync``) |
| console_capture | ``TIDAL_CAPTURE`` | ``fd`` | a run's console: ``fd`` (descriptors 1, 2), ``python`` or ``off`` |
| FLUSH_SECONDS | - | 0.5 | a run's writer sends what was logged this often (``kill -9`` loses that) |
| RECONNECT_SECONDS | - | 2 | a run's store away: tried again this often (growing to 30 s) |
| EXIT_STALL_SECONDS | - | 10 | at exit, a writer stuck this long is given up on: the rest is spooled |
| ray_address | ``TIDAL_RAY_ADDRESS`` | (none) | ``tidal submit``'s Ray head: its dashboard, ``http://head:8265`` |
| submit_max_bytes | ``TIDAL_SUBMIT_MAX_SIZE`` | 100MiB | the largest working directory ``tidal submit`` sends |
| remote_run_id | ``TIDAL_RUN_ID`` | (none) | set in a submitted job: the run ``tidal.init()`` attaches to |
| queue_autoscaling | ``TIDAL_QUEUE_AUTOSCALING`` | off | hand a run that does not fit to Ray anyway when none waits there (Ray's autoscaler adds the node) |
| QUEUE_POLL_SECONDS | - | 2 | how often the server's dispatcher looks at the queue and at Ray |
| QUEUE_MAX_PENDING | - | 4 | runs handed to one Ray cluster and not started there yet, at most |
| queue_backfill_seconds | ``TIDAL_QUEUE_BACKFILL_SECONDS`` | 300 | how long smaller runs may go past a cluster's first waiting run; after that it holds the queue until it starts (``inf``: never) |
"""

from __future__ import annotations

import os
from pathlib import Path

from tidal.errors import ConfigError

DEFAULT_BATCH_SIZE = 16
SEGMENT_FRAMES = 256
IMAGES_PER_PARTITION = 64
MEDIA_RANGE_BYTES = 1 << 20  # S3 answers a range in ~20 ms: 1 MiB keeps the wait below the transfer
MEDIA_STREAM_BYTES = 8 << 20
INFLIGHT_PER_WORKER = 2
RAY_BATCHES_AHEAD = 4
DB_FILENAME = "tidal.db"
FLUSH_SECONDS = 0.5
RECONNECT_SECONDS = 2.0
EXIT_STALL_SECONDS = 10.0  # a busy server may take seconds per request; one that is down fails at once
CONSOLE_CAPTURE_MODES = ("fd", "python", "off")
SUBMIT_MAX_SIZE = "100MiB"
QUEUE_POLL_SECONDS = 2.0
QUEUE_MAX_PENDING = 4  # each job Ray starts costs its head a supervisor (~85 MB): the queue feeds it slowly
QUEUE_BACKFILL_SECONDS = 300.0


def home() -> Path:
    """The state folder: ``$TIDAL_HOME`` or ``./.tidal``."""
    return Path(os.environ.get("TIDAL_HOME") or ".tidal").expanduser()


def allowed_modules() -> list[str]:
    """Module prefixes from ``$TIDAL_ALLOW`` (comma-separated) that configs may name."""
    raw = os.environ.get("TIDAL_ALLOW", "")
    return [name.strip() for name in raw.split(",") if name.strip()]


def _text(name: str) -> str | None:
    """An environment variable's value, None when unset or empty."""
    return os.environ.get(name) or None


def tracking_uri() -> str | None:
    """``$TIDAL_TRACKING_URI``: the store of runs and jobs (None: the embedded SQLite file)."""
    return _text("TIDAL_TRACKING_URI")


def token() -> str | None:
    """``$TIDAL_TOKEN``: the bearer token sent to a tidal server."""
    return _text("TIDAL_TOKEN")


def artifacts_url() -> str | None:
    """``$TIDAL_ARTIFACTS``: where a SQL store keeps files (None: ``<home>/artifacts``)."""
    return _text("TIDAL_ARTIFACTS")


def s3_endpoint_url() -> str | None:
    """``$TIDAL_S3_ENDPOINT_URL``: an S3-protocol endpoint (MinIO); None means AWS."""
    return _text("TIDAL_S3_ENDPOINT_URL")


def spool_folder() -> Path:
    """``$TIDAL_SPOOL``: where runs keep what their store could not take yet (``<home>/spool``)."""
    folder = _text("TIDAL_SPOOL")
    return Path(folder).expanduser() if folder else home() / "spool"


def console_capture() -> str:
    """``$TIDAL_CAPTURE``: how a run captures its console, ``fd`` (default), ``python`` or ``off``."""
    mode = (_text("TIDAL_CAPTURE") or "fd").strip().lower()
    if mode not in CONSOLE_CAPTURE_MODES:
        raise ConfigError(f"TIDAL_CAPTURE={mode!r} is not a capture mode; use one of "
                          f"{', '.join(CONSOLE_CAPTURE_MODES)}")
    return mode


def ray_address() -> str | None:
    """``$TIDAL_RAY_ADDRESS``: the Ray head ``tidal submit`` sends runs to (its dashboard, http://head:8265)."""
    return _text("TIDAL_RAY_ADDRESS")


def submit_max_bytes() -> int:
    """``$TIDAL_SUBMIT_MAX_SIZE`` (like 100MiB): the largest working directory ``tidal submit`` sends."""
    from tidal.cli.server import parse_size

    return parse_size(_text("TIDAL_SUBMIT_MAX_SIZE") or SUBMIT_MAX_SIZE, "TIDAL_SUBMIT_MAX_SIZE")


def remote_run_id() -> str | None:
    """``$TIDAL_RUN_ID``: in a job ``tidal submit`` started, the run ``tidal.init()`` attaches to."""
    return _text("TIDAL_RUN_ID")


def queue_backfill_seconds() -> float:
    """``$TIDAL_QUEUE_BACKFILL_SECONDS`` (300): how long the first run waiting for a cluster lets smaller
    runs behind it go first; once it has waited longer, nothing behind it starts until it has."""
    raw = _text("TIDAL_QUEUE_BACKFILL_SECONDS")
    if raw is None:
        return QUEUE_BACKFILL_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # NaN too
        raise ConfigError(f"TIDAL_QUEUE_BACKFILL_SECONDS={raw!r} is not a number of seconds: give one like 300 "
                          "(0: the first waiting run holds the queue at once; inf: never)")
    return seconds


def queue_autoscaling() -> bool:
    """``$TIDAL_QUEUE_AUTOSCALING``: 1 when Ray's autoscaler adds nodes, so a run that does not fit
    the nodes up now is handed over anyway (one at a time) for Ray to scale up."""
    return (_text("TIDAL_QUEUE_AUTOSCALING") or "0").strip().lower() in ("1", "true", "yes", "on")
