"""The Ray backend against a real Ray (2 CPUs, on 127.0.0.1) started once for this module: the
shared Backend suite, scale to zero as Ray Serve itself reports it, and the HTTP front over it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from backend_suite import BackendSuite, MakeBackend, eventually, predict, results, started
from servehelpers import HERE, echo, pid_alive, serving

from rayhost import local_ray
from tidal.errors import ConfigError
from tidal.serve.config import ServiceConfig, parse_service
from tidal.serve.local import describe_processor
from tidal.serve.ray import RayServeBackend, deployment_options, ray_serve

ray = pytest.importorskip("ray", reason="the Ray backend's tests need Ray Serve: pip install -e '.[ray]'")

REPLICA_CPUS = 0.25  # two replicas and Serve's controller fit in the 2 CPUs


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A local Ray of 2 CPUs for the whole module, with Ray Serve's controller (no HTTP proxy)."""
    with local_ray(2) as address:
        try:
            yield address
        finally:
            ray_serve().shutdown()


def ray_service(processor: dict[str, Any], **http: Any) -> ServiceConfig:
    data = {"processor": processor, "imports": ["serveprocessors"], "http": http, "name": "test-service",
            "backend": {"ray": {"num_cpus": REPLICA_CPUS}}}
    return parse_service(data, "test service", HERE)


def ray_backend(processor: dict[str, Any], **http: Any) -> RayServeBackend:
    config = ray_service(processor, **http)
    return RayServeBackend(config, describe_processor(config))


@pytest.mark.slow
class TestRayServeBackend(BackendSuite):
    @pytest.fixture
    def make_backend(self, ray_cluster: str) -> MakeBackend:
        return ray_backend


def serve_replicas(application: str) -> dict[str, int]:
    """Ray Serve's own count of the application's replicas by state (its public status API)."""
    with warnings.catch_warnings():  # it re-reads the autoscaling config: metrics_interval_s is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        found = ray_serve().status().applications.get(application)
    if found is None:
        return {}
    return {str(state): count for deployment in found.deployments.values()
            for state, count in deployment.replica_states.items() if count}


@pytest.mark.slow
def test_the_deployment_starts_at_zero_and_scales_back_to_zero_when_idle(ray_cluster: str) -> None:
    """Fails when Ray Serve starts a replica nobody asked for, or keeps one after the idle
    timeout (ray #59076: from 2.51 min_replicas=0 started one replica and never scaled down)."""
    idle_timeout = 1.0

    async def test() -> None:
        async with started(ray_backend(echo(), idle_timeout=idle_timeout)) as backend:
            await asyncio.sleep(1.0)  # a replica started with the deployment would be there by now
            assert serve_replicas(backend.application) == {}
            for _ in range(2):  # down to zero, and again from zero
                pid = results(await predict(backend, "x"))[0]["pid"]
                assert sum(serve_replicas(backend.application).values()) == 1
                last = time.monotonic()
                await eventually(lambda: not serve_replicas(backend.application), idle_timeout + 15,
                                 f"Ray Serve kept a replica {idle_timeout + 15:g} s after the last request "
                                 f"(idle timeout {idle_timeout:g} s): {serve_replicas(backend.application)}")
                await eventually(lambda p=pid: not pid_alive(p), 10, f"replica process {pid} outlived its replica")
                assert time.monotonic() - last >= idle_timeout

    asyncio.run(test())


@pytest.mark.slow
def test_the_front_serves_the_same_api_through_ray(ray_cluster: str) -> None:
    """Hooks, validation by the front, per-request errors and metrics, as with the local backend."""
    data = {"processor": {"serveprocessors.WordLengths": {}}, "imports": ["serveprocessors"], "name": "words",
            "backend": "ray", "http": {"idle_timeout": 30}}
    config = parse_service(data, "test service", HERE)
    assert config.backend == "ray" and config.ray.num_cpus == 1.0
    with serving(config) as front:
        assert isinstance(front.backend, RayServeBackend)
        assert front.status()["state"] == "idle (scaled to zero)"
        answered = front.predict({"text": "a quick fox"})
        assert answered.status_code == 200, answered.text
        assert answered.json() == {"lengths": [1, 5, 3], "total": 9}
        blank = front.predict({"text": "  "})
        assert blank.status_code == 422 and "text is blank" in blank.json()["error"]
        refused = front.predict({"txt": "no"})  # checked by the front: no replica involved
        assert refused.status_code == 422 and "text" in json.dumps(refused.json())
        assert front.metric("tidal_serve_cold_starts_total") == 1
        assert front.metric('tidal_serve_workers{state="ready"}') == 1
        # one batch of three words (the blank sentence never reached process())
        assert (front.metric("tidal_serve_batch_items_count"), front.metric("tidal_serve_batch_items_sum")) == (1, 3)


