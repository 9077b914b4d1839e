"""1,000 runs submitted at once: the Ray head's memory with tidal's queue in front, beside Ray Jobs alone.

Ray Jobs starts a supervisor actor (~85 MB) for every job it is given, at once, so a thousand
submissions can exhaust a cluster (ray #60159). tidal's queue keeps them as rows in its store and
its dispatcher (inside ``tidal server``) hands Ray at most ``QUEUE_MAX_PENDING`` not-yet-started
runs per cluster, and only when Ray's load report shows their resources free.

Where a supervisor and its driver live depends on the cluster. tidal always asks for entrypoint
resources (``--cpus 1`` by default), and Ray schedules such a job's supervisor on any node with
them free; Ray's docs recommend a head started with ``--num-cpus=0`` on a real cluster, so no work
lands there. The goal is judged on that topology (``--topology two-node``, the default): two Ray
nodes on 127.0.0.1, each a ``ray start --block`` in its own process group, temp dir and ports:

- the head, ``--num-cpus=0``: gcs_server, its raylet, the dashboard and its modules, the
  dashboard agent (which holds Ray's JobManager), the runtime-env agent, the autoscaler monitor,
  the log monitor, the Ray client server, and any worker its raylet forks;
- a worker node, ``--num-cpus=--worker-cpus`` (2): its raylet, its two agents, its log monitor,
  and what its raylet forks: job supervisors and, below them, the job scripts (the drivers).

A process belongs to the node whose launcher it descends from (or whose process group it kept).
``--topology one-node`` measures the head alone with the CPUs on it (every supervisor and driver
then runs on the head), as this bench did before.

In one run: (1) a fresh cluster, each node's cold idle memory (Ray has run no job yet);
``tidal server`` (SQLite store, its dispatcher pointed at the head) and one run through the queue
to its end, then each node's warm idle memory (Ray's job manager starts with its first job, once);
then ``--runs`` tiny runs submitted at once through ``tidal.remote.submit`` (a script that sleeps
~1 s), both nodes and the server sampled while the queue drains, or for ``--window`` seconds when
the worker's CPUs cannot drain it sooner (then it says how many ran); what grew, process by
process, and how fast per 1,000 runs ended once warm; (2) a fresh cluster of the same topology,
``--direct`` jobs given straight to Ray Jobs as ``ray job submit`` does (no entrypoint resources:
Ray pins each supervisor to the head, whatever its CPUs), the cost per job extrapolated to
``--runs`` (said so in the output); (3) with ``--bare N``, a fresh cluster again and N jobs
straight to Ray Jobs fed the way the dispatcher feeds them (entrypoint CPUs, as many at once), with
no tidal at all: what the head does per job on its own, beside what it does under tidal's queue.

``--head-env NAME=VALUE`` (repeatable) starts the head's ``ray start`` with that environment variable
(a RAY_... setting: e.g. ``RAY_maximum_gcs_destroyed_actor_cached_count=100``); the queue is then
measured twice in the same run, on a head with Ray's defaults and on one with the settings, side by
side (``--head-env-only``: the settings alone), and every figure names the settings it was measured
with. The worker node keeps Ray's defaults.

RSS counts a page shared by several processes (Ray's dashboard modules are forked from one
server) once per process, so the sum overstates what a node holds; PSS splits each shared page
between its processes, so it adds up. Both are printed, measured the same way on every side. The
``ray start --block`` launchers are left out: on a real node ``ray start`` exits once it is up.

    python bench/ray_queue.py [--topology two-node|one-node] [--runs 1000] [--window 180]
                              [--direct 20] [--bare 0] [--cpus 0.5] [--worker-cpus 2]
                              [--head-env NAME=VALUE ...] [--head-env-only]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import os
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
from tidal.children import stop_group
from tidal.remote.submit import submit
from tidal.status import QueueStatus
from tidal.tracking.httpstore import HTTPStore

GOAL = 1.10  # the head's peak with tidal's queue, over its idle figure
SCRIPT = "tidal_bench_sleep.py"  # a name no Ray process carries: how a job script is told from Ray's own
SLEEP = "import sys, time\ntime.sleep(float(sys.argv[1]))\nprint('slept', sys.argv[1])\n"
# Every Ray process stays on 127.0.0.1 (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 makes Ray resolve
# "this node" to the loopback address, not the machine's outward one)
RAY_ENVIRONMENT = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
                   "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
# A second node joining on 127.0.0.1: `ray start --address=127.0.0.1:PORT` rewrites a loopback
# address to the machine's outward IP, where the head does not listen, and refuses to join at all
# under RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0. The launcher lifts both in its own process only; the
# processes it starts keep 127.0.0.1. (On a real cluster: `ray start --address=HEAD:6379`.)
JOIN = ("import sys, ray._private.services as services; services.resolve_ip_for_localhost = lambda host: host; "
        "services.ray_constants.ENABLE_RAY_CLUSTER = True; from ray.scripts.scripts import main; "
        "sys.argv[0] = 'ray'; main()")
MB = 1024 * 1024
ENDED = [status.value for status in QueueStatus.ended()]
# what each process of a node is, by its command line: the first pattern found names it
ROLES = [("script", SCRIPT), ("supervisor", "JobSupervisor"), ("gcs_server", "gcs_server"),
         ("raylet", "/raylet/raylet"), ("runtime env agent", "RuntimeEnvAgent"), ("dashboard agent", "DashboardAgent"),
         ("log monitor", "log_monitor.py"), ("autoscaler monitor", "monitor.py"),
         ("client server", "ray.util.client.server"), ("dashboard", "dashboard"), ("dashboard", "multiprocessing")]
RAY_WORKER = "ray workers"  # anything else a raylet forked (idle workers, actors)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- processes this bench starts: each in its own process group, stopped by group -------------------

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


@dataclass(frozen=True)
class Cluster:
    """A local Ray cluster: its dashboard (Ray Jobs), its nodes' process groups (the head first)."""

    address: str
    nodes: dict[str, int]


