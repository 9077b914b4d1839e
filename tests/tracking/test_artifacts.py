"""The artifact store: one suite run against a local folder and a real S3-protocol server.

The S3 server is moto's, started in a subprocess on 127.0.0.1 (a separate process, so the
memory measured while streaming is the client's alone).
"""

from __future__ import annotations

import hashlib
import io
import os
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest

from tidal.errors import ConfigError, UsageError
from tidal.tracking.artifacts import (
    ENDPOINT_ENV,
    ArtifactNameError,
    ArtifactNotFound,
    ArtifactStore,
    ArtifactStoreError,
    ArtifactTooLarge,
    open_artifact_store,
)

MiB = 1024 * 1024
RUN = "0123456789abcdef0123456789abcdef"

BAD_NAMES = [
    "",
    "../x",
    "..",
    "a/../../x",
    "a/..",
    "/etc/passwd",
    "//etc/passwd",
    "..\\x",
    "a\\b",
    "a\x00b",
    "a\nb",
    "a\tb",
    "\x7f",
    "a?versionId=1",
    "a#b",
    ".",
    "./",
    "a" * 513,
]
BAD_RUN_IDS = ["", "..", "../other", "a/b", "run.1", "run 1", "a\x00", "x" * 129]

Names = Callable[[], list[str]]


class ArtifactStoreSuite:
    """Behaviour every artifact store must have.

    A class using it provides the fixtures ``store`` (an empty store) and ``stored_names`` (every
    object under the store's root, as ``run/name``, including temporary and unfinished uploads),
    and sets ``streaming_limit``: the most Python memory a put of a 64 MiB file may use.
    """

    streaming_limit: int

    def test_put_file_then_open_round_trip(self, store: ArtifactStore, tmp_path: Path) -> None:
        data = os.urandom(100_000)
        source = tmp_path / "model_final.pkl"
        source.write_bytes(data)
        record = store.put_file(RUN, source)
        assert (record.run_id, record.name, record.size) == (RUN, "model_final.pkl", len(data))
        assert record.sha256 == hashlib.sha256(data).hexdigest()
        assert record.uri == f"{store.url()}/{RUN}/model_final.pkl"
        assert abs(record.created_at - time.time()) < 60
        with store.open(RUN, "model_final.pkl") as file:
            assert file.read() == data

    def test_nested_names_are_normalised(self, store: ArtifactStore, stored_names: Names) -> None:
        record = store.put_bytes(RUN, "./images//inferred/000001.png", b"png")
        assert record.name == "images/inferred/000001.png"
        with store.open(RUN, "images/inferred/000001.png") as file:
            assert file.read() == b"png"
        assert stored_names() == [f"{RUN}/images/inferred/000001.png"]

    def test_put_file_under_another_name_and_overwrite(self, store: ArtifactStore, tmp_path: Path) -> None:
        source = tmp_path / "weights.bin"
        source.write_bytes(b"first")
        store.put_file(RUN, source, name="models/best.bin")
        source.write_bytes(b"second")
        record = store.put_file(RUN, source, name="models/best.bin")
        assert record.size == 6
        with store.open(RUN, "models/best.bin") as file:
            assert file.read() == b"second"

    def test_empty_artifact(self, store: ArtifactStore) -> None:
        record = store.put_bytes(RUN, "empty.txt", b"")
        assert (record.size, record.sha256) == (0, hashlib.sha256(b"").hexdigest())
        with store.open(RUN, "empty.txt") as file:
            assert file.read() == b""

    def test_a_large_file_is_streamed(self, store: ArtifactStore, large_file: tuple[Path, str]) -> None:
        path, sha256 = large_file
        store.put_bytes(RUN, "warm-up.txt", b"")  # a client's one-time setup is not streaming
        tracemalloc.start()
        try:
            record = store.put_file(RUN, path, name="large.bin")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        print(f"{type(self).__name__}: peak Python memory putting 64 MiB: {peak / MiB:.1f} MiB")
        assert peak < self.streaming_limit
        assert (record.size, record.sha256) == (64 * MiB, sha256)
        digest = hashlib.sha256()
        with store.open(RUN, "large.bin") as file:
            while chunk := file.read(MiB):
                digest.update(chunk)
        assert digest.hexdigest() == sha256

    def test_put_stream_within_the_limit(self, store: ArtifactStore) -> None:
        data = os.urandom(3 * MiB)
        record = store.put_stream(RUN, "upload.bin", io.BytesIO(data), max_bytes=len(data))
        assert (record.size, record.sha256) == (len(data), hashlib.sha256(data).hexdigest())

    @pytest.mark.parametrize("size", [3 * MiB, 20 * MiB], ids=["one-part", "multipart"])
    def test_put_stream_past_the_limit_leaves_nothing(
        self, store: ArtifactStore, stored_names: Names, size: int
    ) -> None:
        stream = io.BytesIO(os.urandom(size))
        with pytest.raises(ArtifactTooLarge, match=r"upload\.bin.*limit of"):
            store.put_stream(RUN, "upload.bin", stream, max_bytes=size - 1)
        assert stored_names() == []
        with pytest.raises(ArtifactNotFound):
            store.open(RUN, "upload.bin")

    def test_a_failing_stream_leaves_nothing(self, store: ArtifactStore, stored_names: Names) -> None:
        with pytest.raises(ConnectionResetError, match="client went away"):
            store.put_stream(RUN, "upload.bin", cast(BinaryIO, BrokenStream(12 * MiB)))
        assert stored_names() == []

    def test_missing_artifact(self, store: ArtifactStore) -> None:
        store.put_bytes(RUN, "present.txt", b"x")
        with pytest.raises(ArtifactNotFound, match=rf"run '{RUN}' has no artifact 'absent.txt'"):
            store.open(RUN, "absent.txt")
        with pytest.raises(ArtifactNotFound, match="other-run"):
            store.open("other-run", "present.txt")

    def test_missing_local_file(self, store: ArtifactStore, tmp_path: Path) -> None:
        with pytest.raises(UsageError, match=r"nothing\.bin"):
            store.put_file(RUN, tmp_path / "nothing.bin")

    @pytest.mark.parametrize("name", BAD_NAMES)
    def test_bad_names_are_refused(self, store: ArtifactStore, stored_names: Names, name: str) -> None:
        with pytest.raises(ArtifactNameError, match="artifact name"):
            store.put_bytes(RUN, name, b"x")
        with pytest.raises(ArtifactNameError):
            store.open(RUN, name)
        assert stored_names() == []

    @pytest.mark.parametrize("run_id", BAD_RUN_IDS)
    def test_bad_run_ids_are_refused(self, store: ArtifactStore, stored_names: Names, run_id: str) -> None:
        with pytest.raises(ArtifactNameError, match="run id"):
            store.put_bytes(run_id, "x.txt", b"x")
        with pytest.raises(ArtifactNameError):
            store.open(run_id, "x.txt")
        assert stored_names() == []

    def test_odd_names_stay_inside_the_run(self, store: ArtifactStore, stored_names: Names) -> None:
        names = ["%2e%2e/x", "...", "..x", "x..", "a/.../b", "~/x", "C:/x", "sp ace/é.txt"]
        for name in names:
            record = store.put_bytes(RUN, name, name.encode())
            assert record.uri.startswith(f"{store.url()}/{RUN}/")
            with store.open(RUN, name) as file:
                assert file.read() == name.encode()
        assert stored_names() == sorted(f"{RUN}/{name}" for name in names)


