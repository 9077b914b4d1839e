"""The offline spool: a run's records that its store could not take yet, kept on disk.

When the store cannot be reached (at ``tidal.init`` or later), the run's writer puts every item
(:mod:`tidal.tracking.delivery`) in ``<spool>/<run id>/`` (``$TIDAL_SPOOL``, by default
``$TIDAL_HOME/spool``), one numbered JSON file each (an artifact's bytes beside it), written under
a temporary name and renamed, so a crash leaves whole files only. The writer sends them, oldest
first, when the store answers again; what is left when the script ends is sent by
``tidal sync``. Items are idempotent, so one sent twice (a crash between sending and deleting
its file) changes nothing.

Example::

    spool = Spool.for_run(run_id, store)
    spool.put(Send(batch))
    spool.deliver(store, warn=print)          # raises StoreError while the store is away
    sync()                                    # every spooled run of this machine (`tidal sync`)
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from tidal import settings
from tidal.children import alive
from tidal.errors import TidalError
from tidal.tracking.delivery import Create, Item, Send, Update, Upload, Warn, deliver
from tidal.tracking.store import Batch, Store

OWNER_FILE = "owner.json"
COPY_CHUNK = 1024 * 1024


class Spool:
    """The spooled items of one run, in ``folder``; ``address`` says which store they are for."""

    def __init__(self, folder: Path, run_id: str, address: dict[str, str | None]) -> None:
        self.folder = folder
        self.run_id = run_id
        self.address = address
        self.lock = threading.Lock()
        self.next_number = 0

    @classmethod
    def for_run(cls, run_id: str, store: Store) -> Spool:
        return cls(settings.spool_folder() / run_id, run_id, store_address(store))

    def put(self, item: Item) -> None:
        """Keep ``item`` on disk (after everything put before it)."""
        with self.lock:
            if self.next_number == 0:
                self._start()
            number, self.next_number = self.next_number, self.next_number + 1
            record = self._record(item, f"{number:09d}")
            _write_atomically(self.folder / f"{number:09d}.json", json.dumps(record).encode())

    def _start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        owner = {"run_id": self.run_id, "host": socket.gethostname(), "pid": os.getpid()} | self.address
        _write_atomically(self.folder / OWNER_FILE, json.dumps(owner).encode())
        self.next_number = 1 + max((int(path.stem) for path in self._files()), default=0)

    def _record(self, item: Item, stem: str) -> dict[str, Any]:
        if isinstance(item, Create):
            return {"kind": "create", "run": item.run}
        if isinstance(item, Update):
            return {"kind": "update", "fields": item.fields}
        if isinstance(item, Send):
            return {"kind": "batch", "batch": vars(item.batch)}
        if isinstance(item, Upload):
            return {"kind": "upload", "name": item.name, "file": self._keep_bytes(item, stem)}
        raise AssertionError(f"no spool record for {type(item).__name__}")

    def _keep_bytes(self, item: Upload, stem: str) -> str:
        target = self.folder / f"{stem}.bin"
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
        with temporary.open("wb") as out:
            if isinstance(item.source, bytes):
                out.write(item.source)
            elif isinstance(item.source, Path):
                with item.source.open("rb") as source:
                    shutil.copyfileobj(source, out, COPY_CHUNK)
            else:
                _copy_open_file(item.source.fileno(), out)
        os.replace(temporary, target)
        return target.name

    def is_empty(self) -> bool:
        return not any(True for _ in self._files())

    def _files(self) -> Iterator[Path]:
        if self.folder.is_dir():
            yield from (path for path in self.folder.glob("[0-9]*.json"))

    def items(self) -> Iterator[tuple[Path, Item]]:
        """The spooled items, oldest first, each with its file."""
        for path in sorted(self._files()):
            try:
                record = json.loads(path.read_text())
            except FileNotFoundError:
                continue  # sent and removed by another process syncing this spool
            yield path, self._item(record)

    def _item(self, record: dict[str, Any]) -> Item:
        kind = record["kind"]
        if kind == "create":
            return Create(record["run"])
        if kind == "update":
            return Update(record["fields"])
        if kind == "batch":
            fields = record["batch"]
            batch = Batch(**fields | {"metrics": [tuple(row) for row in fields["metrics"]],
                                      "logs": [tuple(row) for row in fields["logs"]]})
            return Send(batch)
        return Upload(record["name"], self.folder / record["file"])

    def deliver(self, store: Store, warn: Warn) -> int:
        """Send every spooled item in order, deleting each once stored; the store's outage error
        propagates (what is left stays). Returns how many were sent; an emptied spool is removed."""
        sent = 0
        with self.lock:
            for path, item in self.items():
                deliver(store, self.run_id, item, warn)
                if isinstance(item, Upload) and isinstance(item.source, Path):
                    item.source.unlink(missing_ok=True)
                path.unlink(missing_ok=True)
                sent += 1
            if self.is_empty():
                shutil.rmtree(self.folder, ignore_errors=True)
                self.next_number = 0
        return sent


def store_address(store: Store) -> dict[str, str | None]:
    """Where ``store`` is, without secrets: what ``tidal sync`` opens again."""
    url = getattr(store, "url", None)
    if isinstance(url, str):
        return {"store": url, "artifacts": None}
    engine = getattr(store, "engine", None)
    artifacts = getattr(store, "artifact_store", None)
    return {"store": engine.url.render_as_string(hide_password=True) if engine is not None else None,
            "artifacts": artifacts.url() if artifacts is not None else None}


def _copy_open_file(descriptor: int, out: BinaryIO) -> None:
    """Copy a file the writer thread may be reading at the same moment (an exit that gave up
    waiting for it): ``pread`` leaves the file's position alone."""
    offset = 0
    while chunk := os.pread(descriptor, COPY_CHUNK, offset):
        out.write(chunk)
        offset += len(chunk)


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    temporary.write_bytes(data)
    os.replace(temporary, path)