def ray_environment(extra: dict[str, str]) -> dict[str, str]:
    binaries = Path(sys.executable).parent  # the cluster's python is this one, as on a real cluster's nodes
    return (os.environ | RAY_ENVIRONMENT | {"PATH": f"{binaries}{os.pathsep}{os.environ.get('PATH', '')}"}
            | extra)


def start_node(command: list[str], temp: Path, extra: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    log = temp / "start.log"
    with log.open("wb") as output:
        return subprocess.Popen(command, env=ray_environment(extra), start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=output), log


def node_ports() -> list[str]:
    """The ports every node opens, each a free one (another Ray may run on this machine)."""
    return [f"{flag}={free_port()}" for flag in (
        "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port",
        "--metrics-export-port")]


def cpus_in(address: str) -> float:
    usage = httpx.get(f"{address}/api/cluster_status", timeout=5).json()["data"]["clusterStatus"]
    return float(usage["loadMetricsReport"]["usage"].get("CPU", (0.0, 0.0))[1])


@contextmanager
def ray_cluster(topology: str, worker_cpus: int, head_settings: dict[str, str]) -> Iterator[Cluster]:
    """A head with its dashboard on 127.0.0.1, started with ``head_settings`` (environment variables of
    its ``ray start``: RAY_... settings) and, in two-node, a worker node joined to it with Ray's defaults."""
    head_cpus = 0 if topology == "two-node" else worker_cpus
    started: list[subprocess.Popen[bytes]] = []
    temps = [Path(tempfile.mkdtemp(prefix="rq", dir="/tmp")) for _ in range(2)]  # sockets: short paths
    gcs, dashboard = free_port(), free_port()
    address = f"http://127.0.0.1:{dashboard}"
    binaries = Path(sys.executable).parent
    try:
        head, log = start_node([
            str(binaries / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
            "--dashboard-host=127.0.0.1", "--include-dashboard=true", f"--num-cpus={head_cpus}", "--num-gpus=0",
            f"--temp-dir={temps[0]}", "--disable-usage-stats", f"--port={gcs}", f"--dashboard-port={dashboard}",
            f"--ray-client-server-port={free_port()}", *node_ports()], temps[0], head_settings)
        started.append(head)
        wait_until(lambda: httpx.get(f"{address}/api/jobs/", timeout=2).status_code == 200, head, log, "ray start")
        if topology == "two-node":
            worker, log = start_node([
                sys.executable, "-c", JOIN, "start", "--block", f"--address=127.0.0.1:{gcs}",
                "--node-ip-address=127.0.0.1", f"--num-cpus={worker_cpus}", "--num-gpus=0", f"--temp-dir={temps[1]}",
                "--disable-usage-stats", *node_ports()], temps[1], {})
            started.append(worker)
            wait_until(lambda: cpus_in(address) >= worker_cpus, worker, log, "the worker node")
        nodes = {"head": head.pid} | ({"worker node": started[1].pid} if topology == "two-node" else {})
        yield Cluster(address, nodes)
    finally:
        for process in reversed(started):
            stop_group(process)
        for temp in temps:
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


# --- memory ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Memory:
    """Bytes over a set of processes, by role (``ROLES``): RSS, PSS, and how many processes."""

    rss: Counter[str] = field(default_factory=Counter)
    pss: Counter[str] = field(default_factory=Counter)
    count: Counter[str] = field(default_factory=Counter)

    def ray(self, kind: str) -> int:
        """Ray's own: every role but the job scripts (the user's work)."""
        return sum(value for role, value in getattr(self, kind).items() if role != "script")

    def total(self, kind: str) -> int:
        return sum(getattr(self, kind).values())


def node_processes(group: int) -> list[psutil.Process]:
    """Every process a node's launcher started: its process tree and process group, less the
    ``ray start --block`` launcher itself (without ``--block``, as on a real node, it exits once up)."""
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


def role(command: str) -> str:
    return next((name for name, pattern in ROLES if pattern in command), RAY_WORKER)


def measure(processes: list[psutil.Process]) -> Memory:
    memory = Memory()
    for process in processes:
        try:
            info = process.memory_full_info()
            name = role(" ".join(process.cmdline()))
        except psutil.Error:  # ended while we looked
            continue
        memory.rss[name] += info.rss
        memory.pss[name] += info.pss
        memory.count[name] += 1
    return memory


@dataclass
class Sampler:
    """Each node's memory (and the tidal server's, when given) every ``interval`` seconds, in a thread."""

    cluster: Cluster
    server: psutil.Process | None = None
    interval: float = 1.0
    samples: list[dict[str, Memory]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # time.monotonic() of each sample
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._loop, name="memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            sample = {node: measure(node_processes(group)) for node, group in self.cluster.nodes.items()}
            if self.server is not None:
                sample["tidal server"] = measure([self.server])
            self.samples.append(sample)
            self.times.append(time.monotonic())
            self._stop.wait(self.interval)

    def peak(self, side: str, kind: str) -> int:
        return max(sample[side].ray(kind) for sample in self.samples)

    def last(self, side: str) -> Memory:
        return self.samples[-1][side]

    def around(self, side: str, start: float, end: float, roles: list[str]) -> float:
        """The median PSS of ``roles`` of ``side`` over the samples taken between ``start`` and ``end``."""
        return statistics.median(sum(sample[side].pss[role] for role in roles)
                                 for sample, at in zip(self.samples, self.times, strict=True) if start <= at <= end)


def median_memory(samples: list[Memory]) -> Memory:
    """Each role's median over ``samples``."""
    roles = {name for sample in samples for name in sample.pss}
    return Memory(*(Counter({name: int(statistics.median(getattr(sample, kind)[name] for sample in samples))
                             for name in roles}) for kind in ("rss", "pss", "count")))


def idle_memory(cluster: Cluster, settle: float = 15, seconds: float = 15) -> dict[str, Memory]:
    """Each node's idle figure: per role, the median over ``seconds``, after ``settle`` seconds."""
    time.sleep(settle)
    with Sampler(cluster) as sampler:
        time.sleep(seconds)
    return {node: median_memory([sample[node] for sample in sampler.samples]) for node in cluster.nodes}


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


def queue_statuses(url: str, leaving_out: str) -> Counter[str]:
    """How many of the queue's runs have each status, less run ``leaving_out`` (the warm-up)."""
    store = HTTPStore(url)
    try:
        return Counter(entry["status"] for entry in store.queue_entries(limit=100_000)
                       if entry["run_id"] != leaving_out)
    finally:
        store.close()


def ray_jobs(address: str) -> int:
    """How many jobs Ray's head keeps (every one it was given, ended or not)."""
    return len(httpx.get(f"{address}/api/jobs/", timeout=30).json())


@dataclass
class QueueTrial:
    """The tidal side: idle figures, the samples while the queue drained, how the runs ended."""

    idle: dict[str, Memory]
    sampler: Sampler
    statuses: Counter[str]
    seconds: float
    submitting: float  # seconds the submissions took
    server_idle: Memory  # the tidal server before the submissions
    server_cpu: float  # CPU seconds of the server over the window
    ray_jobs: int  # jobs Ray's head kept at the end
    progress: list[tuple[float, int]]  # (time.monotonic(), runs ended by then)
    warm: dict[str, Memory]  # each node's idle figure once one run had gone through
    head_settings: dict[str, str]  # the environment the head was started with, beyond Ray's defaults


def per_thousand_runs(sampler: Sampler, progress: list[tuple[float, int]], side: str,
                      roles: list[str]) -> float | None:
    """How much ``roles`` of ``side`` grew per 1,000 runs ended, once warm: from when a quarter of the
    runs that ended had ended to the end (each a median PSS over 20 s); None with too few runs to say."""
    ended = progress[-1][1]
    quarter = next(((at, count) for at, count in progress if count >= max(ended // 4, 1)), None)
    if ended < 40 or quarter is None or progress[-1][0] - quarter[0] < 60:
        return None
    before = sampler.around(side, quarter[0] - 10, quarter[0] + 10, roles)
    after = sampler.around(side, progress[-1][0] - 20, progress[-1][0], roles)
    return (after - before) / (ended - quarter[1]) * 1000


def warm_up(url: str, address: str, folder: Path, cpus: float) -> str:
    """One run through the queue, to its end: Ray's job manager starts with its first job (about
    30 MB on the head, once); the per-run figures are measured from there."""
    store = HTTPStore(url)
    try:
        run_id = submit(SCRIPT, ["0"], address=address, cpus=cpus, folder=folder, store=store,
                        project="queue-bench", name="warm-up").run_id
        deadline = time.monotonic() + 300
        while store.queue_entry(run_id)["status"] not in ENDED:
            if time.monotonic() > deadline:
                raise RuntimeError("the warm-up run did not end within 300 s")
            time.sleep(1)
    finally:
        store.close()
    return run_id


def through_tidal(topology: str, worker_cpus: int, runs: int, window: float, cpus: float, folder: Path,
                  threads: int, head_settings: dict[str, str]) -> QueueTrial:
    with ray_cluster(topology, worker_cpus, head_settings) as cluster, \
            tempfile.TemporaryDirectory(prefix="tidal-queue-bench-") as home:
        idle = idle_memory(cluster)
        with tidal_server(Path(home)) as (url, server):
            warm_run = warm_up(url, cluster.address, folder, cpus)
            warm = idle_memory(cluster, settle=10, seconds=10)
            server_idle = measure([server])
            with Sampler(cluster, server) as sampler:
                started = time.monotonic()
                submitting = submit_all(url, cluster.address, folder, runs, cpus, threads)
                statuses = queue_statuses(url, warm_run)
                progress = [(time.monotonic(), 0)]
                while progress[-1][1] < runs and time.monotonic() - started < window:
                    time.sleep(2)
                    statuses = queue_statuses(url, warm_run)
                    progress.append((time.monotonic(), sum(statuses[status] for status in ENDED)))
                seconds = time.monotonic() - started
            times = server.cpu_times()
            return QueueTrial(idle, sampler, statuses, seconds, submitting, server_idle, times.user + times.system,
                              ray_jobs(cluster.address), progress, warm, head_settings)


# --- Ray Jobs alone -------------------------------------------------------------------------------

@dataclass
class DirectTrial:
    idle: dict[str, Memory]
    sampler: Sampler
    statuses: Counter[str]
    seconds: float
    progress: list[tuple[float, int]] = field(default_factory=list)  # (time.monotonic(), jobs ended by then)
    warm: dict[str, Memory] = field(default_factory=dict)


def quiet_job_client() -> None:
    for name in ("ray.dashboard.modules.dashboard_sdk", "ray._private.runtime_env.packaging"):
        logging.getLogger(name).setLevel(logging.WARNING)  # lines per job otherwise


def straight_to_ray(topology: str, worker_cpus: int, runs: int, sleep: float, folder: Path,
                    head_settings: dict[str, str]) -> DirectTrial:
    """``runs`` jobs given to Ray Jobs at once, as ``ray job submit`` does (no entrypoint resources)."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    quiet_job_client()
    ended = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}
    with ray_cluster(topology, worker_cpus, head_settings) as cluster:
        idle = idle_memory(cluster)
        client = JobSubmissionClient(cluster.address)
        with Sampler(cluster) as sampler:
            started = time.monotonic()
            jobs = [client.submit_job(entrypoint=f"python {SCRIPT} {sleep:g}", runtime_env={"working_dir": str(folder)})
                    for _ in range(runs)]
            statuses = Counter(client.get_job_status(job) for job in jobs)
            while not set(statuses) <= ended and time.monotonic() - started < sleep + 300:
                time.sleep(1)
                statuses = Counter(client.get_job_status(job) for job in jobs)
            seconds = time.monotonic() - started
        return DirectTrial(idle, sampler, Counter({str(status.value): n for status, n in statuses.items()}), seconds)


def bare_ray(topology: str, worker_cpus: int, runs: int, cpus: float, folder: Path,
             head_settings: dict[str, str]) -> DirectTrial:
    """``runs`` jobs straight to Ray Jobs as tidal hands them over (``cpus`` entrypoint CPUs, as many
    at once as the dispatcher would have: the worker's CPUs' worth running, QUEUE_MAX_PENDING more),
    without tidal: what the head does per job on its own, to tell it from what tidal adds."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    quiet_job_client()
    ended = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}
    at_once = int(worker_cpus / cpus) + settings.QUEUE_MAX_PENDING
    with ray_cluster(topology, worker_cpus, head_settings) as cluster:
        idle = idle_memory(cluster)
        client = JobSubmissionClient(cluster.address)

        def one(sleep: str) -> str:
            return str(client.submit_job(entrypoint=f"python {SCRIPT} {sleep}", entrypoint_num_cpus=cpus,
                                         runtime_env={"working_dir": str(folder)}))

        first = one("0")
        while client.get_job_status(first) not in ended:
            time.sleep(1)
        warm = idle_memory(cluster, settle=10, seconds=10)
        live: list[str] = []
        done = 0
        with Sampler(cluster) as sampler:
            started = time.monotonic()
            progress = [(started, 0)]
            while done < runs:
                live += [one("1") for _ in range(min(at_once - len(live), runs - done - len(live)))]
                time.sleep(2)
                still = [job for job in live if client.get_job_status(job) not in ended]
                done, live = done + len(live) - len(still), still
                progress.append((time.monotonic(), done))
        return DirectTrial(idle, sampler, Counter({"ended": done}), time.monotonic() - started, progress, warm)


# --- the report -----------------------------------------------------------------------------------

def mb(value: float) -> str:
    return f"{value / MB:,.0f}"


def figures(label: str, idle: Memory, sampler: Sampler, side: str) -> str:
    cells = []
    for kind in ("pss", "rss"):
        before, peak = idle.ray(kind), sampler.peak(side, kind)
        cells.append(f"{mb(before):>7s} {mb(peak):>7s} {peak / before:5.2f}x")
    supervisors = max(sample[side].count["supervisor"] for sample in sampler.samples)
    scripts = max(sample[side].total("pss") - sample[side].ray("pss") for sample in sampler.samples)
    return f"{label:44s} {cells[0]}   {cells[1]}  {supervisors:6d} {mb(scripts):>8s}"


def growth(idle: Memory, warm: Memory, sampler: Sampler, progress: list[tuple[float, int]], side: str) -> list[str]:
    """Each role of ``side``: PSS cold, warm, at its peak, at the end (MB); for the node's own processes
    (those up before any job: not supervisors or workers, which come and go), the growth per 1,000 runs
    once warm, and their total."""
    end = sampler.last(side)
    lasting = [name for name in idle.pss if idle.count[name]]
    lines = []
    for name in sorted(set(idle.pss) | set(end.pss), key=lambda name: -idle.pss.get(name, 0)):
        peak = max(sample[side].pss[name] for sample in sampler.samples)
        slope = per_thousand_runs(sampler, progress, side, [name]) if name in lasting else None
        lines.append(f"  {name:20s} {mb(idle.pss[name]):>6s} {mb(warm.pss[name]):>6s} {mb(peak):>6s}"
                     f" {mb(end.pss[name]):>6s} {'' if slope is None else f'{slope / MB:+8.1f}'}")
    slope = per_thousand_runs(sampler, progress, side, lasting)
    if slope is not None:
        total = {name: sum(memory.pss[role] for role in lasting) for name, memory in (("idle", idle), ("warm", warm),
                                                                                      ("end", end))}
        peak = max(sum(sample[side].pss[role] for role in lasting) for sample in sampler.samples)
        lines.append(f"  {'node processes':20s} {mb(total['idle']):>6s} {mb(total['warm']):>6s} {mb(peak):>6s}"
                     f" {mb(total['end']):>6s} {slope / MB:+8.1f}")
    return lines


def setting(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` from the command line."""
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (e.g. RAY_task_events_max_num_task_in_gcs=1000),"
                                         f" got {text!r}")
    return name, value


def direct_settings(args: argparse.Namespace) -> dict[str, str]:
    """The settings ``--head-env`` gives the head (Ray Jobs alone is measured with them)."""
    return dict(args.head_env)


def described(settings: dict[str, str]) -> str:
    """How a head was started: Ray's defaults, or the settings given on top of them."""
    return ", ".join(f"{name}={value}" for name, value in settings.items()) or "Ray's defaults"


def queue_figures(args: argparse.Namespace, queue: QueueTrial) -> None:
    ran = sum(queue.statuses[status] for status in ENDED)
    name = f"tidal queue, {args.runs} runs"
    for side in queue.idle:
        print(figures(f"{side}, {name} (cold)", queue.idle[side], queue.sampler, side))
        print(figures(f"{side}, {name} (warm)", queue.warm[side], queue.sampler, side))
    print(figures("tidal server (not a Ray node)", queue.server_idle, queue.sampler, "tidal server"))
    print(f"tidal queue: {ran} of {args.runs} runs ended in {queue.seconds:.0f} s ({dict(queue.statuses)});"
          f" submitting took {queue.submitting:.0f} s; the server used {queue.server_cpu:.0f} CPU s; Ray's head kept"
          f" {queue.ray_jobs} jobs at the end")
    if ran < args.runs:
        print(f"the queue had not drained after {queue.seconds:.0f} s: {ran} of {args.runs} runs ended; the peak is"
              " over that window")


def goal(queue: QueueTrial) -> bool:
    """Whether the head's peak stayed within ``GOAL`` times its idle figure, cold and warm (printed)."""
    met = True
    for label, idle in (("cold", queue.idle["head"]), ("warm", queue.warm["head"])):
        ratios = {kind: queue.sampler.peak("head", kind) / idle.ray(kind) for kind in ("pss", "rss")}
        met = met and all(ratio <= GOAL for ratio in ratios.values())
        verdicts = [f"{kind.upper()} {ratio:.3f}x {'met' if ratio <= GOAL else 'NOT met'}"
                    for kind, ratio in ratios.items()]
        print(f"goal ({described(queue.head_settings)}): the head's peak with tidal's queue <= its {label} idle"
              f" figure x {GOAL:.2f}: " + ", ".join(verdicts))
    return met


def report(args: argparse.Namespace, queues: list[QueueTrial], direct: DirectTrial | None,
           bare: DirectTrial | None) -> bool:
    """Every figure, each queue trial under the head settings it was measured with; whether the goal was met
    by the last queue trial (the head as started with ``--head-env``, when given)."""
    head = "a head with --num-cpus=0" if args.topology == "two-node" else f"the head alone ({args.worker_cpus} CPUs)"
    print(f"topology: {args.topology}: {head}" + (f" + a worker node ({args.worker_cpus} CPUs)"
                                                  if args.topology == "two-node" else "")
          + "; the goal is judged on the two-node head")
    print(f"MB, summed over each side's processes; Ray's own (job scripts apart); cold: before any job; warm:"
          f" after one run; QUEUE_MAX_PENDING={settings.QUEUE_MAX_PENDING}; load {os.getloadavg()[0]:.1f}")
    header = (f"{'':44s} {'PSS idle':>7s} {'peak':>7s} {'ratio':>6s}   {'RSS idle':>7s} {'peak':>7s} {'ratio':>6s}"
              f"  {'superv.':>6s} {'scripts':>8s}")
    for queue in queues:
        print(f"the head started with {described(queue.head_settings)}:")
        print(header)
        queue_figures(args, queue)
    if direct is not None:
        print(f"Ray Jobs alone, the head started with {described(direct_settings(args))}:")
        print(header)
        for side in direct.idle:
            print(figures(f"{side}, Ray Jobs alone, {args.direct} at once", direct.idle[side], direct.sampler, side))
        print(f"Ray Jobs alone: {dict(direct.statuses)} in {direct.seconds:.0f} s (no entrypoint resources, as"
              " `ray job submit`: Ray pins each supervisor to the head)")
        head_idle = direct.idle["head"]
        per_job = {kind: (direct.sampler.peak("head", kind) - head_idle.ray(kind)) / args.direct
                   for kind in ("pss", "rss")}
        print(f"Ray Jobs alone, {args.runs} at once: EXTRAPOLATED from {args.direct}: the head at "
              + ", ".join(f"{kind.upper()} {mb(head_idle.ray(kind) + args.runs * per_job[kind])} MB"
                          f" ({mb(per_job[kind])} MB per job)" for kind in ("pss", "rss")))
    trials = [(f"tidal queue, {described(queue.head_settings)}", queue.idle, queue.warm, queue.sampler,
               queue.progress) for queue in queues]
    if bare is not None:
        trials.append((f"Ray Jobs alone fed like the queue ({bare.statuses['ended']} jobs in {bare.seconds:.0f} s),"
                       f" {described(direct_settings(args))}", bare.idle, bare.warm, bare.sampler, bare.progress))
    for name, idle, warm, sampler, progress in trials:
        for side in idle:
            print(f"{side}, {name}: PSS by process, MB: cold, warm, peak, end, per 1,000 runs once warm")
            print("\n".join(growth(idle[side], warm[side], sampler, progress, side)))
    return [goal(queue) for queue in queues][-1]


def project(folder: Path) -> Path:
    """The runs' working directory: one small script."""
    (folder / SCRIPT).write_text(SLEEP)
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topology", choices=("two-node", "one-node"), default="two-node",
                        help="a head with --num-cpus=0 and a worker node (the goal's), or the head alone")
    parser.add_argument("--worker-cpus", type=int, default=2, help="CPUs of the node the runs run on")
    parser.add_argument("--runs", type=int, default=1000, help="runs submitted at once through tidal's queue")
    parser.add_argument("--window", type=float, default=180.0, help="seconds to watch the queue drain, at most")
    parser.add_argument("--direct", type=int, default=20, help="jobs submitted straight to Ray Jobs (0: none)")
    parser.add_argument("--direct-sleep", type=float, default=30.0,
                        help="seconds each direct job sleeps, so that all of them are alive together")
    parser.add_argument("--bare", type=int, default=0,
                        help="jobs straight to Ray Jobs fed as the queue feeds them (0: skip): the head per job"
                             " without tidal")
    parser.add_argument("--cpus", type=float, default=0.5, help="CPUs each queued run asks for")
    parser.add_argument("--threads", type=int, default=4, help="threads submitting to the tidal server")
    parser.add_argument("--head-env", type=setting, action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for the head's `ray start` (a RAY_... setting; repeatable):"
                             " the queue is then measured on a head with Ray's defaults and on one with these"
                             " settings, side by side; Ray Jobs alone (--direct, --bare) with these settings")
    parser.add_argument("--head-env-only", action="store_true",
                        help="with --head-env: measure the queue on the head with the settings only")
    args = parser.parse_args()
    os.environ.update(RAY_ENVIRONMENT)
    head_settings = direct_settings(args)
    trials = [{}, head_settings] if head_settings and not args.head_env_only else [head_settings]
    with tempfile.TemporaryDirectory(prefix="tidal-queue-project-") as scratch:
        folder = project(Path(scratch))
        queues = [through_tidal(args.topology, args.worker_cpus, args.runs, args.window, args.cpus, folder,
                                args.threads, trial) for trial in trials]
        direct = (straight_to_ray(args.topology, args.worker_cpus, args.direct, args.direct_sleep, folder,
                                  head_settings) if args.direct else None)  # --direct 0: not measured
        bare = (bare_ray(args.topology, args.worker_cpus, args.bare, args.cpus, folder, head_settings) if args.bare
                else None)
    return 0 if report(args, queues, direct, bare) else 1


if __name__ == "__main__":
    sys.exit(main())
