"""Moving a submitted run between the store and Ray: handing it over (its code snapshot unpacked
and submitted through Ray Jobs), and reading back what Ray did with it (reconciling).

Both the server's dispatcher (queue mode) and ``tidal submit`` without a server (direct mode) go
through these two functions, so a run ends the same way whichever path it took:

| Ray's job | queue entry | run (unless the script already ended it through ``tidal.init``) |
| --- | --- | --- |
| PENDING | submitted | queued |
| RUNNING | running | running, heartbeat kept fresh |
| SUCCEEDED | done | completed |
| FAILED | failed | failed, with Ray's message (pip's error when the requirements did not install) |
| STOPPED | cancelled | interrupted |
| unknown to Ray | lost | lost |

A run that logged no console of its own (a script that never calls ``tidal.init``) gets Ray's
log of the job as its console when it ends. A log Ray cannot give (the node the job ran on died
with it) is said in the run's error; it never keeps the run from ending.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from tidal.errors import ConfigError
from tidal.remote.cluster import MISSING, RayCluster, RayJobState
from tidal.remote.snapshot import extract
from tidal.remote.spec import RemoteSpec
from tidal.status import QueueStatus, RunStatus
from tidal.tracking import records
from tidal.tracking.store import Batch, Store

log = logging.getLogger("tidal.remote")
CODE_ARTIFACT = "code.zip"
RUN_OPEN = (RunStatus.QUEUED.value, RunStatus.RUNNING.value, RunStatus.LOST.value)
_ENDINGS = {"SUCCEEDED": (QueueStatus.DONE, RunStatus.COMPLETED), "FAILED": (QueueStatus.FAILED, RunStatus.FAILED),
            "STOPPED": (QueueStatus.CANCELLED, RunStatus.INTERRUPTED), MISSING: (QueueStatus.LOST, RunStatus.LOST)}


def remote_environment(run_id: str, spec: RemoteSpec, token: str | None) -> dict[str, str]:
    """What the job's process needs so that ``tidal.init()`` attaches to the submitted run."""
    if not spec.tracking_uri:
        return {}
    return {"TIDAL_RUN_ID": run_id, "TIDAL_TRACKING_URI": spec.tracking_uri} | ({"TIDAL_TOKEN": token} if token else {})


def hand_over(store: Store, entry: dict[str, Any], cluster: RayCluster, token: str | None = None) -> str:
    """Submit a claimed entry (status submitted, no Ray job yet) to Ray; its Ray job id.

    Ray refusing it (a bad runtime_env, an image on a cluster without podman) fails the entry and
    the run with Ray's reason, then raises that ConfigError.
    """
    run_id, spec = entry["run_id"], RemoteSpec.from_json(entry["spec"])
    attempt = int(entry.get("attempts") or 0) + 1
    job_id = f"tidal-{run_id}-{attempt}"
    folder = Path(tempfile.mkdtemp(prefix=f"tidal-{run_id}-"))
    try:
        code = _unpacked_code(store, run_id, folder)
        runtime_env = spec.runtime_env(str(code), remote_environment(run_id, spec, token))
        cluster.submit(job_id, spec.entrypoint(), runtime_env, spec.resources(), metadata={"tidal_run": run_id})
    except ConfigError as error:
        _end(store, run_id, QueueStatus.FAILED, RunStatus.FAILED, str(error), attempts=attempt)
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # Ray uploaded it to its head during submit
    fields = {"ray_job_id": job_id, "submitted_at": time.time(), "attempts": attempt, "reason": None}
    if not store.update_queue_entry(run_id, fields | {"status": QueueStatus.SUBMITTED.value},
                                    only_if=[QueueStatus.SUBMITTED.value]):
        store.update_queue_entry(run_id, fields)  # cancelled meanwhile: the next reconcile stops the job
    return job_id


def _unpacked_code(store: Store, run_id: str, folder: Path) -> Path:
    archive = folder / CODE_ARTIFACT
    with store.open_artifact(run_id, CODE_ARTIFACT) as source, archive.open("wb") as sink:
        shutil.copyfileobj(source, sink, 1024 * 1024)
    code = extract(archive, folder / "code")
    archive.unlink()
    return code