class BrokenStream(io.RawIOBase):
    """An upload whose client disconnects after ``size`` bytes."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            raise ConnectionResetError("client went away")
        count = min(size, self.left)
        self.left -= count
        return b"x" * count


@pytest.fixture(scope="module")
def large_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """64 MiB of random bytes and their sha256, written a MiB at a time."""
    path = tmp_path_factory.mktemp("large") / "large.bin"
    digest = hashlib.sha256()
    with path.open("wb") as file:
        for _ in range(64):
            chunk = os.urandom(MiB)
            digest.update(chunk)
            file.write(chunk)
    return path, digest.hexdigest()


# ---------------------------------------------------------------- local folder


class TestLocalArtifactStore(ArtifactStoreSuite):
    streaming_limit = 4 * MiB  # measured: 1.0 MiB, one copy chunk

    @pytest.fixture
    def store(self, tmp_path: Path) -> ArtifactStore:
        return open_artifact_store(str(tmp_path / "artifacts"))

    @pytest.fixture
    def stored_names(self, tmp_path: Path) -> Names:
        root = tmp_path / "artifacts"
        return lambda: sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def test_default_local_store_is_under_tidal_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDAL_HOME", str(tmp_path / "home"))
    store = open_artifact_store()
    assert store.url() == (tmp_path / "home" / "artifacts").as_uri()
    assert open_artifact_store(home=tmp_path / "other").url() == (tmp_path / "other" / "artifacts").as_uri()
    record = store.put_bytes(RUN, "a.txt", b"a")
    assert (tmp_path / "home" / "artifacts" / RUN / "a.txt").read_bytes() == b"a"
    assert record.uri == (tmp_path / "home" / "artifacts" / RUN / "a.txt").as_uri()


def test_file_urls_and_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert open_artifact_store((tmp_path / "x").as_uri()).url() == (tmp_path / "x").as_uri()
    monkeypatch.chdir(tmp_path)
    store = open_artifact_store("relative/folder")
    monkeypatch.chdir("/")
    store.put_bytes(RUN, "a.txt", b"a")
    assert (tmp_path / "relative" / "folder" / RUN / "a.txt").exists()


@pytest.mark.parametrize("url", ["ftp://host/x", "gs://bucket/x", "s3a://bucket", "file://host/x", "s3://", " "])
def test_unsupported_urls(url: str) -> None:
    with pytest.raises(ConfigError, match="artifact store URL"):
        open_artifact_store(url)


def test_a_name_that_is_a_folder_is_not_an_artifact(tmp_path: Path) -> None:
    store = open_artifact_store(str(tmp_path))
    store.put_bytes(RUN, "images/a.png", b"a")
    with pytest.raises(ArtifactNotFound):
        store.open(RUN, "images")


def test_unwritable_local_store(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    store = open_artifact_store(str(tmp_path / "file"))
    with pytest.raises(ArtifactStoreError, match=r"file.*can be created and written"):
        store.put_bytes(RUN, "a.txt", b"a")
    with pytest.raises(ArtifactStoreError):
        store.check()
    open_artifact_store(str(tmp_path / "new")).check()


# ---------------------------------------------------------------- S3 (moto's server)

# the server (s3_server) and the fake credentials (aws_environment) are tests/conftest.py's


@pytest.fixture
def s3_client(s3_server: str, aws_environment: None) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=s3_server)


@pytest.fixture
def bucket(s3_client: Any) -> str:
    name = f"tidal-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


class TestS3ArtifactStore(ArtifactStoreSuite):
    # Measured: 25.7 MiB = three copies of the 8 MiB part being sent (s3fs's buffer, the part
    # s3fs reads out of it, aiohttp's copy of that) and one copy chunk. Not the file's 64 MiB.
    streaming_limit = 4 * 8 * MiB

    @pytest.fixture
    def store(self, bucket: str, s3_server: str) -> ArtifactStore:
        return open_artifact_store(f"s3://{bucket}/team/artifacts", endpoint_url=s3_server)

    @pytest.fixture
    def stored_names(self, bucket: str, s3_client: Any) -> Names:
        def names() -> list[str]:
            objects = s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])
            uploads = s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
            keys = [item["Key"] for item in objects] + [f"(unfinished) {item['Key']}" for item in uploads]
            return sorted(key.removeprefix("team/artifacts/") for key in keys)

        return names


def test_s3_endpoint_from_the_environment(bucket: str, s3_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENDPOINT_ENV, s3_server)
    store = open_artifact_store(f"s3://{bucket}")
    store.check()
    record = store.put_bytes(RUN, "a.txt", b"a")
    assert record.uri == f"s3://{bucket}/{RUN}/a.txt"


def test_s3_missing_bucket(s3_server: str, aws_environment: None) -> None:
    store = open_artifact_store("s3://no-such-bucket/x", endpoint_url=s3_server)
    with pytest.raises(ArtifactStoreError, match="bucket 'no-such-bucket' exists"):
        store.check()
    with pytest.raises(ArtifactStoreError, match="s3://no-such-bucket/x"):
        store.put_bytes(RUN, "a.txt", b"a")


def test_s3_unreachable_endpoint(aws_environment: None) -> None:
    quick = {"config_kwargs": {"connect_timeout": 1, "read_timeout": 1, "retries": {"max_attempts": 1}}}
    store = open_artifact_store("s3://bucket/prefix", endpoint_url="http://127.0.0.1:9", storage_options=quick)
    started = time.monotonic()
    with pytest.raises(ArtifactStoreError, match=r"s3://bucket/prefix.*http://127\.0\.0\.1:9 is reachable"):
        store.put_bytes(RUN, "a.txt", b"a")
    with pytest.raises(ArtifactStoreError, match="s3://bucket/prefix"):
        store.open(RUN, "a.txt")
    with pytest.raises(ArtifactStoreError, match="credentials"):
        store.check()
    assert time.monotonic() - started < 20  # refused at once, not after botocore's retries and timeouts
