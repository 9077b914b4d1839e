"""The HTTP store (the client of a tidal server) against a real server: the shared Store suite,
retries that duplicate nothing, and clear errors for a wrong token or an unreachable server."""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from store_suite import QueueSuite, RunQuerySuite, StoreSuite, new_run

from liveserver import TOKEN, LiveServer, free_port, postgres_store, sqlite_store, start_server
from pgserver import needs_postgres
from tidal.errors import ConfigError, RunNotFound, StoreError, UsageError
from tidal.tracking.artifacts import ArtifactNameError, ArtifactNotFound, ArtifactTooLarge
from tidal.tracking.httpstore import HTTPStore
from tidal.tracking.server.app import create_app
from tidal.tracking.store import Batch, Store
from tidal.tracking.stores import open_store


class TestHTTPStoreOverSQLite(StoreSuite, RunQuerySuite, QueueSuite):
    @pytest.fixture
    def store(self, sqlite_server: LiveServer) -> Iterator[Store]:
        store = HTTPStore(sqlite_server.url, token=TOKEN)
        yield store
        store.close()


@pytest.fixture(scope="module")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server over the PostgreSQL store (tests use a project of their own: the database is shared)."""
    backend = postgres_store(tmp_path_factory.mktemp("postgres-home"))
    live = start_server(create_app(backend))
    yield live
    live.stop()
    backend.close()


@needs_postgres
class TestHTTPStoreOverPostgres(StoreSuite, RunQuerySuite, QueueSuite):
    @pytest.fixture
    def store(self, postgres_server: LiveServer) -> Iterator[Store]:
        store = HTTPStore(postgres_server.url)
        yield store
        store.close()


class DroppingProxy:
    """A TCP proxy to a server that, for its next ``drops`` connections, passes the request on but
    swallows the answer and hangs up: the server acted, the client never heard (a lost reply)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.drops = 0
        self.dropped = 0
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            drop, self.drops = self.drops > 0, max(0, self.drops - 1)
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.sockets += [client, upstream]
            threading.Thread(target=self._relay, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._answer, args=(upstream, client, drop), daemon=True).start()

    def _answer(self, upstream: socket.socket, client: socket.socket, drop: bool) -> None:
        if drop:
            with contextlib.suppress(OSError):
                upstream.recv(65536)  # the server answered: it has done the work
            self.dropped += 1
            _hang_up(client, upstream)
            return
        self._relay(upstream, client)

    @staticmethod
    def _relay(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            _hang_up(source, target)

    def close(self) -> None:
        self.listener.close()
        _hang_up(*self.sockets)


def _hang_up(*sockets: socket.socket) -> None:
    """Shut down first: a bare close() leaves a thread blocked in recv() on it, and no FIN is sent."""
    for each in sockets:
        with contextlib.suppress(OSError):
            each.shutdown(socket.SHUT_RDWR)
        each.close()


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Store]:
    store = sqlite_store(tmp_path / "server")
    yield store
    store.close()


def test_open_store_switches_to_the_server_for_an_http_uri(sqlite_server: LiveServer,
                                                          monkeypatch: pytest.MonkeyPatch, project: str) -> None:
    monkeypatch.setenv("TIDAL_TRACKING_URI", sqlite_server.url)
    monkeypatch.setenv("TIDAL_TOKEN", TOKEN)
    store = open_store()
    try:
        assert isinstance(store, HTTPStore)
        run_id = new_run(store, project)
        assert store.get_run(run_id)["project"] == project
    finally:
        store.close()


