"""One Ray cluster as tidal sees it: its Jobs API (submit, status, logs, stop) and its free resources.

Every Ray error is wrapped here, where it enters tidal: an unreachable head or a job Ray refuses
becomes a ConfigError naming the address and what to do. The address is the head's dashboard,
``http://head:8265`` (Ray Jobs lives there), not the ``ray://head:10001`` of Ray's client.

Example::

    cluster = RayCluster("http://head:8265")
    cluster.free()                                   # Resources(cpus=14.0, gpus=1.0, memory=...)
    free, total = cluster.capacity()                 # both from one load report
    job = cluster.submit("tidal-ab12-1", "python train.py", {"working_dir": "/tmp/snap"}, Resources(gpus=1))
    cluster.state(job).status                        # PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED or MISSING
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tidal.errors import ConfigError
from tidal.remote.resources import Resources

ENDED = ("SUCCEEDED", "FAILED", "STOPPED")
MISSING = "MISSING"  # Ray does not know the job (any more)


@dataclass(frozen=True)
class RayJobState:
    """A Ray job's status, Ray's message about it, and its driver's exit code once it ended."""

    status: str
    message: str = ""
    exit_code: int | None = None

    @property
    def ended(self) -> bool:
        return self.status in ENDED or self.status == MISSING


class RayCluster:
    """The Jobs API of the Ray head at ``address`` (``http(s)://head:8265``); checked on creation."""

    def __init__(self, address: str) -> None:
        self.address = check_address(address)
        try:
            from ray.job_submission import JobSubmissionClient
        except ImportError as error:
            raise ConfigError("submitting to Ray needs Ray's job client: pip install 'tidal[ray]'") from error
        try:
            self.client = JobSubmissionClient(self.address)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise ConfigError(f"cannot reach Ray's Jobs API at {self.address!r} ({_last_line(error)}); check that "
                              "the head runs with its dashboard (ray start --head --dashboard-host=0.0.0.0) and "
                              "that --address is its dashboard, http://HEAD:8265") from error

    def submit(self, submission_id: str, entrypoint: str, runtime_env: dict[str, Any], resources: Resources,
               metadata: dict[str, str] | None = None) -> str:
        """Hand a job to Ray; its submission id. Ray's refusal is a ConfigError with Ray's reason."""
        try:
            return str(self.client.submit_job(
                entrypoint=entrypoint, runtime_env=runtime_env, submission_id=submission_id, metadata=metadata,
                entrypoint_num_cpus=resources.cpus, entrypoint_num_gpus=resources.gpus,
                entrypoint_memory=int(resources.memory)))
        except (ConnectionError, RuntimeError, ValueError, TypeError) as error:
            raise ConfigError(f"Ray at {self.address} refused the job: {_last_line(error)}") from error

    def state(self, submission_id: str) -> RayJobState:
        """The job's state; status MISSING when Ray does not know it."""
        try:
            info = self.client.get_job_info(submission_id)
        except RuntimeError as error:
            if "404" in str(error) or "does not exist" in str(error):
                return RayJobState(MISSING, f"Ray at {self.address} has no job {submission_id}")
            raise self._unreachable(error) from error
        except ConnectionError as error:
            raise self._unreachable(error) from error
        return RayJobState(str(getattr(info.status, "value", info.status)), info.message or "",
                           getattr(info, "driver_exit_code", None))

    def logs(self, submission_id: str) -> str:
        """Everything the job wrote so far (Ray's own setup lines included: pip's output, errors)."""
        try:
            return str(self.client.get_job_logs(submission_id))
        except (ConnectionError, RuntimeError) as error:
            raise self._unreachable(error) from error

    def stop(self, submission_id: str) -> bool:
        """Ask Ray to stop the job (SIGTERM, then SIGKILL); False when it had ended or is unknown."""
        try:
            return bool(self.client.stop_job(submission_id))
        except RuntimeError as error:
            if "404" in str(error) or "does not exist" in str(error):
                return False
            raise self._unreachable(error) from error
        except ConnectionError as error:
            raise self._unreachable(error) from error

    def free(self) -> Resources:
        """CPUs, GPUs and memory no job holds now, from the autoscaler's load report (Ray's state)."""
        return self.capacity()[0]

    def total(self) -> Resources:
        return self.capacity()[1]

    def capacity(self) -> tuple[Resources, Resources]:
        """What is free now and what the cluster's nodes have in all, from one load report."""
        report = self._usage()
        usage = [report.get(name, (0.0, 0.0)) for name in ("CPU", "GPU", "memory")]
        return (Resources(*(max(0.0, total - used) for used, total in usage)),
                Resources(*(total for _, total in usage)))

    def _usage(self) -> dict[str, tuple[float, float]]:
        import httpx

        try:
            response = httpx.get(f"{self.address}/api/cluster_status", headers=getattr(self.client, "_headers", None),
                                 timeout=10.0)
            response.raise_for_status()
            report = response.json()["data"]["clusterStatus"]["loadMetricsReport"]["usage"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
            raise self._unreachable(error) from error
        return {name: (float(pair[0]), float(pair[1])) for name, pair in report.items()}

    def _unreachable(self, error: Exception) -> ConfigError:
        return ConfigError(f"Ray's Jobs API at {self.address} failed: {_last_line(error)}; check that the head "
                           "still runs")


def check_address(address: str) -> str:
    """``http(s)://host:port`` without a trailing slash; a Ray client or GCS address is refused with the fix."""
    address = address.strip().rstrip("/")
    if address.startswith(("http://", "https://")):
        return address
    raise ConfigError(f"--address {address!r}: give the Ray head's dashboard (Ray Jobs API), like "
                      "http://head:8265 — not ray://head:10001 or head:6379, which `tidal map --engine ray` takes")


def _last_line(error: BaseException) -> str:
    """Ray's errors carry a server traceback: its last line says what was wrong."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip().strip(".")]
    return lines[-1] if lines else type(error).__name__
