"""``tidal serve`` as a user runs it: a real front process, light while idle, stopped by a signal."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from PIL import Image
from servehelpers import HERE, pid_alive, wait_for

HEAVY_LIBRARIES = ("numpy", "libav", "torch", "PIL")


def tidal(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"TIDAL_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "tidal", *args], cwd=HERE, env=env, capture_output=True,
                          text=True, timeout=60)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def front_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    env = os.environ | {"TIDAL_HOME": str(tmp_path)}
    command = [sys.executable, "-m", "tidal", "serve", "serveprocessors:FrameShape", "--port", str(port),
               "--idle-timeout", "1"]
    with subprocess.Popen(command, cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as process:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: _answers(url) or process.poll() is not None, 30, "the front did not start")
            assert process.poll() is None, process.communicate()[0]
            yield process, url
        finally:
            if process.poll() is None:
                process.kill()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def mapped_libraries(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_the_front_stays_light_and_stops_its_workers_on_sigterm(front_process: tuple[subprocess.Popen[str], str],
                                                                 bikes_frames: list[np.ndarray]) -> None:
    process, url = front_process
    front = psutil.Process(process.pid)
    assert front.memory_info().rss < 150 * 2**20
    picture = io.BytesIO()
    Image.fromarray(bikes_frames[0]).save(picture, format="PNG")
    response = httpx.post(f"{url}/v1/predict", files={"image": ("frame.png", picture.getvalue())}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["shape"] == [272, 640, 3]
    [worker] = httpx.get(f"{url}/readyz").json()["workers"]
    maps = mapped_libraries(process.pid)
    assert not [name for name in HEAVY_LIBRARIES if name in maps]  # the worker decoded the image
    assert "numpy" in mapped_libraries(worker["pid"])
    assert front.memory_info().rss < 150 * 2**20
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=30)[0]
    assert process.returncode == -signal.SIGTERM, output  # uvicorn re-raises the signal once shut down
    assert "Application shutdown complete" in output
    assert not pid_alive(worker["pid"])
    assert "cold start: starting worker 1" in output and "ready in" in output


def test_the_front_scales_to_zero_with_the_flags_given(front_process: tuple[subprocess.Popen[str], str]) -> None:
    _, url = front_process
    assert httpx.post(f"{url}/v1/predict", content=b"", headers={"content-type": "video/mp4"}).status_code == 400
    assert httpx.get(f"{url}/readyz").json()["workers"] == []  # refused by the front, no worker started
    assert httpx.get(f"{url}/readyz").json()["idle_timeout"] == 1.0


def test_a_bad_target_fails_before_listening(tmp_path: Path) -> None:
    missing = tidal("serve", "nosuchmodule:Thing", home=tmp_path)
    assert missing.returncode == 2
    assert "nosuchmodule" in missing.stderr
    config = tmp_path / "service.hjson"
    config.write_text('{processor: {"serveprocessors.Echo": {setup_secs: 1}}, imports: ["serveprocessors"]}')
    typo = tidal("serve", str(config), home=tmp_path)
    assert typo.returncode == 2 and "did you mean 'setup_seconds'" in typo.stderr
    config.write_text('{processor: {"serveprocessors.Echo": {}}, imports: ["serveprocessors"], '
                      "http: {max_workers: 0}}")
    settings = tidal("serve", str(config), home=tmp_path)
    assert settings.returncode == 2 and "http.max_workers: must be at least 1" in settings.stderr
    flags = tidal("serve", str(config), "--max-workers", "2", "--min-workers", "3", home=tmp_path)
    assert flags.returncode == 2 and "min_workers (3) is above max_workers (2)" in flags.stderr