@pytest.mark.slow
def test_a_replica_stuck_in_process_is_replaced_and_the_next_request_answered(ray_cluster: str) -> None:
    """The Ray backend's watchdog: a batch still in process() past request_timeout + 1 s fails the
    replica's health check; Ray Serve stops it (its process exits) and a new replica answers."""
    request_timeout = 8.0  # a cold start on a loaded 2-CPU machine fits in it

    async def test() -> None:
        async with started(ray_backend(echo(), request_timeout=request_timeout, idle_timeout=60)) as backend:
            pid = results(await predict(backend, "warm"))[0]["pid"]
            began = time.monotonic()
            stuck = await predict(backend, "hang")  # sleeps an hour in process()
            assert stuck.status == 504 and time.monotonic() - began < request_timeout + 5
            await eventually(lambda: not pid_alive(pid), 60, f"the stuck replica's process {pid} was not stopped")
            after = await predict(backend, "after")
            if after.status == 504 and b"waiting for a replica to start" in after.body:
                after = await predict(backend, "after")  # a loaded machine started the new replica in more than 8 s
            assert results(after)[0]["pid"] != pid

    asyncio.run(test())


@pytest.mark.slow
def test_a_processor_whose_setup_fails_answers_500_with_its_error(ray_cluster: str) -> None:
    """Once Ray Serve gives up starting a replica, waiting requests fail at once, not at their timeout."""

    async def test() -> None:
        async with started(ray_backend({"serveprocessors.BrokenSetup": {}}, request_timeout=60)) as backend:
            began = time.monotonic()
            failed = await predict(backend, 1)
            assert failed.status == 500 and time.monotonic() - began < 30
            error = json.loads(failed.body)["error"]
            assert error.startswith("the model worker could not start: serveprocessors.BrokenSetup")
            assert "RuntimeError: model weights missing" in error
            status = backend.status()
            assert not status["ready"] and "model weights missing" in status["last_setup_error"]

    asyncio.run(test())


@pytest.mark.slow
def test_after_setup_failed_requests_fail_fast_then_a_later_one_tries_setup_again(
        ray_cluster: str, tmp_path: Path) -> None:
    """As the local backend: once Ray Serve gave up on setup(), requests fail at once (Retry-After),
    and one that comes SETUP_RETRY_SECONDS later starts fresh replicas: a cause that went away
    (weights arrived) does not need the service restarted."""
    from tidal.serve.scaling import SETUP_RETRY_SECONDS

    flag = tmp_path / "weights-missing"
    flag.touch()

    async def test() -> None:
        processor = {"serveprocessors.SetupFailsWhile": {"flag": str(flag)}}
        async with started(ray_backend(processor, request_timeout=60)) as backend:
            failed = await predict(backend, 1)
            assert failed.status == 500 and "not ready" in json.loads(failed.body)["error"]
            began = time.monotonic()
            fast = await predict(backend, 2)
            assert fast.status == 500 and time.monotonic() - began < 3.0  # a new attempt would take far longer
            assert "next attempt is in at most" in json.loads(fast.body)["error"]
            assert 1 <= int(fast.headers["Retry-After"]) <= SETUP_RETRY_SECONDS
            flag.unlink()
            await asyncio.sleep(SETUP_RETRY_SECONDS)
            answered = await predict(backend, 3)
            assert results(answered)[0]["value"] == 3
            assert backend.status()["ready"]

    asyncio.run(test())


