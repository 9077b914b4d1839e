"""``tidal submit`` and ``run.execute_remotely``: a script and its working directory, run on a Ray cluster.

The working directory is snapshotted (``tidal.remote.snapshot``: what git would commit, within
a size limit) and stored with the run as ``code.zip``, beside its requirements; the run is
recorded (git commit and diff, args, requirements, resources) with status ``queued``. Then:

- with a tidal server (``TIDAL_TRACKING_URI=http://...``) the run waits in the server's queue;
  its dispatcher hands it to Ray when the cluster has the resources (``tidal.remote.dispatcher``);
- without one (the embedded store, or a SQL store) it is handed to Ray at once (no queue).

Ray runs ``python SCRIPT ARGS`` in the snapshot with ``TIDAL_RUN_ID``, ``TIDAL_TRACKING_URI``
and ``TIDAL_TOKEN`` set, so ``tidal.init()`` in the script attaches to the same run and its
metrics, images and artifacts land there (only when the store is a server the cluster can reach).

Example::

    submission = submit("train.py", ["--lr", "0.01"], address="http://head:8265", gpus=1,
                        requirements=Path("requirements.txt"), project="detectron2")
    follow(submission.store, submission.run_id, print)     # Ray's log, until the run ends
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tidal import settings
from tidal.errors import UsageError
from tidal.remote.cluster import RayCluster, check_address
from tidal.remote.handover import CODE_ARTIFACT, hand_over
from tidal.remote.queue import is_served
from tidal.remote.resources import shortfall
from tidal.remote.snapshot import Snapshot, take_snapshot
from tidal.remote.spec import RemoteSpec, read_requirements
from tidal.status import QueueStatus, RunStatus
from tidal.tracking.store import Store
from tidal.tracking.stores import open_store


@dataclass
class Submission:
    """A submitted run: its id, the Ray head, its queue status (waiting or submitted) and why it waits."""

    run_id: str
    address: str
    status: str
    reason: str | None
    store: Store


def submit(script: str | Path, args: list[str] | tuple[str, ...] = (), *, address: str | None = None,
           cpus: float = 1.0, gpus: float = 0.0, memory: float = 0.0, requirements: Path | None = None,
           installer: str = "pip", image: str | None = None, project: str = "default", name: str | None = None,
           priority: int = 0, folder: Path | None = None, max_bytes: int | None = None,
           tracking_uri: str | None = None, env: dict[str, str] | None = None, store: Store | None = None,
           run_id: str | None = None) -> Submission:
    """Record ``script`` (a file in ``folder``, the working directory by default) as a run and send it to Ray.

    ``run_id``: an existing run to send (``execute_remotely``) instead of a new one. ``tracking_uri``:
    the store as the cluster reaches it (default: the server's URL this process logs to).
    """
    store = store or open_store()
    address = _address(address)
    folder = (folder or Path.cwd()).resolve()
    spec = RemoteSpec(_script_in(folder, Path(script)), list(args), cpus, gpus, memory,
                      read_requirements(requirements) if requirements else [], installer, image, dict(env or {}),
                      tracking_uri or _served_url(store))
    snapshot = take_snapshot(folder, max_bytes or settings.submit_max_bytes())
    if spec.script not in snapshot.files:
        raise UsageError(f"{spec.script} is not in the snapshot of {folder} (.gitignore leaves it out?); "
                         "a submitted script must be part of the code sent")
    cluster = None if is_served(store) else RayCluster(address)  # unreachable: refused before recording
    run_id = _record(store, run_id, spec, address, priority, project, name or Path(spec.script).stem, folder)
    _store_files(store, run_id, snapshot, requirements)
    return _enqueue(store, run_id, spec, address, priority, cluster)


def _address(address: str | None) -> str:
    address = address or settings.ray_address()
    if not address:
        raise UsageError("no Ray cluster to submit to: pass --address http://HEAD:8265 (the head's dashboard) "
                         "or set TIDAL_RAY_ADDRESS")
    return check_address(address)


def _script_in(folder: Path, script: Path) -> str:
    path = (script if script.is_absolute() else Path.cwd() / script).resolve()
    if not path.is_file() and not script.is_absolute():
        path = (folder / script).resolve()  # a path relative to the folder sent
    if not path.is_file():
        raise UsageError(f"no script {script}: give the path of a Python file in {folder}")
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        raise UsageError(f"{script} is outside the folder sent to the cluster ({folder}); run tidal submit from "
                         "the project's folder, or pass --folder") from None


def _served_url(store: Store) -> str | None:
    """The server a store talks to, which the cluster's processes then log to (None: not a server)."""
    if not is_served(store):
        return None
    return str(getattr(store, "url", "")) or None


def _record(store: Store, run_id: str | None, spec: RemoteSpec, address: str, priority: int, project: str,
            name: str, folder: Path) -> str:
    from tidal.tracking.capture import git_state

    fields: dict[str, Any] = {
        "kind": "remote", "status": RunStatus.QUEUED.value, "ended_at": None, "error": None,
        "argv": [spec.script, *spec.args], "git": git_state(folder),
        "config": {"remote": spec.to_json() | {"address": address, "priority": priority}}}
    if run_id is not None:
        store.update_run(run_id, fields)
        return run_id
    run_id = uuid.uuid4().hex[:16]
    store.create_run(fields | {"id": run_id, "project": project, "name": name, "started_at": time.time()})
    return run_id


def _store_files(store: Store, run_id: str, snapshot: Snapshot, requirements: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="tidal-submit-") as scratch:
        store.put_artifact(run_id, CODE_ARTIFACT, snapshot.write_zip(Path(scratch) / CODE_ARTIFACT))
    if requirements is not None:
        store.put_artifact(run_id, "requirements.txt", requirements)


def _enqueue(store: Store, run_id: str, spec: RemoteSpec, address: str, priority: int,
             cluster: RayCluster | None) -> Submission:
    status = QueueStatus.WAITING if cluster is None else QueueStatus.SUBMITTED  # direct: claimed at once
    entry = {"run_id": run_id, "priority": priority, "status": status.value, "address": address,
             "spec": spec.to_json(), "created_at": time.time(), "attempts": 0}
    store.enqueue(entry)
    if cluster is None:
        return Submission(run_id, address, status.value, None, store)
    reason = shortfall(spec.resources(), cluster.free())
    hand_over(store, entry, cluster, settings.token())
    return Submission(run_id, address, status.value, reason and f"Ray keeps it pending: {reason}", store)


def execute_in_cluster(run_id: str, store: Store, **options: Any) -> Submission:
    """``run.execute_remotely``: the running script (``sys.argv``) sent as run ``run_id``."""
    script, *args = sys.argv
    if not script or script == "-c" or not Path(script).is_file():
        raise UsageError("execute_remotely needs a script run as `python script.py`: the cluster runs that file")
    return submit(script, args, store=store, run_id=run_id, **options)
