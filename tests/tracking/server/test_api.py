"""The REST API on a real uvicorn server over a real store: runs, batches, NaN, artifacts, limits,
tokens, and bad input answered with a 4xx (never a 500)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from liveserver import TOKEN, LiveServer, free_port, postgres_store, sqlite_store
from pgserver import needs_postgres
from tidal.errors import UsageError
from tidal.tracking.server.app import create_app

API = "/api/v1"


@pytest.fixture
def api(sqlite_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sqlite_server.url + API, headers={"Authorization": f"Bearer {TOKEN}"},
                      timeout=30) as client:
        yield client


def new_run(api: httpx.Client, project: str, **fields: Any) -> str:
    run_id = uuid.uuid4().hex[:16]
    response = api.post("/runs", json={"id": run_id, "project": project, "name": "train", **fields})
    assert response.status_code == 201, response.text
    return run_id


def raw_request(server: LiveServer, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """A request sent as written: httpx would resolve '..' and '%2e' in the path before sending."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers={"Authorization": f"Bearer {TOKEN}", **(headers or {})})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def test_create_get_list_and_patch_runs(api: httpx.Client, project: str) -> None:
    created = api.post("/runs", json={"id": "r-" + project, "project": project, "name": "inference",
                                      "config": {"model": {"depth": 50}}, "argv": ["train.py", "--lr", "0.1"],
                                      "git": {"commit": "abc123"}, "host": "laptop", "pid": 42})
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    assert created.json()["config"] == {"model": {"depth": 50}} and created.json()["status"] == "running"
    other = new_run(api, project, name="training")
    api.post(f"/runs/{other}/batches", json={"batch_id": "t", "tags": {"gpu": "a100"}, "params": {"lr": 0.1}})

    assert {run["id"] for run in api.get("/runs", params={"project": project}).json()["runs"]} == {run_id, other}
    def listed(**query: Any) -> list[str]:
        return [run["id"] for run in api.get("/runs", params={"project": project, **query}).json()["runs"]]

    assert listed(tag="gpu=a100") == [other] and listed(search="infer") == [run_id]
    assert api.get("/runs", params={"project": project, "limit": 1}).json()["runs"][0]["id"] == other  # newest first

    patched = api.patch(f"/runs/{run_id}", json={"status": "completed", "ended_at": time.time(), "stats": {"n": 3}})
    assert patched.status_code == 200 and patched.json()["status"] == "completed"
    assert listed(status="completed") == [run_id]
    run = api.get(f"/runs/{other}").json()
    assert run["params"] == {"lr": 0.1} and run["tags"] == {"gpu": "a100"}
    assert project in api.get("/projects").json()["projects"]


def test_a_duplicate_run_id_is_409(api: httpx.Client, project: str) -> None:
    run_id = new_run(api, project)
    again = api.post("/runs", json={"id": run_id, "project": project, "name": "again"})
    assert again.status_code == 409 and "already exists" in again.json()["error"]
    assert api.get(f"/runs/{run_id}").json()["name"] == "train"


def test_a_batch_sent_twice_is_applied_once(api: httpx.Client, project: str) -> None:
    run_id = new_run(api, project)
    batch = {"batch_id": "b-1", "params": {"lr": 0.01}, "metrics": [["loss", 0, 1.5, 1.0], ["loss", 1, 1.25, 2.0]],
             "logs": [["stdout", "epoch 1\n", 1.0]], "heartbeat": time.time(),
             "images": [{"key": "raw", "step": 0, "artifact": "images/raw/0.png", "width": 4, "height": 3,
                         "timestamp": 1.0}]}
    for _ in range(2):  # a client retrying after a lost answer
        assert api.post(f"/runs/{run_id}/batches", json=batch).status_code == 200
    assert api.get(f"/runs/{run_id}/metrics").json() == {"metrics": {"loss": [[0, 1.5, 1.0], [1, 1.25, 2.0]]}}
    logs = api.get(f"/runs/{run_id}/logs").json()
    assert [log["text"] for log in logs["logs"]] == ["epoch 1\n"] and logs["last"] == logs["logs"][0]["id"]
    assert api.get(f"/runs/{run_id}/logs", params={"after": logs["last"]}).json() == {"logs": [], "last": logs["last"]}
    images = api.get(f"/runs/{run_id}/images").json()["images"]
    assert len(images) == 1 and images[0]["url"] == f"{API}/runs/{run_id}/artifacts/images/raw/0.png"


