"""The artifact store: a run's files (models, images, reports), kept through fsspec.

One implementation, :class:`FsspecArtifactStore`, works over any fsspec filesystem; two are
wired up by :func:`open_artifact_store`:

- a local folder, ``<TIDAL_HOME>/artifacts`` by default (the embedded default: no server);
- ``s3://bucket/prefix`` (AWS, MinIO, any S3-protocol server), through s3fs (``pip install
  'tidal[s3]'``). The endpoint comes from ``endpoint_url=`` or the ``TIDAL_S3_ENDPOINT_URL``
  environment variable (empty: AWS); credentials from the usual AWS variables
  (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ...).

An artifact lives at ``<root>/<run_id>/<name>``. Names arrive over HTTP, so both the run id and
the name are validated before any path is built: nothing can be read or written outside
``<root>/<run_id>/``. Files are streamed in small chunks (never read whole), hashed (sha256) and
measured while they are copied, and a write is never visible under its final name half done.

Example::

    store = open_artifact_store()                       # <TIDAL_HOME>/artifacts
    record = store.put_file(run_id, "model_final.pkl")  # ArtifactRecord(size=..., sha256=...)
    with store.open(run_id, "model_final.pkl") as file:
        header = file.read(16)

Errors (all :class:`~tidal.errors.TidalError`, defined in :mod:`tidal.errors`)::

    TidalError
    ├── UsageError
    │   └── ArtifactNameError   a run id or artifact name is not allowed (exit 2)
    ├── ArtifactNotFound        no such artifact in that run (exit 2)
    ├── ArtifactTooLarge        a streamed upload went past its size limit; nothing kept (exit 2)
    └── ArtifactStoreError      the store cannot be reached or written (exit 2)
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import re
import time
import unicodedata
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, NoReturn, cast

from tidal import settings
from tidal.errors import (  # the artifact errors live in tidal.errors; imported from here too
    ArtifactNameError,
    ArtifactNotFound,
    ArtifactStoreError,
    ArtifactTooLarge,
    ConfigError,
    TidalError,
    UsageError,
)

ENDPOINT_ENV = "TIDAL_S3_ENDPOINT_URL"
MAX_NAME_LENGTH = 512
# Small copy chunks keep a put's memory flat (a server may run many uploads at once); the
# filesystem batches them into bigger writes itself.
COPY_CHUNK = 1024 * 1024
# S3 multipart part size. A part is held in memory three times while it is sent (s3fs's buffer,
# the part read out of it, aiohttp's copy), so s3fs's default of 50 MiB is far too big; 8 MiB
# stays above S3's 5 MiB minimum. Bigger files get bigger parts (S3 allows 10,000 parts).
PART_SIZE = 8 * 1024 * 1024
MAX_PARTS = 9_000
# Filesystems whose single write (PUT or multipart upload) only appears once complete.
OBJECT_STORE_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "az", "adl"})

_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


@dataclass(frozen=True)
class ArtifactRecord:
    """What the tracking store keeps about one stored artifact."""

    run_id: str
    name: str
    uri: str
    size: int
    sha256: str
    created_at: float


def validate_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is 1-128 letters, digits, ``-`` or ``_``; else raise.

    The run id becomes a folder name, so anything that could climb out of it is refused.
    """
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise ArtifactNameError(f"run id {run_id!r} is not valid: use 1-128 letters, digits, '-' or '_'")
    return run_id


def normalize_name(name: str) -> str:
    """Return the canonical form of an artifact name (``./a//b`` → ``a/b``), or raise.

    Refused: empty, longer than 512 characters, absolute, ``..`` components, backslashes
    (a Windows separator a client may mean as one), control characters, and ``?``/``#``
    (s3fs reads ``?versionId=`` out of a key; both break download links).
    """
    if not isinstance(name, str) or not name:
        _bad_name(name, "it is empty")
    if len(name) > MAX_NAME_LENGTH:
        _bad_name(name[:40] + "...", f"it is longer than {MAX_NAME_LENGTH} characters")
    if name.startswith("/"):
        _bad_name(name, "it is absolute; give a path relative to the run, like 'models/final.pkl'")
    for character, reason in (("\\", "backslash"), ("?", "'?'"), ("#", "'#'")):
        if character in name:
            _bad_name(name, f"it contains a {reason}; use '/' between folders and plain file names")
    if any(unicodedata.category(character) == "Cc" for character in name):
        _bad_name(name, "it contains a control character (NUL, newline, tab...)")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        _bad_name(name, "it contains a '..' component")
    if not parts:
        _bad_name(name, "it names no file")
    return "/".join(parts)


