"""1,000 runs submitted at once: the Ray head's memory with tidal's queue in front, beside Ray Jobs alone.

Ray Jobs starts a supervisor actor (~85 MB) for every job it is given, at once, so a thousand
submissions can exhaust the head (ray #60159). tidal's queue keeps them as rows in its store and
its dispatcher (inside ``tidal server``) hands Ray at most ``QUEUE_MAX_PENDING`` not-yet-started
runs per cluster. This bench, in one run:

1. starts a local Ray head (2 CPUs, dashboard on 127.0.0.1, its own temp dir, ports and process
   group) and measures its idle memory: the RSS summed over the head's process tree (gcs_server,
   raylet, dashboard and its agents, workers, job supervisors; Ray's processes, apart from the
   job scripts themselves, which are the user's work and shown separately);
2. starts ``tidal server`` (SQLite store, its dispatcher pointed at that head), submits
   ``--runs`` tiny runs at once through ``tidal.remote.submit`` (a script that sleeps ~1 s, a
   one-file working directory) and samples the head's memory while the queue drains, or for
   ``--window`` seconds when 2 CPUs cannot drain it sooner (then it says how many ran);
3. on a fresh head, submits ``--direct`` runs (the same script, sleeping long enough for all of
   them to be alive together) straight to Ray Jobs, as ``ray job submit`` does (no entrypoint
   resources), and extrapolates the cost per supervisor to ``--runs`` jobs (said so in the output).

RSS counts pages shared between processes once per process; both sides are measured the same way.

    python bench/queue.py [--runs 1000] [--window 120] [--direct 20] [--cpus 0.5]
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named queue.py: run as a script, its folder comes first on sys.path and shadows the
# standard library's queue, which concurrent.futures, Ray and tidal import.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import argparse
import concurrent.futures
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import psutil

from tidal import settings
from tidal.remote.submit import submit
from tidal.status import QueueStatus
from tidal.tracking.httpstore import HTTPStore

GOAL = 1.10  # the head's peak with tidal's queue, over its idle figure
SCRIPT = "tidal_bench_sleep.py"  # a name no Ray process carries: how a job script is told from Ray's own
SLEEP = "import sys, time\ntime.sleep(float(sys.argv[1]))\nprint('slept', sys.argv[1])\n"
RAY_ENVIRONMENT = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
MB = 1024 * 1024
ENDED = [status.value for status in QueueStatus.ended()]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- processes this bench starts: each in its own process group, stopped by group -------------------

def stop_group(process: subprocess.Popen[bytes]) -> None:
    """``process`` and everything it started (its own process group): TERM, then KILL."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and group_alive(process.pid):
            process.poll()
            time.sleep(0.2)
    process.wait(timeout=10)


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def wait_until(ready: Callable[[], bool], process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text()[-3000:]}")
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not answer within 120 s; its log: {log}")


@contextmanager
def ray_head(cpus: int) -> Iterator[tuple[str, int]]:
    """A local Ray head with its dashboard (Ray Jobs) on 127.0.0.1: (its address, its process group)."""
    temp = Path(tempfile.mkdtemp(prefix="rq", dir="/tmp"))  # sockets live here: a short path
    dashboard = free_port()
    ports = {"--port": free_port(), "--dashboard-port": dashboard, "--ray-client-server-port": free_port(),
             "--dashboard-agent-listen-port": free_port(), "--dashboard-agent-grpc-port": free_port(),
             "--runtime-env-agent-port": free_port(), "--metrics-export-port": free_port()}
    binaries = Path(sys.executable).parent  # the cluster's python is this one, as on a real cluster's nodes
    command = [str(binaries / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
               "--dashboard-host=127.0.0.1", "--include-dashboard=true", f"--num-cpus={cpus}", "--num-gpus=0",
               f"--temp-dir={temp}", "--disable-usage-stats", *(f"{flag}={port}" for flag, port in ports.items())]
    environment = os.environ | RAY_ENVIRONMENT | {"PATH": f"{binaries}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = temp / "start.log"
    with log.open("wb") as output:
        head = subprocess.Popen(command, env=environment, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=output)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        wait_until(lambda: httpx.get(f"{address}/api/jobs/", timeout=2).status_code == 200, head, log, "ray start")
        yield address, head.pid
    finally:
        stop_group(head)
        subprocess.run(["rm", "-rf", str(temp)], check=False)


@contextmanager
def tidal_server(home: Path) -> Iterator[str]:
    """``tidal server`` over a SQLite store in ``home``, on 127.0.0.1 (its dispatcher runs inside): its URL."""
    port = free_port()
    log = home / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "tidal", "server", "--store", f"sqlite:///{home / 'tidal.db'}",
             "--artifacts", str(home / "artifacts"), "--port", str(port)],
            env=os.environ | {"TIDAL_HOME": str(home)}, start_new_session=True, stdout=output, stderr=output)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200, server, log, "tidal server")
        yield url
    finally:
        stop_group(server)


