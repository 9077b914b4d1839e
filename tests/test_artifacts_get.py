"""tidal.artifacts.get: weights and datasets from a real S3-protocol server, cached by version."""

from __future__ import annotations

from pathlib import Path

import pytest

import tidal
from s3_server import Bucket
from tidal.errors import SourceError, UsageError


def test_an_object_is_fetched_once_and_again_when_replaced(bucket: Bucket, tmp_path: Path) -> None:
    url = bucket.put("models/detector/model_final.pth", b"weights v1")
    first = tidal.artifacts.get(url, cache=tmp_path)
    assert first.name == "model_final.pth" and first.read_bytes() == b"weights v1"
    first.write_bytes(b"touched")  # a second call with nothing changed uses the cache, not the bucket
    assert tidal.artifacts.get(url, cache=tmp_path) == first and first.read_bytes() == b"touched"
    bucket.put("models/detector/model_final.pth", b"weights v2")
    second = tidal.artifacts.get(url, cache=tmp_path)
    assert second != first and second.read_bytes() == b"weights v2"


def test_a_prefix_is_a_folder_of_every_object_under_it(bucket: Bucket, tmp_path: Path) -> None:
    for name in ("train/a.jpg", "train/sub/b.jpg", "val/c.jpg"):
        bucket.put(f"balloon/{name}", name.encode())
    folder = tidal.artifacts.get(bucket.url("balloon/train/"), cache=tmp_path)
    assert sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()) == [
        "a.jpg", "sub/b.jpg"]
    assert (folder / "sub" / "b.jpg").read_bytes() == b"train/sub/b.jpg"
    assert not list(tmp_path.rglob("*.partial"))


def test_missing_objects_and_buckets_are_clear_errors(bucket: Bucket, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="names no object"):
        tidal.artifacts.get(bucket.url("nothing/here/"), cache=tmp_path)
    with pytest.raises(SourceError, match="no-such-bucket"):
        tidal.artifacts.get("s3://no-such-bucket-for-tidal/model.pth", cache=tmp_path)
    with pytest.raises(UsageError, match="no such file"):
        tidal.artifacts.get(str(tmp_path / "absent.pth"))
    local = tmp_path / "here.pth"
    local.write_bytes(b"x")
    assert tidal.artifacts.get(str(local)) == local
