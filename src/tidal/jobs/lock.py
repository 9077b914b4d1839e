"""One ``tidal map`` per job at a time: an advisory file lock the OS drops if the holder dies."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

from tidal.errors import JobLockedError, StoreError


class JobLock:
    """``with JobLock(folder, job_id):`` holds the job's lock or raises JobLockedError."""

    def __init__(self, folder: Path, job_id: str) -> None:
        self.path = folder / "locks" / f"{job_id}.lock"
        self.job_id = job_id
        self.fd: int | None = None

    def __enter__(self) -> JobLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise StoreError(f"cannot create lock file {self.path}: {error}; "
                             "make TIDAL_HOME writable") from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise JobLockedError(
                f"job {self.job_id} is already running ({holder}); wait for it to finish or stop"
                " it, then run the same command again to resume"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}".encode())
        self.fd = fd
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
