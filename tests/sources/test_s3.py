"""Every file source over objects in an S3-protocol server (moto, see conftest.py).

Each source's local test class runs again with its files in a bucket (the shared suite and the
class's own checks), plus what only object stores have: listings that read no object, ranged
reads of a video segment, a pickled source read elsewhere, and refusals naming the bucket.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import fsspec
import pytest
import test_clips
import test_images
import test_tar
import test_video
from PIL import Image
from source_suite import LocalMedia, MakeSource, describe, describe_in_another_process, listing, reading

from s3_server import Bucket, CountingProxy, start_moto
from tidal.errors import DecodeError, SourceError
from tidal.sources._paths import fingerprint_bytes
from tidal.sources.base import Item, Source
from tidal.sources.clips import VideoClips
from tidal.sources.images import Images
from tidal.sources.tar import TarShards
from tidal.sources.video import VideoFrames

_FINGERPRINT = re.compile(r"@[0-9a-f]{12}")


class S3Media(LocalMedia):
    """The suite's files mirrored in a bucket: ``tmp_path/a/b.png`` is ``s3://bucket/a/b.png``.

    The local copy is kept in step, so a test can still read what it wrote.
    """

    def __init__(self, bucket: Bucket, root: Path, files: list[Path]) -> None:
        self.bucket, self.root = bucket, root
        for path in files:
            bucket.put(self._key(path), path.read_bytes())

    def _key(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def location(self, path: Path) -> str:
        return self.bucket.url(self._key(path))

    def write(self, path: Path, data: bytes) -> None:
        super().write(path, data)
        self.bucket.put(self._key(path), data)

    def remove(self, path: Path) -> None:
        super().remove(path)
        self.bucket.client.delete_object(Bucket=self.bucket.name, Key=self._key(path))

    def touch(self, path: Path) -> None:
        """Copy the object onto itself: a new LastModified, the same content and ETag."""
        key = self._key(path)
        self.bucket.client.copy_object(
            Bucket=self.bucket.name,
            Key=key,
            CopySource={"Bucket": self.bucket.name, "Key": key},
            MetadataDirective="REPLACE",
            Metadata={"touched": "yes"},
        )

    def make_empty_folder(self, path: Path) -> None:
        """Nothing to do: a prefix with no object under it is what an empty folder is."""


class OnS3:
    """Mixed in before a local test class: the same tests over a bucket holding the same files."""

    @pytest.fixture
    def media(self, bucket: Bucket, media_files: list[Path], tmp_path: Path) -> S3Media:
        return S3Media(bucket, tmp_path, media_files)

    def test_reads_what_the_files_on_disk_read(
        self, make_source: MakeSource, media_files: list[Path], media: S3Media, tmp_path: Path
    ) -> None:
        here = describe(make_source([str(path) for path in media_files]))["readings"]
        there = describe(make_source(media.locations(media_files)))["readings"]
        bucket_root = media.bucket.url("")
        assert comparable(there, bucket_root, f"{tmp_path}/") == comparable(here, bucket_root, f"{tmp_path}/")

    def test_a_worker_elsewhere_reads_the_urls_without_local_files_or_settings(
        self, source: Source, media_files: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        partitions = source.partitions()
        payloads = repr([partition.payload for partition in partitions])
        assert "s3://" in payloads and str(tmp_path) not in payloads
        for path in media_files:
            path.unlink()  # nothing local to fall back on
        monkeypatch.delenv("TIDAL_S3_ENDPOINT_URL")  # the source carries the endpoint it was built with
        elsewhere = describe_in_another_process(source)
        assert elsewhere["listing"] == json.loads(json.dumps(listing(partitions)))
        assert any("failed:" not in what for outcomes in elsewhere["readings"] for _, what in outcomes)


def comparable(readings: list[list[list[str]]], *replacing: str) -> list[list[list[str]]]:
    """Readings with fingerprints left out and the first location prefix written as the second."""
    old, new = replacing
    return [
        [[_FINGERPRINT.sub("@", text.replace(old, new)) for text in outcome] for outcome in outcomes]
        for outcomes in readings
    ]


class TestImagesOnS3(OnS3, test_images.TestImages):
    pass


class TestTarShardsOnS3(OnS3, test_tar.TestTarShards):
    pass


class TestVideoClipsOnS3(OnS3, test_clips.TestVideoClips):
    pass


class TestVideoFramesOnS3(OnS3, test_video.TestVideoFrames):
    pass


# ---------------------------------------------------------------- what went over the wire


@pytest.fixture(scope="module")
def long_mp4(tmp_path_factory: pytest.TempPathFactory, bikes_mp4: Path) -> Path:
    """bikes.mp4 forty times over (10,000 frames, 240 keyframes, ~20 MB), remuxed, not re-encoded."""
    target = tmp_path_factory.mktemp("long") / "long.mp4"
    with av.open(str(bikes_mp4)) as given, av.open(str(target), "w") as output:
        template = given.streams.video[0]
        stream = output.add_stream_from_template(template)
        span = max(packet.pts or 0 for packet in given.demux(template)) + 512  # 512: one frame at 1/12800
        for copy in range(40):
            with av.open(str(bikes_mp4)) as again:  # a muxed packet is spent: demux afresh each time
                for packet in again.demux(again.streams.video[0]):
                    if packet.dts is None or packet.pts is None:
                        continue
                    packet.pts, packet.dts = packet.pts + copy * span, packet.dts + copy * span
                    packet.stream = stream
                    output.mux(packet)
    return target


def test_decoding_a_segment_fetches_its_ranges_not_the_whole_object(
    long_mp4: Path, bucket: Bucket, counting_proxy: CountingProxy
) -> None:
    url = bucket.put("videos/long.mp4", long_mp4.read_bytes())
    source = VideoFrames(url, width=32)
    partitions = source.partitions()
    middle = partitions[len(partitions) // 2]
    counting_proxy.exchanges.clear()
    items = reading(source, middle)
    fetched, size = counting_proxy.fetched(), long_mp4.stat().st_size
    assert len(items) == middle.size
    assert fetched < size / 4, f"decoding {middle.id} fetched {fetched} of {size} bytes"
    local = VideoFrames(str(long_mp4), width=32)
    same = next(partition for partition in local.partitions() if partition.id.endswith(middle.id.rpartition(":")[2]))
    assert comparable([items], url, str(long_mp4)) == comparable([reading(local, same)], url, str(long_mp4))


@pytest.mark.parametrize(
    ("make", "names"),
    [
        (lambda url: Images(url, per_partition=2), ["a.png", "b.png", "c.png"]),
        (lambda url: TarShards(url), ["a.tar", "b.tar"]),
        (lambda url: VideoClips(url), ["a.mp4", "b.mp4"]),
    ],
    ids=["Images", "TarShards", "VideoClips"],
)
def test_listing_reads_no_object(
    make: Callable[[str], Source], names: list[str], bucket: Bucket, counting_proxy: CountingProxy
) -> None:
    for name in names:
        bucket.put(f"data/{name}", b"not read at listing " * 1000)
    partitions = make(bucket.url("data/*")).partitions()
    assert partitions
    objects = {f"/{bucket.name}/data/{name}" for name in names}
    touched = [
        exchange
        for exchange in counting_proxy.exchanges
        if exchange.path in objects or (exchange.method == "GET" and "list-type" not in exchange.path)
    ]
    assert touched == [], "the listing read or asked about objects: fingerprints must come from the listing"


def test_paths_name_objects_by_prefix_glob_or_key_beside_local_files(
    bucket: Bucket, image_folder: Path
) -> None:
    png = (image_folder / "frame4.png").read_bytes()
    for key in ("set/a.png", "set/deeper/b.png", "set/notes.txt", "settled/c.png"):
        bucket.put(key, png)
    expected = [bucket.url("set/a.png"), bucket.url("set/deeper/b.png")]
    for paths in (bucket.url("set"), bucket.url("set/"), bucket.url("set/**/*.png"), expected):
        partitions = Images(paths).partitions()
        assert [path for partition in partitions for path, _ in partition.payload] == expected, paths
    mixed = Images([bucket.url("set/a.png"), str(image_folder / "frame4.png")], per_partition=1)
    items = [item for partition in mixed.partitions() for item in mixed.read(partition)]
    assert [item.meta["path"] for item in items] == [str(image_folder / "frame4.png"), bucket.url("set/a.png")]
    assert isinstance(items[0], Item) and isinstance(items[1], Item)
    assert (items[0].data == items[1].data).all()


def test_an_object_replaced_while_it_is_read_is_not_mixed_with_the_new_one(long_mp4: Path, bucket: Bucket) -> None:
    url = bucket.put("videos/long.mp4", long_mp4.read_bytes())
    source = VideoFrames(url, width=32, segment_frames=100_000)  # one partition: the whole file
    (partition,) = source.partitions()
    frames = source.read(partition)
    assert isinstance(next(frames), Item)
    bucket.put("videos/long.mp4", long_mp4.read_bytes()[:-1000])
    with pytest.raises(DecodeError, match=rf"{re.escape(url)} changed while it was read; run the job again"):
        list(frames)


# ---------------------------------------------------------------- refused before any work

SOURCES: dict[str, Callable[[str], Source]] = {
    "VideoFrames": VideoFrames,
    "Images": Images,
    "TarShards": TarShards,
    "VideoClips": VideoClips,
}


@pytest.fixture(scope="module")
def strict_s3_server() -> Any:
    """An S3 server that checks credentials (and knows none)."""
    process, url = start_moto({**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    with process:
        yield url
        process.terminate()


@pytest.mark.parametrize("name", SOURCES)
def test_wrong_credentials_are_refused_naming_the_bucket(
    name: str, strict_s3_server: str, aws_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDAL_S3_ENDPOINT_URL", strict_s3_server)
    with pytest.raises(SourceError) as refused:
        SOURCES[name]("s3://datasets/train/*.mp4").partitions()
    message = str(refused.value)
    assert "cannot list s3://datasets/train/*.mp4: bucket 'datasets'" in message
    assert f"at {strict_s3_server} refused the credentials" in message
    assert "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in message


@pytest.mark.parametrize("name", SOURCES)
def test_a_missing_bucket_is_refused_naming_it(name: str, bucket: Bucket, s3_server: str) -> None:
    for paths in ("s3://no-such-bucket/train/*.mp4", "s3://no-such-bucket/train/a.mp4"):
        with pytest.raises(SourceError) as refused:
            SOURCES[name](paths).partitions()
        message = str(refused.value)
        assert f"cannot list {paths}: bucket 'no-such-bucket' does not exist at {s3_server}" in message
        assert "check its name and the endpoint" in message


@pytest.mark.parametrize("name", SOURCES)
def test_no_object_is_refused_naming_the_bucket(name: str, bucket: Bucket) -> None:
    bucket.put("train/notes.txt", b"not media")
    for paths, says in (
        (bucket.url("train/*.mp4"), "matched no object in bucket"),
        (bucket.url("train"), "names no object in bucket"),
    ):
        with pytest.raises(SourceError) as refused:
            SOURCES[name](paths).partitions()
        assert f"{paths} {says} {bucket.name!r}" in str(refused.value) and "; check the" in str(refused.value)


@pytest.mark.slow  # botocore tries a refused connection several times: ~6 s
def test_an_unreachable_endpoint_is_refused_naming_it(aws_environment: None, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
    monkeypatch.setenv("TIDAL_S3_ENDPOINT_URL", endpoint)
    with pytest.raises(SourceError) as refused:
        Images("s3://photos/train/*.jpg").partitions()
    message = str(refused.value)
    assert message.startswith(f"cannot list s3://photos/train/*.jpg: bucket 'photos' at {endpoint} could not be read")
    assert message.endswith(f"check that {endpoint} is reachable")


def test_a_store_listing_no_content_hash_fingerprints_samples_like_a_local_file(
    bikes_frames: list[Any],
) -> None:
    """fsspec's memory filesystem lists sizes only: objects are sampled as files are."""
    fs = fsspec.filesystem("memory")
    contents = []
    for number, frame in enumerate(bikes_frames[:3]):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="PNG")
        contents.append(buffer.getvalue())
        fs.pipe_file(f"/tidal-test/frame{number}.png", buffer.getvalue())
    source = Images("memory://tidal-test/*.png")
    try:
        items = [item for partition in source.partitions() for item in source.read(partition)]
    finally:
        fs.rm("/tidal-test", recursive=True)
    assert [item.key for item in items] == [
        f"memory:///tidal-test/frame{number}.png@{fingerprint_bytes(content)}"
        for number, content in enumerate(contents)
    ]
    assert all(isinstance(item, Item) for item in items), items