def test_nan_and_infinities_round_trip(api: httpx.Client, project: str) -> None:
    run_id = new_run(api, project, stats={"best": "Infinity"})
    body = ('{"batch_id": "nan", "metrics": [["m", 0, "NaN", 1], ["m", 1, "Infinity", 1], ["m", 2, "-Infinity", 1],'
            ' ["m", 3, NaN, 1], ["m", 4, 2.5, 1]]}')  # strings, and the literal a Python client could send
    sent = api.post(f"/runs/{run_id}/batches", content=body, headers={"Content-Type": "application/json"})
    assert sent.status_code == 200, sent.text
    response = api.get(f"/runs/{run_id}/metrics", params={"keys": "m,absent"})
    values = [point[1] for point in response.json()["metrics"]["m"]]
    assert values == ["NaN", "Infinity", "-Infinity", "NaN", 2.5]
    assert "NaN" not in response.text.replace('"NaN"', "")  # no bare NaN literal: strict JSON
    json.loads(response.text, parse_constant=lambda name: pytest.fail(f"bare {name} in the JSON"))


def test_a_metric_that_is_not_a_number_is_422_naming_the_field(api: httpx.Client, project: str) -> None:
    run_id = new_run(api, project)
    for value in ("fast", None, [1], True, "nan"):
        batch = {"batch_id": uuid.uuid4().hex, "metrics": [["ok", 0, 1.0, 1.0], ["loss", 0, value, 1.0]]}
        response = api.post(f"/runs/{run_id}/batches", json=batch)
        assert response.status_code == 422, (value, response.text)
        assert "metrics.1.2" in response.json()["error"] and "number" in response.json()["error"]
    assert api.get(f"/runs/{run_id}/metrics").json() == {"metrics": {}}  # nothing of a refused batch


def test_an_artifact_is_streamed_up_and_down_with_its_sha256(api: httpx.Client, project: str,
                                                             sqlite_home: Path) -> None:
    run_id = new_run(api, project)
    data = os.urandom(5 * 2**20 + 7)
    chunks = (data[i:i + 65536] for i in range(0, len(data), 65536))  # no length: chunked, streamed
    uploaded = api.put(f"/runs/{run_id}/artifacts/models/final.bin", content=chunks)
    assert uploaded.status_code == 201, uploaded.text
    record = uploaded.json()
    assert record["size"] == len(data) and record["sha256"] == hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    with api.stream("GET", f"/runs/{run_id}/artifacts/models/final.bin") as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(len(data))
        assert response.headers["content-disposition"].startswith("attachment")
        for chunk in response.iter_bytes():
            digest.update(chunk)
    assert digest.hexdigest() == record["sha256"]
    assert [a["name"] for a in api.get(f"/runs/{run_id}/artifacts").json()["artifacts"]] == ["models/final.bin"]
    assert (sqlite_home / "artifacts" / run_id / "models" / "final.bin").stat().st_size == len(data)
    missing = api.get(f"/runs/{run_id}/artifacts/models/none.bin")
    assert missing.status_code == 404 and "none.bin" in missing.json()["error"]


@pytest.mark.parametrize("path", ["%2e%2e/%2e%2e/escaped.txt", "..%2F..%2Fescaped.txt", "a/../../escaped.txt",
                                  "%2Ftmp%2Fescaped.txt", "a%5C..%5C..%5Cescaped.txt", "a%00b", ""])
def test_artifact_names_cannot_leave_the_run(sqlite_server: LiveServer, api: httpx.Client, project: str,
                                             sqlite_home: Path, path: str) -> None:
    run_id = new_run(api, project)
    before = set(sqlite_home.parent.rglob("*"))
    status, body = raw_request(sqlite_server, "PUT", f"{API}/runs/{run_id}/artifacts/{path}", b"owned")
    assert status == 400, body
    assert body["type"] == "ArtifactNameError" and "not allowed" in body["error"]
    assert raw_request(sqlite_server, "GET", f"{API}/runs/{run_id}/artifacts/{path}")[0] == 400
    assert set(sqlite_home.parent.rglob("*")) == before  # nothing written anywhere
    status, body = raw_request(sqlite_server, "PUT", f"{API}/runs/%2e%2e/artifacts/x.txt", b"owned")
    assert status == 400 and "run id" in body["error"]