# -- tidal sync ------------------------------------------------------------------------------


@dataclass
class SyncResult:
    """What ``tidal sync`` did with one spooled run."""

    run_id: str
    sent: int
    left: int
    note: str


def spooled_runs(root: Path | None = None) -> list[Path]:
    """The spool folders under ``root`` (default: ``$TIDAL_SPOOL``)."""
    root = root or settings.spool_folder()
    return sorted(path.parent for path in root.glob(f"*/{OWNER_FILE}")) if root.is_dir() else []


def sync(run_ids: list[str] | None = None, *, uri: str | None = None, root: Path | None = None,
         warn: Warn = print, force: bool = False) -> list[SyncResult]:
    """Send spooled runs (all, or those whose id starts with one of ``run_ids``) to their store:
    ``uri``, else ``$TIDAL_TRACKING_URI`` when it names the spooled store, else the spooled one."""
    results = []
    for folder in spooled_runs(root):
        if run_ids and not any(folder.name.startswith(prefix) for prefix in run_ids):
            continue
        results.append(_sync_one(folder, uri, warn, force))
    return results


def _sync_one(folder: Path, uri: str | None, warn: Warn, force: bool) -> SyncResult:
    owner = json.loads((folder / OWNER_FILE).read_text())
    spool = Spool(folder, owner["run_id"], {"store": owner.get("store"), "artifacts": owner.get("artifacts")})
    waiting = sum(1 for _ in spool._files())
    if not force and _owner_alive(owner):
        return SyncResult(spool.run_id, 0, waiting, f"its process {owner['pid']} still runs and sends it "
                          "when the store answers (--force to send it from here)")
    try:
        store = _open_store(owner, uri)
        sent = spool.deliver(store, warn)
    except TidalError as error:
        left = sum(1 for _ in spool._files())
        return SyncResult(spool.run_id, waiting - left, left, f"not sent: {error}")
    return SyncResult(spool.run_id, sent, 0, f"sent to {store.describe()}")


def _open_store(owner: dict[str, Any], uri: str | None) -> Store:
    from tidal.tracking.stores import open_store

    recorded = owner.get("store")
    configured = settings.tracking_uri()
    if uri is None and configured and recorded and redacted(configured) == recorded:
        uri = configured  # the configured URI may carry the password the spool does not keep
    chosen = uri or recorded
    same = chosen is not None and redacted(chosen) == recorded
    return open_store(chosen, artifacts=owner.get("artifacts") if same else None)


def redacted(uri: str) -> str:
    """``uri`` as :func:`store_address` records it (no password)."""
    if uri.startswith(("http://", "https://")):
        return uri.rstrip("/")
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(uri).render_as_string(hide_password=True)
    except ArgumentError:
        return uri


def _owner_alive(owner: dict[str, Any]) -> bool:
    if owner.get("host") != socket.gethostname() or owner.get("pid") == os.getpid():
        return False
    try:
        return alive(int(owner["pid"]))
    except (ValueError, TypeError):  # a spool file whose owner record is damaged: nobody owns it
        return False
