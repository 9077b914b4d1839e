"""Every error tidal raises on purpose derives from one root, :class:`TidalError`.

The hierarchy (exit code for the CLI, HTTP status for the tracking server)::

    TidalError                  root                                              exit 1  400
    ├── ConfigError             a config file or value is wrong                   exit 2  400
    │   └── TokenRefused        the server's token is missing or wrong                    401
    ├── UsageError              a command was called wrongly: unknown job, bad    exit 2  400
    │   │                       flag value, a request the server cannot take
    │   ├── RunNotFound         no run with that id in the store                          404
    │   ├── RunExists           a run with that id is already in the store                409
    │   ├── JobNotFound         no job with that id (or id prefix) in the store           404
    │   ├── ArtifactNameError   a run id or artifact name is not allowed                  400
    │   └── RequestTooLarge     a request body or upload past the server's limit          413
    ├── SourceError             an input cannot be listed or read (a missing      exit 2  400
    │   │                       file, an empty glob)
    │   └── DecodeError         one file or item cannot be decoded (corrupt,      exit 1  400
    │                           truncated, not media)
    ├── ProcessorError          user code raised inside setup/process             exit 1  400
    ├── TrainingError           ``tidal train`` cannot go on: NaN loss, shapes    exit 1  400
    │                           the loss refuses, a checkpoint that cannot be read
    ├── StoreError              TIDAL_HOME, the SQLite file or the store's        exit 2  503
    │                           server cannot be used
    ├── JobLockedError          another ``tidal map`` is running the same job     exit 2  409
    ├── ArtifactNotFound        no such artifact in that run                      exit 2  404
    ├── ArtifactTooLarge        a streamed upload went past its size limit        exit 2  413
    ├── ArtifactStoreError      the artifact store cannot be reached or written   exit 2  503
    ├── RequestError            ``tidal serve`` refuses a request (its own status: a bad
    │                           body, an upload too large, a processor hook's 4xx)
    ├── ProtocolError           a model worker broke the front↔worker protocol (the
    │                           worker is killed and replaced)
    └── PipelineError           a pipeline step's environment failed to install, or its
                                code changed while it ran

Over HTTP an error travels as ``{"error": message, "type": name}`` with the class's
``http_status``; :data:`HTTP_ERRORS` is the one list of the names a tidal server answers with,
and the client (``tidal.tracking.httpstore.HTTPStore``) raises the class of that name again, so
``except RunNotFound`` works the same against a local store and a team server::

    status, name = error.http_status, http_name(type(error))      # the server answering
    raise (error_by_name(name) or UsageError)(message)             # the client raising

Dependencies' exceptions (PyAV, sqlite3, Pillow) are wrapped where they enter tidal, so a user
always reads what was wrong, where, and what to do.
"""

from __future__ import annotations


class TidalError(Exception):
    """Root of tidal's errors. The message says what, where, and the fix."""

    exit_code: int = 1
    # the status a tidal server answers with; 400 because bad input must never look like a 500
    http_status: int = 400


class ConfigError(TidalError):
    """A config file or one of its values is wrong; the message names file and config path."""

    exit_code = 2


class TokenRefused(ConfigError):
    """The tidal server refused the request's token: for a client, TIDAL_TOKEN is not set right."""

    http_status = 401


class UsageError(TidalError):
    """A command was called wrongly (unknown job id, bad option value)."""

    exit_code = 2


class RunNotFound(UsageError):
    """No run with that id in this store."""

    http_status = 404


class RunExists(UsageError):
    """A run with that id is already in the store (409; a client retrying a create ignores it)."""

    http_status = 409


class JobNotFound(UsageError):
    """No job with that id (or unique id prefix) in this store."""

    http_status = 404


class ArtifactNameError(UsageError):
    """A run id or artifact name is not allowed (absolute, ``..``, control characters...)."""


class RequestTooLarge(UsageError):
    """A request body (or an artifact upload) is larger than the tidal server accepts."""

    http_status = 413


class SourceError(TidalError):
    """An input cannot be listed or opened: a missing path, an empty glob, an unreadable file."""

    exit_code = 2


class DecodeError(SourceError):
    """One file or item cannot be decoded: corrupt, truncated, or not the media it claims."""

    exit_code = 1


class ProcessorError(TidalError):
    """User code raised inside ``setup``, ``process`` or ``teardown``."""


class TrainingError(TidalError):
    """A training cannot go on (``tidal train``): the message names the cycle, epoch and step, and
    the checkpoint to resume from."""


class StoreError(TidalError):
    """The state folder (TIDAL_HOME), its SQLite file or the store's server cannot be used."""

    exit_code = 2
    http_status = 503  # the store is down, not the request wrong: clients retry


class JobLockedError(TidalError):
    """Another process is already running this job."""

    exit_code = 2
    http_status = 409


class ArtifactNotFound(TidalError):
    """The run has no artifact of that name."""

    exit_code = 2
    http_status = 404


class ArtifactTooLarge(TidalError):
    """A streamed upload went past its size limit; nothing was kept."""

    exit_code = 2
    http_status = 413


class ArtifactStoreError(TidalError):
    """The artifact store cannot be reached or written (endpoint, bucket, credentials, disk)."""

    exit_code = 2
    http_status = 503


class RequestError(TidalError):
    """A request a service refuses: the HTTP ``status`` and a message for the client. (Answered
    with that status by ``tidal serve``; not in :data:`HTTP_ERRORS`, which the tracking server
    answers with.)

    Raise it from a processor's ``preprocess`` or ``postprocess`` to answer a 4xx instead of a 500::

        if len(request.text) > 10_000:
            raise RequestError(413, "text longer than 10000 characters; split it")
    """

    def __init__(self, status: int, message: str, detail: object = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail


class ProtocolError(TidalError):
    """A message that breaks the front↔worker protocol of ``tidal serve``: an unknown tag, wrong
    fields, or a kind the receiver does not expect. The sender cannot be trusted any more."""

    http_status = 502


class PipelineError(TidalError):
    """A pipeline step cannot run or cannot be trusted: its environment failed to install, its
    code changed while it ran. The message names the step; finished steps keep their results."""


# The names a tidal server answers with, each the name of its class.
HTTP_ERRORS: dict[str, type[TidalError]] = {error.__name__: error for error in (
    TidalError, ConfigError, TokenRefused, UsageError, RunNotFound, RunExists, JobNotFound, ArtifactNameError,
    RequestTooLarge, SourceError, DecodeError, ProcessorError, StoreError, JobLockedError, ArtifactNotFound,
    ArtifactTooLarge, ArtifactStoreError, ProtocolError, TrainingError, PipelineError,
)}


def error_by_name(name: str) -> type[TidalError] | None:
    """The class a server's error ``type`` names, or None for a name tidal does not send
    (a validation error, an unknown endpoint: the client then goes by the status)."""
    return HTTP_ERRORS.get(name)


def http_name(error: type[TidalError]) -> str:
    """The name ``error`` travels under: its own, or its nearest ancestor's when it is defined
    outside this module (a client can only raise classes it knows)."""
    return next(kind.__name__ for kind in error.__mro__ if HTTP_ERRORS.get(kind.__name__) is kind)