def reconcile(store: Store, entry: dict[str, Any], cluster: RayCluster) -> str:
    """Bring the entry and its run up to date with Ray's job (see the table above); the entry's new status."""
    run_id, job_id = entry["run_id"], entry.get("ray_job_id")
    if entry["status"] == QueueStatus.CANCELLING.value:
        return _cancel(store, entry, cluster)
    if not job_id:
        return str(entry["status"])
    state = cluster.state(job_id)
    if state.ended:
        return _finish(store, entry, cluster, state)
    if state.status == "RUNNING":
        if entry["status"] != QueueStatus.RUNNING.value:
            store.update_queue_entry(run_id, {"status": QueueStatus.RUNNING.value, "reason": None},
                                     only_if=[QueueStatus.SUBMITTED.value])
        run = store.get_run(run_id)
        update: dict[str, Any] = {"heartbeat_at": time.time()}
        if run["status"] in (RunStatus.QUEUED.value, RunStatus.LOST.value):
            update |= {"status": RunStatus.RUNNING.value, "ended_at": None}
        store.update_run(run_id, update)
        return QueueStatus.RUNNING.value
    if state.message and state.message != entry.get("reason"):
        store.update_queue_entry(run_id, {"reason": f"Ray: {state.message}"})
    return str(entry["status"])


def _cancel(store: Store, entry: dict[str, Any], cluster: RayCluster) -> str:
    job_id = entry.get("ray_job_id")
    if job_id and not cluster.state(job_id).ended:
        cluster.stop(job_id)
        return QueueStatus.CANCELLING.value  # Ray stops it (SIGTERM, then SIGKILL); seen ended next time
    _end(store, entry["run_id"], QueueStatus.CANCELLED, RunStatus.INTERRUPTED, "cancelled (tidal queue cancel)")
    return QueueStatus.CANCELLED.value


def _finish(store: Store, entry: dict[str, Any], cluster: RayCluster, state: RayJobState) -> str:
    queue_status, run_status = _ENDINGS[state.status]
    error = None if state.status == "SUCCEEDED" else _ray_error(cluster, entry, state)
    if state.status != MISSING:
        try:
            _keep_ray_log(store, entry["run_id"], entry["ray_job_id"], cluster)
        except ConfigError as unread:
            log.warning("run %s ended; Ray's log of it could not be read: %s", entry["run_id"], unread)
            error = f"{error or 'the run ended'} (Ray's log of it could not be read: {unread})"
    _end(store, entry["run_id"], queue_status, run_status, error, exit_code=state.exit_code)
    return queue_status.value


def _ray_error(cluster: RayCluster, entry: dict[str, Any], state: RayJobState) -> str:
    code = f" (exit code {state.exit_code})" if state.exit_code not in (None, 0) else ""
    return f"Ray job {entry['ray_job_id']} at {cluster.address}: {state.status}{code}: {state.message}".strip()


def _keep_ray_log(store: Store, run_id: str, job_id: str, cluster: RayCluster) -> None:
    """Ray's log as the run's console, when the script logged none through tidal."""
    if store.logs(run_id, limit=1):
        return
    chunks = records.log_chunks(cluster.logs(job_id), "stdout")
    now = time.time()
    if chunks:
        store.log_batch(run_id, Batch(f"ray-log-{job_id}", logs=[("stdout", chunk, now) for chunk in chunks]))


def _end(store: Store, run_id: str, queue_status: QueueStatus, run_status: RunStatus, error: str | None,
         exit_code: int | None = None, attempts: int | None = None) -> None:
    now = time.time()
    fields: dict[str, Any] = {"status": queue_status.value, "ended_at": now}
    if error and queue_status is not QueueStatus.DONE:
        fields["reason"] = error
    store.update_queue_entry(run_id, fields | ({"attempts": attempts} if attempts is not None else {}))
    run = store.get_run(run_id)
    update: dict[str, Any] = {}
    if exit_code is not None:
        update["stats"] = (run.get("stats") or {}) | {"exit_code": exit_code}
    if run["status"] in RUN_OPEN:  # the script did not end its run itself (no tidal.init, or killed)
        update |= {"status": run_status.value, "ended_at": now, "error": error}
    if update:
        store.update_run(run_id, update)
