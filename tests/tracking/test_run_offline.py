"""A tidal server that is down (at init, mid-run, at exit) never crashes or hangs the script and
loses nothing: records wait in the spool under TIDAL_HOME and are sent when it returns or by
``tidal sync``. SIGTERM ends a run "interrupted" with its last records written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from liveserver import TOKEN, LiveServer, free_port, sqlite_store, start_server, wait_for
from tidal.tracking.httpstore import HTTPStore
from tidal.tracking.run import Run
from tidal.tracking.server.app import create_app
from tidal.tracking.store import Store

EXIT_LIMIT = 2.0  # seconds from the script's last line to its exit, with the server down


class Server:
    """A tidal server on a fixed port over one SQLite store, stopped and started again at will."""

    def __init__(self, home: Path) -> None:
        self.store = sqlite_store(home)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.live: LiveServer | None = None

    def start(self) -> None:
        self.live = start_server(create_app(self.store, token=TOKEN), port=self.port)

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path / "server")
    yield server
    server.stop()
    server.store.close()


def script_env(home: Path, url: str) -> dict[str, str]:
    return os.environ | {"TIDAL_HOME": str(home), "TIDAL_TRACKING_URI": url, "TIDAL_TOKEN": TOKEN}


def start_script(folder: Path, url: str, body: str) -> subprocess.Popen[str]:
    script = folder / "train.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.Popen([sys.executable, str(script)], cwd=folder, env=script_env(folder / "home", url),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def tidal_sync(folder: Path, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tidal", "sync"], cwd=folder, env=script_env(folder / "home", url),
                          capture_output=True, text=True, timeout=120)


def only_run(store: Store, project: str) -> dict[str, object]:
    [run] = store.list_runs(project=project)
    return store.get_run(str(run["id"]))


def test_server_down_at_init_the_script_exits_at_once_and_tidal_sync_sends_everything(
        tmp_path: Path, server: Server) -> None:
    project = f"p{uuid.uuid4().hex[:8]}"
    (tmp_path / "weights.bin").write_bytes(b"w" * 3000)
    process = start_script(tmp_path, server.url, f"""
        import time, numpy as np, tidal
        run = tidal.init(project={project!r}, config={{"lr": 0.1}})
        run.log_params({{"depth": 50}})
        for step in range(500):
            run.log_metric("loss", 1 / (step + 1), step=step)
        run.log_image("frame", np.zeros((3, 8, 12), np.uint8), step=1)
        run.log_artifact("weights.bin")
        print("training done")
        open("last_line", "w").write(repr(time.time()))
    """)
    stdout, stderr = process.communicate(timeout=60)
    exited = time.time()
    assert process.returncode == 0, stderr
    assert exited - float((tmp_path / "last_line").read_text()) < EXIT_LIMIT
    spool = tmp_path / "home" / "spool"
    assert "training done" in stdout and str(spool) in stderr and "tidal sync" in stderr
    server.start()
    synced = tidal_sync(tmp_path, server.url)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    run = only_run(server.store, project)
    run_id = str(run["id"])
    assert run["status"] == "completed" and run["config"] == {"lr": 0.1} and run["params"] == {"depth": 50}
    assert len(server.store.metrics(run_id)["loss"]) == 500
    [image] = server.store.images(run_id)
    assert (image["width"], image["height"]) == (12, 8)
    assert {a["name"]: a["size"] for a in server.store.artifacts(run_id)}["weights.bin"] == 3000
    assert "training done" in "".join(log["text"] for log in server.store.logs(run_id))
    assert not list(spool.iterdir())


def test_server_down_at_exit_exits_within_two_seconds_and_sync_sends_the_rest(tmp_path: Path,
                                                                             server: Server) -> None:
    project = f"p{uuid.uuid4().hex[:8]}"
    server.start()
    process = start_script(tmp_path, server.url, f"""
        import os, time, tidal
        run = tidal.init(project={project!r}, capture_output=False)
        for step in range(100):
            run.log_metric("loss", step, step=step)
        run.flush()
        open("flushed", "w").close()
        while not os.path.exists("go"):
            time.sleep(0.01)
        for step in range(100, 200):
            run.log_metric("loss", step, step=step)
        open("last_line", "w").write(repr(time.time()))
    """)
    wait_for(lambda: (tmp_path / "flushed").exists(), 60, "the script did not flush")
    server.stop()
    (tmp_path / "go").touch()
    _, stderr = process.communicate(timeout=60)
    exited = time.time()
    assert process.returncode == 0, stderr
    assert exited - float((tmp_path / "last_line").read_text()) < EXIT_LIMIT
    assert "Traceback" not in stderr and str(tmp_path / "home" / "spool") in stderr
    run_id = str(only_run(server.store, project)["id"])
    assert len(server.store.metrics(run_id)["loss"]) == 100  # the rest waits in the spool
    server.start()
    synced = tidal_sync(tmp_path, server.url)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert [value for _, value, _ in server.store.metrics(run_id)["loss"]] == [float(i) for i in range(200)]
    assert server.store.get_run(run_id)["status"] == "completed"


def test_an_outage_mid_run_loses_nothing_once_the_server_returns(server: Server) -> None:
    server.start()
    client = HTTPStore(server.url, token=TOKEN)
    run = Run(client, project="outage", capture=False)
    try:
        for step in range(50):
            run.log_metric("loss", step, step=step)
        run.flush()
        server.stop()
        for step in range(50, 100):
            run.log_metric("loss", step, step=step)
        run.log_image("frame", np.full((6, 4), 200, np.uint8), step=50)
        run.flush()
        assert not run.spool.is_empty()
        server.start()
        for step in range(100, 150):
            run.log_metric("loss", step, step=step)
        wait_for(lambda: run._writer.offline is None, 30, "the writer did not reconnect")
        run.finish()
    finally:
        client.close()
    assert [value for _, value, _ in server.store.metrics(run.id)["loss"]] == [float(i) for i in range(150)]
    assert len(server.store.images(run.id)) == 1 and run.spool.is_empty()
    assert server.store.get_run(run.id)["status"] == "completed"


@pytest.mark.slow
def test_sigterm_marks_the_run_interrupted_after_writing_its_last_points(tmp_path: Path, server: Server) -> None:
    project = f"p{uuid.uuid4().hex[:8]}"
    server.start()
    process = start_script(tmp_path, server.url, f"""
        import time, tidal
        run = tidal.init(project={project!r})
        step = 0
        try:
            while True:
                run.log_metric("step", step, step=step)
                step += 1
                if step == 20:
                    open("started", "w").close()
                time.sleep(0.005)
        finally:
            open("last_step", "w").write(str(step - 1))
    """)
    wait_for(lambda: (tmp_path / "started").exists(), 60, "the script did not start logging")
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    run = only_run(server.store, project)
    assert run["status"] == "interrupted" and "SIGTERM" in str(run["error"])
    last = int((tmp_path / "last_step").read_text())
    assert [step for step, _, _ in server.store.metrics(str(run["id"]))["step"]] == list(range(last + 1))
