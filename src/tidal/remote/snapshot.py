"""The code a remote run executes: the working directory's files, as git would commit them.

In a git repository the files are those ``git ls-files --cached --others --exclude-standard``
lists (every .gitignore, nested ones included, and the global excludes); elsewhere a walk that
applies the folder's .gitignore and skips virtual environments, caches and tidal's state. A
snapshot over the size limit is refused before anything is recorded or sent, naming its largest
files: data and weights belong in object storage (``s3://``), not in the code.

Example::

    snapshot = take_snapshot(Path.cwd(), max_bytes=100 * 2**20)
    archive = snapshot.write_zip(Path("/tmp/code.zip"))      # stored with the run, unpacked for Ray
    extract(archive, Path("/tmp/run-code"))
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tidal.errors import UsageError

ALWAYS_SKIPPED = {".git", ".tidal", "__pycache__", ".venv", "venv", "node_modules", ".mypy_cache",
                  ".pytest_cache", ".ruff_cache"}
FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # the same files make the same archive (Ray caches by its hash)


@dataclass(frozen=True)
class Snapshot:
    """``files`` (POSIX paths relative to ``root``) and their total ``size`` in bytes."""

    root: Path
    files: list[str]
    size: int

    def write_zip(self, target: Path) -> Path:
        """The files in a zip at ``target`` (deterministic: sorted, fixed times)."""
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(self.files):
                info = zipfile.ZipInfo(name, FIXED_TIME)
                info.external_attr = (os.stat(self.root / name).st_mode & 0o777) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with (self.root / name).open("rb") as source, archive.open(info, "w") as sink:
                    shutil.copyfileobj(source, sink, 1024 * 1024)
        return target


def take_snapshot(folder: Path, max_bytes: int) -> Snapshot:
    """The files of ``folder`` a remote run needs; a UsageError when they weigh more than ``max_bytes``."""
    folder = folder.resolve()
    if not folder.is_dir():
        raise UsageError(f"cannot snapshot {folder}: it is not a folder")
    files = _git_files(folder)
    if files is None:
        files = _walked_files(folder)
    sizes = {name: (folder / name).stat().st_size for name in files if (folder / name).is_file()}
    total = sum(sizes.values())
    if total > max_bytes:
        largest = sorted(sizes.items(), key=lambda item: -item[1])[:5]
        raise UsageError(
            f"the working directory {folder} holds {_size(total)} to send, over the limit of {_size(max_bytes)}; "
            f"the largest files: {', '.join(f'{name} ({_size(size)})' for name, size in largest)}. Add data and "
            "weights to .gitignore and read them from object storage (s3://...), or raise the limit with "
            "--max-size (TIDAL_SUBMIT_MAX_SIZE)")
    return Snapshot(folder, sorted(sizes), total)


def extract(archive: Path, folder: Path) -> Path:
    """Unpack a snapshot into ``folder``; a member that would land outside it is refused."""
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as source:
        for member in source.namelist():
            path = PurePosixPath(member)
            if path.is_absolute() or ".." in path.parts:
                raise UsageError(f"the code snapshot {archive} holds {member!r}, outside its folder; refusing it")
        source.extractall(folder)
    return folder


def _git_files(folder: Path) -> list[str] | None:
    """Tracked and untracked-but-not-ignored files under ``folder``; None outside a git repository."""
    if shutil.which("git") is None:
        return None
    try:
        done = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "."],
                              cwd=folder, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    names = [name for name in done.stdout.decode("utf-8", "surrogateescape").split("\0") if name]
    return [name for name in names if not ALWAYS_SKIPPED.intersection(PurePosixPath(name).parts)]


def _walked_files(folder: Path) -> list[str]:
    ignored = _gitignore(folder)
    found = []
    for directory, subfolders, names in os.walk(folder):
        relative = Path(directory).relative_to(folder)
        subfolders[:] = [name for name in subfolders if name not in ALWAYS_SKIPPED
                         and not ignored((relative / name).as_posix() + "/")]
        found += [(relative / name).as_posix() for name in names if not ignored((relative / name).as_posix())]
    return found


def _gitignore(folder: Path) -> Callable[[str], bool]:
    """A matcher of the folder's own .gitignore (pathspec, which Ray brings); nothing ignored without either."""
    path = folder / ".gitignore"
    try:
        import pathspec

        spec = pathspec.GitIgnoreSpec.from_lines(path.read_text().splitlines())
    except (ImportError, OSError):
        return lambda name: False
    return lambda name: bool(spec.match_file(name))


def _size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"