# --- the head's memory ----------------------------------------------------------------------------

def head_memory(group: int) -> tuple[int, int]:
    """(Ray's processes, job scripts): RSS bytes over the head's process tree and process group."""
    members: dict[int, psutil.Process] = {}
    try:
        root = psutil.Process(group)
        members = {process.pid: process for process in [root, *root.children(recursive=True)]}
    except psutil.NoSuchProcess:
        pass
    for process in psutil.process_iter():  # anything that left the tree but kept the group
        try:
            if process.pid not in members and os.getpgid(process.pid) == group:
                members[process.pid] = process
        except (ProcessLookupError, psutil.Error):
            continue
    ray, scripts = 0, 0
    for process in members.values():
        try:
            rss = process.memory_info().rss
            is_script = any(SCRIPT in part for part in process.cmdline())
        except psutil.Error:  # ended while we looked
            continue
        ray, scripts = (ray, scripts + rss) if is_script else (ray + rss, scripts)
    return ray, scripts


@dataclass
class Sampler:
    """The head's memory every ``interval`` seconds, in a thread, until stopped."""

    group: int
    interval: float = 0.5
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._loop, name="head-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), *head_memory(self.group)))
            self._stop.wait(self.interval)

    def peak(self) -> tuple[int, int]:
        """The highest total (Ray + scripts) sample: (Ray's part, the scripts' part)."""
        _, ray, scripts = max(self.samples, key=lambda sample: sample[1] + sample[2])
        return ray, scripts

    def peak_ray(self) -> int:
        return max(sample[1] for sample in self.samples)


def idle_memory(group: int, settle: float, seconds: float) -> int:
    """The head's idle figure: the median of Ray's RSS over ``seconds``, after ``settle`` seconds."""
    time.sleep(settle)
    with Sampler(group) as sampler:
        time.sleep(seconds)
    return int(statistics.median(sample[1] for sample in sampler.samples))


# --- tidal's queue --------------------------------------------------------------------------------

@dataclass
class QueueResult:
    idle: int
    peak_ray: int
    peak_total: tuple[int, int]
    statuses: Counter[str]
    submit_seconds: float
    seconds: float


def submit_all(url: str, address: str, folder: Path, runs: int, cpus: float, threads: int) -> None:
    store = HTTPStore(url)

    def one(index: int) -> str:
        return submit(SCRIPT, ["1"], address=address, cpus=cpus, folder=folder, store=store, project="queue-bench",
                      name=f"sleep-{index}").status

    try:
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            statuses = Counter(pool.map(one, range(runs)))
    finally:
        store.close()
    if statuses != {QueueStatus.WAITING.value: runs}:
        raise RuntimeError(f"expected {runs} waiting runs after submitting, got {dict(statuses)}")


def queue_statuses(url: str) -> Counter[str]:
    store = HTTPStore(url)
    try:
        return Counter(entry["status"] for entry in store.queue_entries(limit=100_000))
    finally:
        store.close()


def through_tidal(runs: int, window: float, cpus: float, folder: Path, threads: int) -> QueueResult:
    with ray_head(2) as (address, group), tempfile.TemporaryDirectory(prefix="tidal-queue-bench-") as home:
        idle = idle_memory(group, settle=10, seconds=10)
        with tidal_server(Path(home)) as url, Sampler(group) as sampler:
            started = time.monotonic()
            submit_all(url, address, folder, runs, cpus, threads)
            submitted = time.monotonic() - started
            statuses = queue_statuses(url)
            while sum(statuses[status] for status in ENDED) < runs and time.monotonic() - started < window:
                time.sleep(2)
                statuses = queue_statuses(url)
            seconds = time.monotonic() - started
        return QueueResult(idle, sampler.peak_ray(), sampler.peak(), statuses, submitted, seconds)


# --- Ray Jobs alone -------------------------------------------------------------------------------

@dataclass
class DirectResult:
    idle: int
    peak_ray: int
    peak_total: tuple[int, int]
    statuses: Counter[str]
    seconds: float