def test_oversized_requests_are_413_naming_the_limit(api: httpx.Client, project: str, sqlite_home: Path) -> None:
    run_id = new_run(api, project)
    batch = json.dumps({"batch_id": "big", "logs": [["stdout", "x" * (2**20 + 10), 1.0]]}).encode()
    headers = {"Content-Type": "application/json"}
    declared = api.post(f"/runs/{run_id}/batches", content=batch, headers=headers)
    streamed = api.post(f"/runs/{run_id}/batches", content=iter([batch[:1000], batch[1000:]]), headers=headers)
    for response in (declared, streamed):
        assert response.status_code == 413 and "1048576 bytes" in response.json()["error"]
        assert response.json()["type"] == "RequestTooLarge"  # also when FastAPI was reading the body
    declared_upload = api.put(f"/runs/{run_id}/artifacts/huge.bin", content=b"x" * (8 * 2**20 + 1))
    assert declared_upload.status_code == 413 and "8388608 bytes" in declared_upload.json()["error"]
    too_big = api.put(f"/runs/{run_id}/artifacts/huge.bin", content=iter([b"x" * 2**20] * 9))
    assert too_big.status_code == 413 and "8388608 bytes" in too_big.json()["error"]
    assert api.get(f"/runs/{run_id}/logs").json()["logs"] == []
    assert not (sqlite_home / "artifacts" / run_id).exists() or not any((sqlite_home / "artifacts" / run_id).iterdir())