def _bad_name(name: object, reason: str) -> NoReturn:
    raise ArtifactNameError(f"artifact name {name!r} is not allowed: {reason}")


class ArtifactStore:
    """Where runs keep their files. Subclass it for a new backend (STYLE.md #2)."""

    def put_file(self, run_id: str, path: str | Path, name: str | None = None) -> ArtifactRecord:
        """Copy a local file into the run as ``name`` (default: the file's name).

        The file is streamed, never read whole; its size and sha256 are computed on the way.
        A missing or unreadable ``path`` raises :class:`~tidal.errors.UsageError`.
        """
        raise NotImplementedError

    def put_stream(self, run_id: str, name: str, stream: BinaryIO, max_bytes: int | None = None) -> ArtifactRecord:
        """Store everything read from ``stream`` (an HTTP upload) as ``name``.

        Past ``max_bytes`` raises :class:`ArtifactTooLarge` and nothing is left behind; an error
        raised by ``stream`` itself (a client that went away) propagates unchanged, also leaving
        nothing behind.
        """
        raise NotImplementedError

    def put_bytes(self, run_id: str, name: str, data: bytes) -> ArtifactRecord:
        """Store ``data`` as ``name`` (small artifacts: an encoded image, a JSON report)."""
        raise NotImplementedError

    def open(self, run_id: str, name: str) -> BinaryIO:
        """Open an artifact for streamed reading; a missing one raises :class:`ArtifactNotFound`.

        Close it when done (``with store.open(run, name) as file:``).
        """
        raise NotImplementedError

    def url(self) -> str:
        """The store's root URL, for display (``file:///...`` or ``s3://bucket/prefix``)."""
        raise NotImplementedError

    def check(self) -> None:
        """Raise :class:`ArtifactStoreError` now if the store cannot be used (a server's startup)."""
        raise NotImplementedError

    def delete_run(self, run_id: str) -> None:
        """Remove every artifact of the run (``tidal runs delete``); nothing to remove is fine."""
        raise NotImplementedError