def test_calls_are_retried_until_the_server_comes_up(serve: Callable[..., LiveServer], backend: Store,
                                                     project: str) -> None:
    port = free_port()
    serve(create_app(backend), port=port, delay=1.0, wait=False)  # nothing listens for a second
    store = HTTPStore(f"http://127.0.0.1:{port}", backoff=0.2)
    started = time.monotonic()
    try:
        run_id = new_run(store, project)
        assert time.monotonic() - started > 0.8  # it did wait for the server
        store.log_batch(run_id, Batch("only", metrics=[("loss", 0, 0.5, time.time())]))
    finally:
        store.close()
    assert [run["id"] for run in backend.list_runs(project=project)] == [run_id]
    assert backend.metrics(run_id) == {"loss": [(0, 0.5, pytest.approx(time.time(), abs=60))]}


def test_a_lost_answer_is_retried_without_duplicating_anything(serve: Callable[..., LiveServer], backend: Store,
                                                               project: str, tmp_path: Path) -> None:
    server = serve(create_app(backend))
    proxy = DroppingProxy(server.port)
    run_id = uuid.uuid4().hex[:16]
    now = time.time()
    batch = Batch("batch-1", params={"lr": 0.1}, metrics=[("loss", step, 1.0 / (step + 1), now) for step in range(5)],
                  logs=[("stdout", "step\n", now)])
    data = os.urandom(300_000)
    try:
        for action in (lambda store: store.create_run({"id": run_id, "project": project, "name": "n", "kind": "script",
                                                       "status": "running", "started_at": now}),
                       lambda store: store.log_batch(run_id, batch),
                       lambda store: store.put_artifact(run_id, "weights.bin", io.BytesIO(data))):
            proxy.drops = 1
            store = HTTPStore(proxy.url, backoff=0.05)  # a fresh connection, which the proxy cuts
            try:
                action(store)
            finally:
                store.close()
    finally:
        proxy.close()
    assert proxy.dropped == 3
    assert [run["id"] for run in backend.list_runs(project=project)] == [run_id]
    assert [point[0] for point in backend.metrics(run_id)["loss"]] == [0, 1, 2, 3, 4]
    assert [log["text"] for log in backend.logs(run_id)] == ["step\n"]
    assert [a["sha256"] for a in backend.artifacts(run_id)] == [hashlib.sha256(data).hexdigest()]


def test_a_wrong_or_missing_token_says_how_to_set_it(sqlite_server: LiveServer) -> None:
    for token, reason in (("wrong", "it is wrong"), (None, "none was sent")):
        store = HTTPStore(sqlite_server.url, token=token)
        with pytest.raises(ConfigError, match=f"refused the token \\({reason}\\).*TIDAL_TOKEN"):
            store.projects()
        store.close()


def test_an_unreachable_server_is_a_store_error_naming_it() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    store = HTTPStore(url, retries=3, backoff=0.01)
    with pytest.raises(StoreError, match=f"cannot reach the tidal server at {url}.*3 times"):
        store.get_run("any")
    store.close()


def test_errors_keep_their_kind(sqlite_server: LiveServer, project: str) -> None:
    store = HTTPStore(sqlite_server.url, token=TOKEN)
    try:
        run_id = new_run(store, project)
        with pytest.raises(RunNotFound, match="no run 'nope'"):
            store.log_batch("nope", Batch("x", metrics=[("m", 0, 1.0, 1.0)]))
        with pytest.raises(UsageError, match="already exists"):
            store.create_run({"id": run_id, "name": "again"})
        with pytest.raises(UsageError, match=r"metrics\.0\.2"):
            store.log_batch(run_id, Batch("bad", metrics=[("m", 0, "fast", 1.0)]))  # type: ignore[list-item]
        with pytest.raises(ArtifactNameError, match=r"'\.\.'"):
            store.put_artifact(run_id, "../outside.txt", b"x")
        with pytest.raises(ArtifactNotFound, match=r"missing\.bin"):
            store.open_artifact(run_id, "missing.bin")
        with pytest.raises(ArtifactTooLarge, match="8388608 bytes"):
            store.put_artifact(run_id, "huge.bin", b"x" * (8 * 2**20 + 1))
        with pytest.raises(ArtifactTooLarge, match="limit of 10 bytes"):
            store.put_artifact(run_id, "small.bin", io.BytesIO(b"x" * 11), max_bytes=10)
    finally:
        store.close()