def straight_to_ray(runs: int, sleep: float, folder: Path) -> DirectResult:
    from ray.job_submission import JobStatus, JobSubmissionClient

    with ray_head(2) as (address, group):
        idle = idle_memory(group, settle=10, seconds=10)
        client = JobSubmissionClient(address)
        with Sampler(group) as sampler:
            started = time.monotonic()
            jobs = [client.submit_job(entrypoint=f"python {SCRIPT} {sleep:g}", runtime_env={"working_dir": str(folder)})
                    for _ in range(runs)]
            ended = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}
            while time.monotonic() - started < sleep + 300:
                statuses = Counter(client.get_job_status(job) for job in jobs)
                if all(status in ended for status in statuses):
                    break
                time.sleep(1)
            seconds = time.monotonic() - started
        return DirectResult(idle, sampler.peak_ray(), sampler.peak(),
                            Counter(str(status.value) for status in statuses.elements()), seconds)


# --- the report -----------------------------------------------------------------------------------

def report(queue: QueueResult, direct: DirectResult, runs: int, direct_runs: int) -> bool:
    ran = sum(queue.statuses[status] for status in ENDED)
    ratio = queue.peak_ray / queue.idle
    print("Ray head, 2 CPUs; memory = RSS summed over the head's processes, MB; job scripts counted apart")
    print(f"{'':44s} {'idle':>7s} {'peak Ray':>9s} {'peak/idle':>10s} {'+scripts':>9s}  runs")
    print(f"{f'tidal queue, {runs} submitted at once':44s} {queue.idle / MB:7.0f} {queue.peak_ray / MB:9.0f}"
          f" {ratio:9.2f}x {queue.peak_total[1] / MB:9.0f}  {ran} ended in {queue.seconds:.0f} s "
          f"({dict(queue.statuses)}); submitting took {queue.submit_seconds:.0f} s")
    per_job = (direct.peak_ray - direct.idle) / direct_runs
    print(f"{f'Ray Jobs alone, {direct_runs} submitted at once':44s} {direct.idle / MB:7.0f}"
          f" {direct.peak_ray / MB:9.0f} {direct.peak_ray / direct.idle:9.2f}x {direct.peak_total[1] / MB:9.0f}"
          f"  {dict(direct.statuses)} in {direct.seconds:.0f} s")
    extrapolated = direct.idle + runs * per_job
    print(f"{f'Ray Jobs alone, {runs} (EXTRAPOLATED)':44s} {direct.idle / MB:7.0f} {extrapolated / MB:9.0f}"
          f" {extrapolated / direct.idle:9.2f}x {'':9s}  {per_job / MB:.0f} MB of Ray's per job x {runs},"
          f" extrapolated from {direct_runs}")
    if ran < runs:
        print(f"the queue had not drained after {queue.seconds:.0f} s on 2 CPUs: {ran} of {runs} runs ended; "
              "the peak is over that window")
    met = ratio <= GOAL
    print(f"goal: the head's peak with tidal's queue <= idle x {GOAL:.2f} "
          f"(QUEUE_MAX_PENDING={settings.QUEUE_MAX_PENDING}): {'met' if met else 'NOT met'} ({ratio:.2f}x)")
    return met


def project(folder: Path) -> Path:
    """The runs' working directory: one small script."""
    (folder / SCRIPT).write_text(SLEEP)
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000, help="runs submitted at once through tidal's queue")
    parser.add_argument("--window", type=float, default=120.0, help="seconds to watch the queue drain, at most")
    parser.add_argument("--direct", type=int, default=20, help="jobs submitted straight to Ray Jobs")
    parser.add_argument("--direct-sleep", type=float, default=30.0,
                        help="seconds each direct job sleeps, so that all of them are alive together")
    parser.add_argument("--cpus", type=float, default=0.5, help="CPUs each queued run asks for")
    parser.add_argument("--threads", type=int, default=4, help="threads submitting to the tidal server")
    args = parser.parse_args()
    os.environ.update(RAY_ENVIRONMENT)
    with tempfile.TemporaryDirectory(prefix="tidal-queue-project-") as scratch:
        folder = project(Path(scratch))
        queue = through_tidal(args.runs, args.window, args.cpus, folder, args.threads)
        direct = straight_to_ray(args.direct, args.direct_sleep, folder)
    return 0 if report(queue, direct, args.runs, args.direct) else 1


if __name__ == "__main__":
    sys.exit(main())
