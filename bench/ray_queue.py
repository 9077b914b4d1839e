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

RSS counts a page shared by several processes (Ray's dashboard modules are forked from one
server) once per process, so the sum overstates what the head holds; PSS splits each shared page
between its processes, so it adds up. Both are printed, measured the same way on both sides. The
``ray start --block`` launcher is left out: on a real head ``ray start`` exits once the head is up.

    python bench/ray_queue.py [--runs 1000] [--window 180] [--direct 20] [--cpus 0.5]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

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
def tidal_server(home: Path) -> Iterator[tuple[str, psutil.Process]]:
    """``tidal server`` over a SQLite store in ``home``, on 127.0.0.1 (its dispatcher runs inside): its URL
    and its process."""
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
        yield url, psutil.Process(server.pid)
    finally:
        stop_group(server)


# --- the head's memory ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Memory:
    """Bytes over the head's processes: Ray's own and the job scripts', as RSS and as PSS."""

    ray_rss: int = 0
    ray_pss: int = 0
    scripts_rss: int = 0
    scripts_pss: int = 0
    supervisors: int = 0  # Ray Jobs' JobSupervisor actors alive


MEASURES = ["ray_rss", "ray_pss", "scripts_rss", "scripts_pss"]


def head_processes(group: int) -> list[psutil.Process]:
    """Every process the head started: its process tree and process group, less the ``ray start --block``
    launcher itself (``ray start`` without ``--block``, as on a real head, exits once the head is up)."""
    members: dict[int, psutil.Process] = {}
    with suppress(psutil.NoSuchProcess):
        members = {process.pid: process for process in psutil.Process(group).children(recursive=True)}
    for process in psutil.process_iter():  # anything that left the tree but kept the group
        try:
            if process.pid not in members and process.pid != group and os.getpgid(process.pid) == group:
                members[process.pid] = process
        except (ProcessLookupError, psutil.Error):
            continue
    return list(members.values())


def head_memory(group: int) -> Memory:
    totals: Counter[str] = Counter()
    for process in head_processes(group):
        try:
            info = process.memory_full_info()
            command = " ".join(process.cmdline())
        except psutil.Error:  # ended while we looked
            continue
        side = "scripts" if SCRIPT in command else "ray"
        totals["supervisors"] += "JobSupervisor" in command
        totals[f"{side}_rss"] += info.rss
        totals[f"{side}_pss"] += info.pss
    return Memory(**totals)


@dataclass
class Sampler:
    """The head's memory every ``interval`` seconds, in a thread, until stopped."""

    group: int
    interval: float = 0.5
    samples: list[Memory] = field(default_factory=list)
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
            self.samples.append(head_memory(self.group))
            self._stop.wait(self.interval)


def idle_memory(group: int, settle: float = 10, seconds: float = 10) -> Memory:
    """The head's idle figure: the median of each measure over ``seconds``, after ``settle`` seconds."""
    time.sleep(settle)
    with Sampler(group) as sampler:
        time.sleep(seconds)
    return Memory(**{name: int(statistics.median(getattr(sample, name) for sample in sampler.samples))
                     for name in MEASURES})


@dataclass
class Trial:
    """One way of submitting: the head's idle figure, its memory meanwhile, how the runs ended."""

    idle: Memory
    samples: list[Memory]
    statuses: Counter[str]
    seconds: float

    def peak(self, measure: str = "supervisors") -> int:
        return max(getattr(sample, measure) for sample in self.samples)

    def ratio(self, measure: str) -> float:
        return self.peak(measure) / getattr(self.idle, measure)


# --- tidal's queue --------------------------------------------------------------------------------

def submit_all(url: str, address: str, folder: Path, runs: int, cpus: float, threads: int) -> float:
    """``runs`` runs through ``tidal.remote.submit`` to the server's queue, from ``threads`` threads: seconds."""
    store = HTTPStore(url)

    def one(index: int) -> str:
        return submit(SCRIPT, ["1"], address=address, cpus=cpus, folder=folder, store=store, project="queue-bench",
                      name=f"sleep-{index}").status

    started = time.monotonic()
    try:
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            statuses = Counter(pool.map(one, range(runs)))
    finally:
        store.close()
    if statuses != {QueueStatus.WAITING.value: runs}:
        raise RuntimeError(f"expected {runs} waiting runs after submitting, got {dict(statuses)}")
    return time.monotonic() - started


def queue_statuses(url: str) -> Counter[str]:
    store = HTTPStore(url)
    try:
        return Counter(entry["status"] for entry in store.queue_entries(limit=100_000))
    finally:
        store.close()


@dataclass
class ServerCost:
    """What the tidal server itself spent meanwhile (it runs beside the head, or anywhere else)."""

    submitting: float  # seconds the submissions took
    cpu: float  # CPU seconds of the server over the whole window
    rss: int  # its RSS at the end


def through_tidal(runs: int, window: float, cpus: float, folder: Path, threads: int) -> tuple[Trial, ServerCost]:
    """The tidal side, and what the server cost."""
    with ray_head(2) as (address, group), tempfile.TemporaryDirectory(prefix="tidal-queue-bench-") as home:
        idle = idle_memory(group)
        with tidal_server(Path(home)) as (url, server), Sampler(group) as sampler:
            started = time.monotonic()
            submitting = submit_all(url, address, folder, runs, cpus, threads)
            statuses = queue_statuses(url)
            while sum(statuses[status] for status in ENDED) < runs and time.monotonic() - started < window:
                time.sleep(2)
                statuses = queue_statuses(url)
            seconds = time.monotonic() - started
            times = server.cpu_times()
            cost = ServerCost(submitting, times.user + times.system, server.memory_info().rss)
        return Trial(idle, sampler.samples, statuses, seconds), cost


