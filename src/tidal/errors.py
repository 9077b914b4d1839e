"""Every error tidal raises on purpose derives from one root, :class:`TidalError`.

The hierarchy::

    TidalError                  root; ``exit_code`` is what the CLI exits with
    ├── ConfigError             a config file or value is wrong (exit 2)
    ├── UsageError              a command was called wrongly: unknown job, bad flag value (exit 2)
    ├── SourceError             an input cannot be listed or read (a missing file, an empty glob)
    │   └── DecodeError         one file or item cannot be decoded (corrupt, truncated, not media)
    ├── ProcessorError          user code raised inside setup/process
    ├── StoreError              TIDAL_HOME, the SQLite file or the store's server cannot be used
    ├── JobLockedError          another ``tidal map`` is running the same job (exit 2)
    ├── (in tidal.tracking)     RunNotFound, RunExists, ArtifactNameError (UsageError),
    │                           ArtifactNotFound, ArtifactTooLarge, ArtifactStoreError
    └── (in tidal.serve)        RequestError: a processor's hook answering a request with a 4xx

Dependencies' exceptions (PyAV, sqlite3, Pillow) are wrapped where they enter tidal, so a user
always reads what was wrong, where, and what to do.
"""

from __future__ import annotations


class TidalError(Exception):
    """Root of tidal's errors. The message says what, where, and the fix."""

    exit_code: int = 1


class ConfigError(TidalError):
    """A config file or one of its values is wrong; the message names file and config path."""

    exit_code = 2


class UsageError(TidalError):
    """A command was called wrongly (unknown job id, bad option value)."""

    exit_code = 2


class SourceError(TidalError):
    """An input cannot be listed or opened: a missing path, an empty glob, an unreadable file."""

    exit_code = 2


class DecodeError(SourceError):
    """One file or item cannot be decoded: corrupt, truncated, or not the media it claims."""

    exit_code = 1


class ProcessorError(TidalError):
    """User code raised inside ``setup``, ``process`` or ``teardown``."""


class StoreError(TidalError):
    """The state folder (TIDAL_HOME) or its SQLite file cannot be used."""

    exit_code = 2


class JobLockedError(TidalError):
    """Another process is already running this job."""

    exit_code = 2