class FsspecArtifactStore(ArtifactStore):
    """An artifact store over any fsspec filesystem, below the folder (or bucket/prefix) ``root``.

    ``hint`` ends every :class:`ArtifactStoreError` message: what to check for this backend.
    Writes go to a temporary name beside the target and are renamed once complete, except on
    object stores, where an upload is only visible once complete anyway.
    """

    def __init__(self, fs: Any, root: str, *, hint: str = "") -> None:
        self.fs = fs
        self.root = root.rstrip("/") or root
        self.hint = hint
        protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
        self.object_store = bool(protocols & OBJECT_STORE_PROTOCOLS)
        self.local = "file" in protocols

    def __repr__(self) -> str:
        return f"FsspecArtifactStore({self.url()!r})"

    def url(self) -> str:
        return str(self.fs.unstrip_protocol(self.root))

    def put_file(self, run_id: str, path: str | Path, name: str | None = None) -> ArtifactRecord:
        path = Path(path)
        name = normalize_name(path.name if name is None else name)
        try:
            source = path.open("rb")
        except OSError as error:
            raise UsageError(f"cannot log {path} as an artifact: {error.strerror or error}; check the path") from error
        with source:
            size = os.fstat(source.fileno()).st_size
            return self._write(run_id, name, source, max_bytes=None, expected_size=size)

    def put_stream(self, run_id: str, name: str, stream: BinaryIO, max_bytes: int | None = None) -> ArtifactRecord:
        return self._write(run_id, normalize_name(name), stream, max_bytes, expected_size=max_bytes)

    def put_bytes(self, run_id: str, name: str, data: bytes) -> ArtifactRecord:
        return self.put_stream(run_id, name, io.BytesIO(data))

    def open(self, run_id: str, name: str) -> BinaryIO:
        name = normalize_name(name)
        path = self._path(run_id, name)
        with self._errors(f"opening {name!r} of run {run_id!r}"):
            try:
                return cast(BinaryIO, self.fs.open(path, "rb", block_size=PART_SIZE))
            except (FileNotFoundError, IsADirectoryError) as error:
                raise ArtifactNotFound(f"run {run_id!r} has no artifact {name!r} in the store {self.url()}") from error

    def check(self) -> None:
        with self._errors("checking the store"):
            if self.object_store:
                self.fs.info(self.root.split("/")[0])  # the bucket: raises if missing or unreachable
            else:
                self.fs.makedirs(self.root, exist_ok=True)
                if self.local and not os.access(self.root, os.W_OK):
                    raise PermissionError(f"{self.root} is not writable")

    def delete_run(self, run_id: str) -> None:
        folder = posixpath.join(self.root, validate_run_id(run_id))
        with self._errors(f"deleting the artifacts of run {run_id!r}"):
            if self.fs.exists(folder):
                self.fs.rm(folder, recursive=True)

    def _path(self, run_id: str, name: str) -> str:
        """``<root>/<run_id>/<name>``, from validated parts only."""
        run_folder = posixpath.join(self.root, validate_run_id(run_id))
        path = posixpath.join(run_folder, normalize_name(name))
        if not path.startswith(run_folder + "/"):  # cannot happen; a last line of defence
            _bad_name(name, "it leaves the run's folder")
        return path

    def _write(
        self, run_id: str, name: str, stream: IO[bytes], max_bytes: int | None, expected_size: int | None
    ) -> ArtifactRecord:
        """Copy ``stream`` to the artifact's place; on any failure leave nothing behind."""
        final = self._path(run_id, name)
        temp = self._temporary_path(final)
        what = f"{name!r} of run {run_id!r}"
        target = self._open_for_write(temp, expected_size, what)
        committed = False
        try:
            size, sha256 = self._copy(stream, target, max_bytes, what)
            with self._errors(f"writing {what}"):
                target.close()
                self._commit(temp, final)
            committed = True
        finally:
            if not committed:
                self._discard(target, temp)
        uri = str(self.fs.unstrip_protocol(final))
        return ArtifactRecord(run_id, name, uri, size, sha256, time.time())

    def _temporary_path(self, final: str) -> str:
        """Where a write goes until complete: beside the target, so the rename stays atomic."""
        if self.object_store:
            return final  # an upload is invisible until complete; a rename would copy it all
        return posixpath.join(posixpath.dirname(final), f".tidal-upload-{uuid.uuid4().hex}")

    def _open_for_write(self, path: str, expected_size: int | None, what: str) -> Any:
        with self._errors(f"writing {what}"):
            if not self.object_store:
                self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
            return self.fs.open(path, "wb", block_size=_part_size(expected_size))

    def _copy(self, stream: IO[bytes], target: Any, max_bytes: int | None, what: str) -> tuple[int, str]:
        """Stream ``stream`` into ``target`` chunk by chunk; return (size, sha256 hex)."""
        digest = hashlib.sha256()
        size = 0
        while True:
            chunk = stream.read(COPY_CHUNK)  # the caller's stream: its errors are its own
            if not chunk:
                return size, digest.hexdigest()
            size += len(chunk)
            if max_bytes is not None and size > max_bytes:
                raise ArtifactTooLarge(
                    f"artifact {what} is larger than the limit of {max_bytes} bytes; nothing was stored"
                )
            digest.update(chunk)
            with self._errors(f"writing {what}"):
                target.write(chunk)
            del chunk  # else the next read allocates while this chunk is still held

    def _commit(self, temp: str, final: str) -> None:
        """Give the complete file its final name (nothing to do on object stores)."""
        if temp == final:
            return
        if self.local:
            os.replace(temp, final)  # atomic; shutil.move (fsspec's mv) would move *into* a folder
        else:
            self.fs.mv(temp, final)

    def _discard(self, target: Any, temp: str) -> None:
        """Best effort: drop a write that failed; the original error is what the caller sees."""
        with suppress(Exception):  # cleanup must not hide the error being raised
            if self.object_store:
                target.discard()  # aborts the multipart upload; nothing was PUT yet
                target.closed = True  # else closing (or garbage collection) would commit
            else:
                target.close()
                self.fs.rm_file(temp)

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn a filesystem's (or botocore's) exception into an ArtifactStoreError with a hint."""
        try:
            yield
        except TidalError:
            raise
        except Exception as error:
            detail = f"{type(error).__name__}: {error}"
            raise ArtifactStoreError(
                f"artifact store {self.url()}: {action} failed ({detail}). {self.hint}".rstrip()
            ) from error


def _part_size(expected_size: int | None) -> int:
    """Part size for a file of about ``expected_size`` bytes, within S3's part count limit."""
    return max(PART_SIZE, -(-(expected_size or 0) // MAX_PARTS))


def open_artifact_store(
    url: str | None = None,
    *,
    home: Path | None = None,
    endpoint_url: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> ArtifactStore:
    """The artifact store at ``url``: a folder path, ``file://`` URL or ``s3://bucket/prefix``.

    ``None`` means ``<home>/artifacts`` (``home`` defaults to TIDAL_HOME). For S3, the endpoint is
    ``endpoint_url`` or ``$TIDAL_S3_ENDPOINT_URL``; ``storage_options`` go to s3fs unchanged
    (e.g. ``{"config_kwargs": {"connect_timeout": 2}}``). Nothing is contacted until first use
    (call :meth:`ArtifactStore.check` to fail early).

    >>> open_artifact_store("s3://models/tidal", endpoint_url="http://127.0.0.1:9000").url()
    's3://models/tidal'
    """
    if url is None:
        return _local_store((home or settings.home()) / "artifacts")
    if url.startswith("s3://"):
        return _s3_store(url, endpoint_url or settings.s3_endpoint_url(), storage_options or {})
    if url.startswith("file://"):
        return _local_store(_file_url_path(url))
    if "://" in url or "::" in url or not url.strip():
        raise ConfigError(
            f"artifact store URL {url!r} is not supported: use a folder path, a file:// URL or s3://bucket/prefix"
        )
    return _local_store(Path(url))


def _file_url_path(url: str) -> Path:
    parsed = urllib.parse.urlsplit(url)
    if parsed.netloc not in ("", "localhost") or not parsed.path:
        raise ConfigError(f"artifact store URL {url!r} is not a local file URL: write file:///absolute/path")
    return Path(urllib.request.url2pathname(parsed.path))


def _local_store(folder: Path) -> FsspecArtifactStore:
    from fsspec.implementations.local import LocalFileSystem

    # absolute now, so a later chdir cannot move the store
    root = folder.expanduser().absolute().as_posix()
    hint = "Check that the folder can be created and written, and that the disk is not full."
    return FsspecArtifactStore(LocalFileSystem(), root, hint=hint)


def _s3_store(url: str, endpoint_url: str | None, storage_options: dict[str, Any]) -> FsspecArtifactStore:
    bucket_and_prefix = url[len("s3://") :].strip("/")
    bucket = bucket_and_prefix.split("/")[0]
    if not bucket:
        raise ConfigError(f"artifact store URL {url!r} names no bucket: write s3://bucket/prefix")
    try:
        import fsspec

        # no instance cache: each store is its own, with the credentials of the moment
        fs = fsspec.filesystem("s3", endpoint_url=endpoint_url, skip_instance_cache=True, **storage_options)
    except ImportError as error:
        raise ConfigError(f"artifact store {url} needs s3fs: pip install 'tidal[s3]' ({error})") from error
    where = endpoint_url or f"the AWS endpoint (set ${ENDPOINT_ENV} for MinIO and others)"
    hint = (
        f"Check that {where} is reachable, that bucket {bucket!r} exists, and the credentials "
        "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)."
    )
    return FsspecArtifactStore(fs, bucket_and_prefix, hint=hint)