# --- Ray Jobs alone -------------------------------------------------------------------------------

def straight_to_ray(runs: int, sleep: float, folder: Path) -> Trial:
    """``runs`` jobs given to Ray Jobs at once, as ``ray job submit`` does (no entrypoint resources)."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    for name in ("ray.dashboard.modules.dashboard_sdk", "ray._private.runtime_env.packaging"):
        logging.getLogger(name).setLevel(logging.WARNING)  # lines per job otherwise
    ended = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}
    with ray_head(2) as (address, group):
        idle = idle_memory(group)
        client = JobSubmissionClient(address)
        with Sampler(group) as sampler:
            started = time.monotonic()
            jobs = [client.submit_job(entrypoint=f"python {SCRIPT} {sleep:g}", runtime_env={"working_dir": str(folder)})
                    for _ in range(runs)]
            statuses = Counter(client.get_job_status(job) for job in jobs)
            while not set(statuses) <= ended and time.monotonic() - started < sleep + 300:
                time.sleep(1)
                statuses = Counter(client.get_job_status(job) for job in jobs)
            seconds = time.monotonic() - started
        return Trial(idle, sampler.samples, Counter({str(status.value): n for status, n in statuses.items()}),
                     seconds)


# --- the report -----------------------------------------------------------------------------------

def row(name: str, idle: Memory, peaks: dict[str, float], note: str) -> str:
    cells = "".join(f" {getattr(idle, f'ray_{kind}') / MB:6.0f} {peaks[f'ray_{kind}'] / MB:6.0f}"
                    f" {peaks[f'ray_{kind}'] / getattr(idle, f'ray_{kind}'):5.2f}x" for kind in ("rss", "pss"))
    return f"{name:38s}{cells} {peaks['scripts_pss'] / MB:8.0f}  {note}"


def report(queue: Trial, server: ServerCost, direct: Trial, runs: int, direct_runs: int) -> bool:
    ran = sum(queue.statuses[status] for status in ENDED)
    print("The Ray head's memory (2 CPUs), MB, summed over its processes; Ray's own, the job scripts apart")
    print(f"{'':38s} {'RSS: idle':>9s} {'peak':>6s} {'ratio':>6s} {'PSS: idle':>9s} {'peak':>6s} {'ratio':>6s}"
          f" {'scripts':>8s}")
    print(row(f"tidal queue, {runs} at once", queue.idle, {name: queue.peak(name) for name in MEASURES},
              f"{ran} of {runs} ended in {queue.seconds:.0f} s; at most {queue.peak()} supervisors alive"))
    print(row(f"Ray Jobs alone, {direct_runs} at once", direct.idle, {name: direct.peak(name) for name in MEASURES},
              f"{dict(direct.statuses)} in {direct.seconds:.0f} s; at most {direct.peak()} supervisors alive"))
    per_job = {name: (direct.peak(name) - getattr(direct.idle, name)) / direct_runs for name in MEASURES}
    extrapolated = {name: getattr(direct.idle, name) + runs * per_job[name] for name in MEASURES}
    print(row(f"Ray Jobs alone, {runs}: EXTRAPOLATED", direct.idle, extrapolated,
              f"{per_job['ray_rss'] / MB:.0f} MB RSS, {per_job['ray_pss'] / MB:.0f} MB PSS of Ray's per job"
              f" x {runs}, from {direct_runs} jobs"))
    print(f"tidal server (not on the head): submitting {runs} runs took {server.submitting:.0f} s; it used"
          f" {server.cpu:.0f} CPU s in {queue.seconds:.0f} s and ended at {server.rss / MB:.0f} MB RSS")
    if ran < runs:
        print(f"the queue had not drained on 2 CPUs after {queue.seconds:.0f} s: {ran} of {runs} runs ended"
              f" ({dict(queue.statuses)}); the peak is over that window")
    met = {kind: queue.ratio(f"ray_{kind}") <= GOAL for kind in ("rss", "pss")}
    print(f"goal: the head's peak with tidal's queue <= its idle figure x {GOAL:.2f}"
          f" (QUEUE_MAX_PENDING={settings.QUEUE_MAX_PENDING}): "
          + ", ".join(f"{kind.upper()} {queue.ratio(f'ray_{kind}'):.2f}x {'met' if ok else 'NOT met'}"
                      for kind, ok in met.items()))
    return all(met.values())


def project(folder: Path) -> Path:
    """The runs' working directory: one small script."""
    (folder / SCRIPT).write_text(SLEEP)
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000, help="runs submitted at once through tidal's queue")
    parser.add_argument("--window", type=float, default=180.0, help="seconds to watch the queue drain, at most")
    parser.add_argument("--direct", type=int, default=20, help="jobs submitted straight to Ray Jobs")
    parser.add_argument("--direct-sleep", type=float, default=30.0,
                        help="seconds each direct job sleeps, so that all of them are alive together")
    parser.add_argument("--cpus", type=float, default=0.5, help="CPUs each queued run asks for")
    parser.add_argument("--threads", type=int, default=4, help="threads submitting to the tidal server")
    args = parser.parse_args()
    os.environ.update(RAY_ENVIRONMENT)
    with tempfile.TemporaryDirectory(prefix="tidal-queue-project-") as scratch:
        folder = project(Path(scratch))
        queue, server = through_tidal(args.runs, args.window, args.cpus, folder, args.threads)
        direct = straight_to_ray(args.direct, args.direct_sleep, folder)
    return 0 if report(queue, server, direct, args.runs, args.direct) else 1


if __name__ == "__main__":
    sys.exit(main())