class _Unseekable(io.RawIOBase):
    """A pipe-like stream: it can only be read once, front to back."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self.data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_artifacts_from_bytes_files_and_streams_round_trip(sqlite_server: LiveServer, project: str,
                                                           tmp_path: Path) -> None:
    store = HTTPStore(sqlite_server.url, token=TOKEN)
    data = os.urandom(3 * 2**20 + 1)
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    try:
        run_id = new_run(store, project)
        sources = {"bytes.bin": data, "file.bin": path, "seekable.bin": io.BytesIO(data),
                   "pipe.bin": io.BufferedReader(_Unseekable(data))}
        for name, source in sources.items():
            record = store.put_artifact(run_id, f"models/{name}", source)  # type: ignore[arg-type]
            assert record["size"] == len(data) and record["sha256"] == hashlib.sha256(data).hexdigest(), name
        with store.open_artifact(run_id, "models/pipe.bin") as stream:
            assert stream.read(10) == data[:10]
            assert stream.read() == data[10:]
        assert sorted(a["name"] for a in store.artifacts(run_id)) == sorted(f"models/{n}" for n in sources)
        store.log_batch(run_id, Batch("img", images=[{"key": "raw", "step": 1, "artifact": "models/bytes.bin",
                                                      "width": 2, "height": 2, "timestamp": 1.0}]))
        assert store.images(run_id)[0]["url"].endswith(f"/runs/{run_id}/artifacts/models/bytes.bin")
        store.log_batch(run_id, Batch("nan", metrics=[("m", None, -math.inf, 1.0)], logs=[("stderr", "x", 1.0)]))
        assert store.metrics(run_id, ["m"]) == {"m": [(None, -math.inf, 1.0)]}
        assert [log["stream"] for log in store.logs(run_id, after=0, limit=1)] == ["stderr"]
    finally:
        store.close()


def test_a_script_logs_to_a_team_server_through_the_environment(sqlite_server: LiveServer, tmp_path: Path,
                                                                 project: str) -> None:
    """The two-line set-up of a user's script, pointed at a server by TIDAL_TRACKING_URI."""
    import subprocess
    import sys

    weights = tmp_path / "model_final.pkl"
    weights.write_bytes(b"w" * 10_000)
    script = tmp_path / "train.py"
    script.write_text(
        "import numpy as np, tidal\n"
        f"run = tidal.init(project={project!r}, name='remote', config={{'lr': 0.1}})\n"
        "run.log_metrics({'loss': 0.5, 'acc': float('nan')}, step=1)\n"
        "run.log_image('inferred', np.zeros((4, 6, 3), np.uint8), step=1)\n"
        f"run.log_artifact({str(weights)!r})\n"
        "print('trained')\n")
    env = os.environ | {"TIDAL_TRACKING_URI": sqlite_server.url, "TIDAL_TOKEN": TOKEN,
                        "TIDAL_HOME": str(tmp_path / "unused")}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    store = HTTPStore(sqlite_server.url, token=TOKEN)
    try:
        [run] = store.list_runs(project=project)
        assert run["status"] == "completed" and run["config"] == {"lr": 0.1}
        metrics = store.metrics(run["id"])
        assert metrics["loss"][0][1] == 0.5 and math.isnan(metrics["acc"][0][1])
        assert [(i["key"], i["width"], i["height"]) for i in store.images(run["id"])] == [("inferred", 6, 4)]
        assert {a["name"]: a["size"] for a in store.artifacts(run["id"])}["model_final.pkl"] == 10_000
        assert "trained" in "".join(log["text"] for log in store.logs(run["id"]))
    finally:
        store.close()
    assert not (tmp_path / "unused").exists()  # nothing was written locally