def test_a_missing_or_wrong_token_is_401(sqlite_server: LiveServer, project: str) -> None:
    url = sqlite_server.url
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        for method, path in (("GET", "/runs"), ("POST", "/runs"), ("GET", "/jobs"), ("GET", "/runs/x/artifacts/a")):
            response = httpx.request(method, url + API + path, headers=headers, json={"name": "x"})
            assert response.status_code == 401, (headers, path)
            assert "TIDAL_TOKEN" in response.json()["error"] and response.headers["www-authenticate"] == "Bearer"
    assert httpx.get(url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(url + "/openapi.json").status_code == 200
    assert httpx.get(url + "/login", params={"token": "wrong"}).status_code == 401
    with httpx.Client(base_url=url) as browser:
        login = browser.get("/login", params={"token": TOKEN})
        assert login.status_code == 303 and login.headers["location"] == "/"
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert browser.get(API + "/projects").status_code == 200  # the cookie now authenticates


def test_unknown_runs_are_404(api: httpx.Client) -> None:
    batch = {"batch_id": "x", "metrics": [["loss", 0, 1.0, 1.0]]}
    for method, path, body in (("GET", "/runs/nope", None), ("PATCH", "/runs/nope", {"status": "failed"}),
                               ("POST", "/runs/nope/batches", batch), ("GET", "/runs/nope/metrics", None),
                               ("GET", "/runs/nope/logs", None), ("GET", "/runs/nope/images", None),
                               ("GET", "/runs/nope/artifacts", None), ("GET", "/runs/nope/artifacts/a.bin", None),
                               ("PUT", "/runs/nope/artifacts/a.bin", None)):
        response = api.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"].startswith("no run 'nope'")
    assert api.get("/nowhere").json()["error"].startswith("no such endpoint")


MALFORMED: list[tuple[str, str, bytes]] = [
    ("POST", "/runs", b"{not json"),
    ("POST", "/runs", b""),
    ("POST", "/runs", b"[]"),
    ("POST", "/runs", b'{"name": 3}'),
    ("POST", "/runs", b'{"name": "a", "id": "../../etc"}'),
    ("POST", "/runs", b'{"name": "a", "status": "sleeping"}'),
    ("POST", "/runs", b'{"name": "a", "pid": 123456789012345}'),
    ("POST", "/runs", b'{"name": "a", "started_at": "Infinity"}'),
    ("POST", "/runs", b'{"name": "a", "started_at": 1e300}'),
    ("POST", "/runs", b'{"name": "a", "unknown_column": 1}'),
    ("POST", "/runs", b'{"name": "\\ud800"}'),
    ("POST", "/runs", b"\xff\xfe\x00"),
    ("POST", "/runs", b"[" * 50_000 + b"]" * 50_000),
    ("PATCH", "/runs/{run}", b'{"name": null}'),
    ("PATCH", "/runs/{run}", b'{"status": 7}'),
    ("PATCH", "/runs/{run}", b'{"id": "other"}'),
    ("POST", "/runs/{run}/batches", b"{}"),
    ("POST", "/runs/{run}/batches", b'{"batch_id": "' + b"x" * 100 + b'"}'),
    ("POST", "/runs/{run}/batches", b'{"batch_id": "a", "metrics": [["k", 1, 1]]}'),
    ("POST", "/runs/{run}/batches", b'{"batch_id": "a", "metrics": [["k", 1e30, 1, 1]]}'),
    ("POST", "/runs/{run}/batches", b'{"batch_id": "a", "metrics": [["k", 1, 1' + b"0" * 400 + b', 1]]}'),
    ("POST", "/runs/{run}/batches", b'{"batch_id": "a", "metrics": [["k", 1, 1, NaN]]}'),
    ("POST", "/runs/{run}/batches", b'{"batch_id": "a", "metrics": {"k": 1}}'),
    ("POST", "/runs/{run}/batches", b'{"batch_id": "a", "logs": [["stdout", "\\udfff", 1]]}'),
    ("POST", "/runs/{run}/batches", b'{"batch_id": "a", "logs": [["a-very-long-stream", "x", 1]]}'),
    ("POST", "/runs/{run}/batches", b'{"batch_id": "a", "tags": {"k": {"nested": 1}}}'),
    ("POST", "/runs/{run}/batches", b'{"batch_id": "a", "params": {"' + b"k" * 300 + b'": 1}}'),
    ("POST", "/runs/{run}/batches", b'{"batch_id": "a", "params": {"k": ' + b"1" * 5000 + b"}}"),
    ("POST", "/runs/{run}/batches", b'{"batch_id": "a", "images": [{"key": "k", "artifact": "a"}]}'),
    ("POST", "/runs/{run}/batches", b'{"batch_id": "a", "heartbeat": "soon"}'),
    ("GET", "/runs?limit=0", b""),
    ("GET", "/runs?limit=many", b""),
    ("GET", "/runs?status=sleeping", b""),
    ("GET", "/runs/{run}/logs?after=-1", b""),
    ("GET", "/runs/{run}/logs?after=" + "9" * 40, b""),
    ("GET", "/runs?tag=%00", b""),
    ("GET", "/runs/{run}/logs?after=2147483648", b""),
    ("PUT", "/runs/{run}", b"{}"),
    ("DELETE", "/runs/no-such-run", b""),
    ("GET", "/runs/{run}/metrics/sampled?buckets=0", b""),
    ("GET", "/runs/{run}/metrics/sampled?axis=sideways", b""),
    ("GET", "/runs?where=metrics.acc%20%3E", b""),
    ("GET", "/runs?sort=colour", b""),
    ("GET", "/runs?archived=maybe", b""),
]


def test_malformed_input_is_a_4xx_with_a_message_never_a_500(api: httpx.Client, project: str) -> None:
    run_id = new_run(api, project)
    for method, path, body in MALFORMED:
        response = api.request(method, path.format(run=run_id), content=body,
                               headers={"Content-Type": "application/json"})
        assert 400 <= response.status_code < 500, (method, path, body[:80], response.status_code, response.text)
        assert response.json()["error"], (method, path)
    assert api.get(f"/runs/{run_id}/metrics").json() == {"metrics": {}}
    assert api.get(f"/runs/{run_id}").json()["name"] == "train"


def test_jobs_are_read_from_the_embedded_store(api: httpx.Client, sqlite_home: Path) -> None:
    with sqlite3.connect(sqlite_home / "tidal.db") as db:
        db.execute("INSERT INTO jobs (id, name, config, created_at, updated_at, status, total_items)"
                   " VALUES ('job1', 'colors', '{}', 1, 2, 'running', 3)")
        db.execute("INSERT INTO items (job_id, partition_id, key, status, error)"
                   " VALUES ('job1', 'p0', 'a.jpg', 'failed', 'not an image')")
    assert [job["id"] for job in api.get("/jobs").json()["jobs"]] == ["job1"]
    detail = api.get("/jobs/job1").json()
    assert detail["failed"] == 1 and detail["failures"] == [{"kind": "item", "key": "a.jpg", "error": "not an image"}]
    assert api.get("/jobs/nope").status_code == 404


def test_a_store_without_jobs_lists_none_and_an_unknown_job_is_404(serve: Callable[..., LiveServer],
                                                                   tmp_path: Path) -> None:
    server = serve(create_app(sqlite_store(tmp_path)))
    assert httpx.get(server.url + API + "/jobs").json() == {"jobs": []}
    missing = httpx.get(server.url + API + "/jobs/abc")
    assert missing.status_code == 404 and missing.json()["type"] == "JobNotFound"
    assert "tidal jobs ls" in missing.json()["error"]


@needs_postgres
def test_the_server_over_postgresql(serve: Callable[..., LiveServer], tmp_path: Path, project: str) -> None:
    store = postgres_store(tmp_path)
    server = serve(create_app(store))
    with httpx.Client(base_url=server.url + API) as api:
        run_id = new_run(api, project)
        batch = {"batch_id": "pg", "metrics": [["m", 0, "NaN", 1.0], ["m", 1, "-Infinity", 1.0]],
                 "tags": {"db": "postgres"}, "logs": [["stdout", "a\x00b", 1.0]]}  # PostgreSQL text holds no NUL
        assert api.post(f"/runs/{run_id}/batches", json=batch).status_code == 200
        assert api.post(f"/runs/{run_id}/batches", json=batch).status_code == 200
        assert api.get(f"/runs/{run_id}/metrics").json()["metrics"]["m"] == [[0, "NaN", 1.0], [1, "-Infinity", 1.0]]
        assert [log["text"] for log in api.get(f"/runs/{run_id}/logs").json()["logs"]] == ["a\ufffdb"]
        assert api.post("/runs", json={"id": run_id, "project": project, "name": "x"}).status_code == 409
        assert api.put(f"/runs/{run_id}/artifacts/a.txt", content=b"hello").json()["size"] == 5
        assert api.get(f"/runs/{run_id}/artifacts/a.txt").content == b"hello"
        assert [r["id"] for r in api.get("/runs", params={"project": project, "tag": "db"}).json()["runs"]] == [run_id]
        for path in ("/runs?search=a%00", "/runs/a%00b", f"/runs/{run_id}/metrics?keys=%00"):
            assert api.get(path).status_code == 400, path  # PostgreSQL would refuse the NUL: not a 503
    store.close()


def test_tidal_server_refuses_a_public_host_without_a_token(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "tidal", "server", "--host", "0.0.0.0", "--port", "1"],
                            env=os.environ | {"TIDAL_HOME": str(tmp_path)}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "without a token" in result.stderr and "--token-file" in result.stderr


def test_tidal_server_command_serves_the_api_with_its_token(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token-1234567\n")
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "tidal", "server", "--port", str(port),
                                "--token-file", str(token_file), "--max-request-size", "64KiB"],
                               env=os.environ | {"TIDAL_HOME": str(tmp_path)},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(url + "/healthz").status_code == 200
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, "tidal server did not start"
                time.sleep(0.1)
        headers = {"Authorization": "Bearer file-token-1234567"}
        assert httpx.post(url + API + "/runs", json={"id": "cli", "name": "n"}, headers=headers).status_code == 201
        assert httpx.get(url + API + "/runs").status_code == 401
        too_large = httpx.post(url + API + "/runs/cli/batches", headers=headers,
                               json={"batch_id": "big", "logs": [["stdout", "x" * 100_000, 1.0]]})
        assert too_large.status_code == 413 and "64 KiB" in too_large.json()["error"]
        httpx.get(url + "/login", params={"token": "file-token-1234567"})
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert "file-token-1234567" not in output  # /login?token=... is logged as token=***
    assert "token=***" in output


def test_a_token_shorter_than_16_characters_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="has 6 characters; use at least 16"):
        create_app(sqlite_store(tmp_path), token="s3cret")
    token_file = tmp_path / "token"
    token_file.write_text("short-token\n")
    result = subprocess.run([sys.executable, "-m", "tidal", "server", "--token-file", str(token_file), "--port", "1"],
                            env=os.environ | {"TIDAL_HOME": str(tmp_path)}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and f"the token in {token_file} has 11 characters" in result.stderr


def test_server_flags_are_checked_before_it_starts(tmp_path: Path) -> None:
    def server(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tidal", "server", "--port", str(free_port()), *flags],
                              env=os.environ | {"TIDAL_HOME": str(tmp_path)}, capture_output=True, text=True,
                              timeout=60)

    bad_size = server("--max-upload-size", "lots")
    assert bad_size.returncode == 2 and "--max-upload-size 'lots': give a size like" in bad_size.stderr
    pytest.importorskip("s3fs", reason="the s3 extra (pip install 'tidal[s3]') is not installed")
    unreachable = server("--artifacts", "s3://bucket/tidal", "--s3-endpoint", "http://127.0.0.1:9")
    assert unreachable.returncode == 2 and "http://127.0.0.1:9" in unreachable.stderr
