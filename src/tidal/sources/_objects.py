"""Media in object stores: ``s3://`` (AWS, MinIO) and any other fsspec URL (``gs://``, ``az://``...).

What a source needs from a bucket, without downloading what it does not read:

- listing by glob (``s3://bucket/videos/**/*.mp4``), by prefix (every object under it ending in
  one of the source's extensions) or one object;
- a fingerprint per object from what the listing says (its size and ETag, or the store's own
  content hash), so listing a million objects reads none of them;
- reads through a seekable file that fetches byte ranges as they are read: decoding one segment of
  a video fetches the container's index and that segment's bytes, not the whole object. s3fs sends
  ``If-Match`` with the ETag seen at opening, so an object replaced mid-read is an error, never a
  mix of two versions.

The S3 endpoint is the reading process's ``$TIDAL_S3_ENDPOINT_URL``, else the one of the process
that built the source (a worker on another machine needs no setting; a cluster may still point its
workers at an address of its own), else AWS. Credentials never travel with a source: each machine
uses its own (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, an instance role).
Other fsspec options come from fsspec's configuration (``FSSPEC_S3_ANON=true`` for a public bucket).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tidal import settings
from tidal.errors import DecodeError, SourceError, TidalError

S3_PROTOCOLS = ("s3", "s3a")
# What names an object's content in a listing, by store: S3 and HTTP (ETag), Azure (etag), GCS.
IDENTITY_FIELDS = ("ETag", "etag", "md5Hash", "crc32c", "generation")
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
GLOB_CHARACTERS = "*?["
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_LOCAL_SCHEMES = ("pkg",)  # pkg://<package>/<path> names a file inside an installed package

log = logging.getLogger(__name__)
_filesystems: dict[tuple[int, str, str | None, str], Any] = {}
_filesystems_lock = threading.Lock()

Sampler = Callable[[Any, int], str]


def is_url(entry: str) -> bool:
    """Whether ``entry`` is an fsspec URL (``s3://b/k``, ``gs://...``), not a local path."""
    match = _URL.match(entry)
    return match is not None and match.group(1).lower() not in _LOCAL_SCHEMES


def filesystem(url: str, endpoint: str | None) -> Any:
    """The fsspec filesystem for ``url``'s protocol: one per process, endpoint and credentials.

    Listings are never cached (a file listed again must show its new ETag), and a filesystem is
    not shared with a forked child (its event loop and connections belong to the parent).
    """
    protocol = _protocol(url)
    endpoint = (settings.s3_endpoint_url() or endpoint) if protocol in S3_PROTOCOLS else None
    credentials = hashlib.sha256(repr([os.environ.get(name) for name in CREDENTIAL_VARIABLES]).encode())
    key = (os.getpid(), protocol, endpoint, credentials.hexdigest())
    with _filesystems_lock:
        if key not in _filesystems:
            _filesystems[key] = _new_filesystem(url, protocol, endpoint)
        return _filesystems[key]


def _new_filesystem(url: str, protocol: str, endpoint: str | None) -> Any:
    import fsspec

    options: dict[str, Any] = {"skip_instance_cache": True, "use_listings_cache": False}
    if endpoint:
        options["endpoint_url"] = endpoint
    try:
        return fsspec.filesystem(protocol, **options)
    except ImportError as error:
        extra = "pip install 'tidal[s3]'" if protocol in S3_PROTOCOLS else "install the fsspec package it names"
        raise SourceError(f"reading {url} needs a {protocol}:// filesystem: {extra} ({error})") from error
    except ValueError as error:
        raise SourceError(
            f"{url}: no fsspec filesystem reads {protocol}:// ({error}); "
            "check the URL, or give a local path"
        ) from error


def _protocol(url: str) -> str:
    match = _URL.match(url)
    assert match is not None, url
    return match.group(1).lower()


def _bucket(url: str) -> str:
    """The bucket (or container, or host) of a URL: its first component."""
    return url.split("://", 1)[1].split("/", 1)[0]


# listing


def list_objects(
    entry: str, extensions: tuple[str, ...], endpoint: str | None, sample: Sampler
) -> dict[str, str]:
    """``{url: fingerprint}`` of the objects ``entry`` names: a glob, a prefix or one object.

    Raise SourceError naming the bucket and the cause when it cannot be listed (credentials
    refused, no such bucket, endpoint unreachable) or names nothing. ``sample`` fingerprints an
    object whose listing holds no content hash, from an opened file and its size.
    """
    fs = filesystem(entry, endpoint)
    with listing_errors(entry, endpoint):
        infos = _matching(fs, entry, extensions)
        if not infos:
            _refuse_empty(fs, entry, extensions)
        return {fs.unstrip_protocol(info["name"]): object_fingerprint(fs, info, sample) for info in infos}


def _matching(fs: Any, entry: str, extensions: tuple[str, ...]) -> list[dict[str, Any]]:
    if any(character in entry.split("://", 1)[1] for character in GLOB_CHARACTERS):
        return [info for info in fs.glob(entry, detail=True).values() if info.get("type") == "file"]
    try:
        info = fs.info(entry)
    except FileNotFoundError:
        return []
    if info.get("type") == "file":
        return [info]
    suffixes = tuple(f".{extension.lower().lstrip('.')}" for extension in extensions)
    found = fs.find(entry, detail=True).values()
    return [info for info in found if info.get("type") == "file" and info["name"].lower().endswith(suffixes)]


def _refuse_empty(fs: Any, entry: str, extensions: tuple[str, ...]) -> None:
    """Raise SourceError for an entry naming nothing, saying whether its bucket exists."""
    bucket = _bucket(entry)
    fs.info(f"{_protocol(entry)}://{bucket}")  # a missing bucket or refused credentials raise here
    if any(character in entry for character in GLOB_CHARACTERS):
        raise SourceError(
            f"{entry} matched no object in bucket {bucket!r}; check the pattern (object names are case-sensitive)"
        )
    suffixes = ", ".join(f".{extension}" for extension in extensions)
    raise SourceError(
        f"{entry} names no object in bucket {bucket!r} (nor a prefix holding objects ending in "
        f"{suffixes}); check the name, or name the objects with a glob"
    )


@contextmanager
def listing_errors(entry: str, endpoint: str | None) -> Iterator[None]:
    """Turn a filesystem's (or botocore's) exception into a SourceError naming bucket and cause."""
    try:
        yield
    except TidalError:
        raise
    except Exception as error:
        raise SourceError(f"cannot list {entry}: {_trouble(error, entry, endpoint)}") from error


def _trouble(error: Exception, url: str, endpoint: str | None) -> str:
    """What went wrong with ``url``'s bucket, and what to do about it."""
    bucket = _bucket(url)
    where = _where(url, endpoint)
    cause = f"{type(error).__name__}: {error}"
    if isinstance(error, PermissionError):
        return (
            f"bucket {bucket!r} at {where} refused the credentials ({cause}); check AWS_ACCESS_KEY_ID "
            "and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and that they may read the bucket"
        )
    if isinstance(error, FileNotFoundError):
        return f"bucket {bucket!r} does not exist at {where} ({cause}); check its name and the endpoint"
    return f"bucket {bucket!r} at {where} could not be read ({cause}); check that {where} is reachable"


def _where(url: str, endpoint: str | None) -> str:
    if _protocol(url) not in S3_PROTOCOLS:
        return f"{_protocol(url)}://"
    endpoint = settings.s3_endpoint_url() or endpoint
    return endpoint or "AWS (set TIDAL_S3_ENDPOINT_URL for MinIO and other S3 servers)"


def object_fingerprint(fs: Any, info: dict[str, Any], sample: Sampler) -> str:
    """12 hex digits naming an object's content: its size and content hash from ``info``.

    The VersionId counts only on a version-aware filesystem (elsewhere a HEAD shows it and a
    listing does not). A store listing no content hash is sampled like a local file.
    """
    identity = [f"{field}={info[field]}" for field in IDENTITY_FIELDS if info.get(field)]
    if getattr(fs, "version_aware", False) and info.get("VersionId"):
        identity.append(f"VersionId={info['VersionId']}")
    if not identity:
        with fs.open(info["name"], "rb") as file:
            return sample(file, int(info["size"]))
    text = "\n".join([f"size={info['size']}", *identity])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# reading


def open_object(
    url: str, expected: str | None, endpoint: str | None, block_size: int, sample: Sampler
) -> ObjectReader:
    """``url`` opened for reading in ranges of ``block_size`` bytes, its fingerprint checked.

    Raise DecodeError naming the URL when it is gone, unreadable, or no longer the object listed
    (``expected``; None skips the check).
    """
    fs = filesystem(url, endpoint)
    try:
        file = fs.open(url, "rb", block_size=block_size, cache_type="readahead")
    except FileNotFoundError as error:
        raise DecodeError(f"cannot read {url}: it no longer exists; run the job again to list it anew") from error
    except Exception as error:
        raise DecodeError(f"cannot read {url}: {_trouble(error, url, endpoint)}") from error
    reader = ObjectReader(url, file, endpoint)
    if expected is not None and reader.fingerprint(fs, sample) != expected:
        reader.close()
        raise DecodeError(f"{url} changed since the job listed it; run the job again to list it anew")
    reader.seek(0)  # some filesystems (fsspec's memory) share one file object between opens
    return reader


class ObjectReader(io.RawIOBase):
    """A read-only, seekable view of one object that fetches byte ranges as they are read.

    PyAV, tarfile and Pillow read it like a local file. Every error of the store becomes a
    DecodeError naming the URL, so a worker records it against the object and goes on.
    """

    def __init__(self, url: str, file: Any, endpoint: str | None) -> None:
        super().__init__()
        self.name = url
        self._file = file
        self._endpoint = endpoint

    def fingerprint(self, fs: Any, sample: Sampler) -> str:
        """The object's fingerprint from what opening it learnt (its HEAD)."""
        details = getattr(self._file, "details", None) or fs.info(self.name)
        return object_fingerprint(fs, details, sample)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        with self._errors():
            return bytes(self._file.read(-1 if size is None else size))

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        with self._errors():
            return int(self._file.seek(offset, whence))

    def tell(self) -> int:
        return int(self._file.tell())

    @property
    def fetched(self) -> int | None:
        """Bytes fetched from the store so far (None when the filesystem does not count them)."""
        cache = getattr(self._file, "cache", None)
        return getattr(cache, "total_requested_bytes", None)

    def close(self) -> None:
        if not self.closed:
            size = getattr(self._file, "size", None)
            log.debug("read %s: fetched %s of its %s bytes", self.name, self.fetched, size)
            self._file.close()
        super().close()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except TidalError:
            raise
        except Exception as error:
            if _precondition_failed(error):
                raise DecodeError(
                    f"{self.name} changed while it was read; run the job again to list it anew"
                ) from error
            raise DecodeError(f"cannot read {self.name}: {_trouble(error, self.name, self._endpoint)}") from error


def _precondition_failed(error: BaseException) -> bool:
    """Whether the store refused a read because the object's ETag is no longer the one opened."""
    chain: BaseException | None = error
    while chain is not None:
        if "PreconditionFailed" in repr(chain) or "(412)" in str(chain):
            return True
        chain = chain.__cause__ or chain.__context__
    return False