@pytest.mark.slow
def test_asking_for_gpus_the_cluster_lacks_is_said_at_start(ray_cluster: str, caplog: pytest.LogCaptureFixture
                                                            ) -> None:
    config = parse_service({"processor": echo(), "imports": ["serveprocessors"],
                            "backend": {"ray": {"num_cpus": REPLICA_CPUS, "num_gpus": 0.25}}}, "s", HERE)

    async def test() -> None:
        async with started(RayServeBackend(config, describe_processor(config))) as backend:
            assert backend.status()["state"] == "idle (scaled to zero)"

    with caplog.at_level("WARNING", logger="tidal.serve"):
        asyncio.run(test())
    assert "backend.ray.num_gpus is 0.25 but the Ray cluster has 0 GPUs now" in caplog.text


def test_http_settings_become_ray_serve_options() -> None:
    config = ray_service(echo(batch_size=4), idle_timeout=300, queue_limit=7, max_workers=3)
    options = deployment_options(config, 4, 0, 3)
    autoscaling = options["autoscaling_config"]
    assert (autoscaling["min_replicas"], autoscaling["initial_replicas"], autoscaling["max_replicas"]) == (0, 0, 3)
    # the metrics' look-back and the delay after it make up the idle timeout
    assert (autoscaling["look_back_period_s"], autoscaling["downscale_to_zero_delay_s"]) == (30.0, 270.0)
    assert autoscaling["metrics_interval_s"] == 10.0  # Ray's default: no deprecation warning for the usual case
    assert (options["max_queued_requests"], options["max_ongoing_requests"]) == (7, 8)
    assert options["ray_actor_options"] == {"num_cpus": REPLICA_CPUS, "num_gpus": 0.0}
    short = deployment_options(ray_service(echo(), idle_timeout=1), 8, 0, 1)["autoscaling_config"]
    assert short["look_back_period_s"] < 1 and short["metrics_interval_s"] < short["look_back_period_s"]


def test_backend_settings_are_checked_with_the_config() -> None:
    service = {"processor": echo(), "imports": ["serveprocessors"]}
    config = parse_service(service | {"backend": {"ray": {"num_gpus": 0.25, "address": "ray://head:10001"}}}, "s")
    assert (config.backend, config.ray.num_gpus, config.ray.address) == ("ray", 0.25, "ray://head:10001")
    overridden = parse_service(service | {"backend": {"ray": {"num_gpus": 0.25}}}, "s", backend={"ray": {
        "address": "auto"}})
    assert (overridden.ray.num_gpus, overridden.ray.address) == (0.25, "auto")
    assert parse_service(service | {"backend": "ray"}, "s", backend="local").backend == "local"
    with pytest.raises(ConfigError, match=r"backend.ray.num_gpu: unknown setting; did you mean 'num_gpus'"):
        parse_service(service | {"backend": {"ray": {"num_gpu": 1}}}, "s")
    with pytest.raises(ConfigError, match=r"backend: expected 'local' or 'ray'"):
        parse_service(service | {"backend": "kubernetes"}, "s")


def test_an_unreachable_address_is_a_config_error_naming_it() -> None:
    config = parse_service({"processor": echo(), "imports": ["serveprocessors"],
                            "backend": {"ray": {"address": "127.0.0.1:9"}}}, "s", HERE)
    with pytest.raises(ConfigError, match=r"backend.ray.address: cannot connect to Ray at '127.0.0.1:9'"):
        RayServeBackend(config, describe_processor(config))


@pytest.mark.parametrize(("flags", "message"), [
    (["--address", "127.0.0.1:9"], "backend.ray.address: cannot connect to Ray at '127.0.0.1:9'"),
    (["--backend", "local", "--address", "127.0.0.1:9"], "--address is the Ray cluster's"),
    (["--backend", "rey"], "backend: expected 'local' or 'ray'"),
])
def test_the_command_line_refuses_a_bad_backend_before_serving(flags: list[str], message: str, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "tidal", "serve", "serveprocessors:Echo", "--no-track", *flags]
    done = subprocess.run(command, cwd=HERE, env=os.environ | {"TIDAL_HOME": str(tmp_path)}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert message in " ".join(done.stderr.split()), done.stderr
