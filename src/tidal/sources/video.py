"""Video frames decoded with PyAV, cut at keyframes into segments read in parallel.

Listing demuxes each file (no decoding) to learn every frame's timestamp and the keyframes;
a frame's index is the rank of its timestamp, so keys stay the same whatever the segmenting.
Which frames are selected (``start``, ``end``, ``fps``, ``every_nth``, ``frames``,
``max_frames``) is decided at listing too, over the whole video, so segmenting never changes
it; a worker seeks to its segment's keyframe and converts only those.

Null frames: an AVI file may hold zero-size video chunks, the "drop frame" convention of capture
tools: the previous frame is shown again for that tick. They are not damage. AVI timestamps
count chunks, so FFmpeg's demuxer returns no packet for a null chunk but leaves a one-tick gap.
Such frames are **emitted as repeats** of the previous frame, with their own index and time, so
the timeline holds: frame ``i`` is at ``i / fps`` seconds and a file whose header announces
444 frames yields 444, as a player shows them (``ffmpeg -i in.avi`` does the same). A file is
called truncated only when it really is: demuxing fails, or its data stops before the frame
count of its header (null chunks included), unless its index (read when the file is opened)
lists every packet read, in which case the frames after the last packet are null ones.
"""

from __future__ import annotations

import math
import os
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar, Literal, NamedTuple

import av
import numpy as np
from av.container import InputContainer
from av.packet import Packet
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream

from tidal.errors import ConfigError, DecodeError
from tidal.settings import SEGMENT_FRAMES, s3_endpoint_url
from tidal.sources._paths import (
    MediaFile,
    Readable,
    check_geometry,
    list_media,
    map_files,
    opened,
    rotate_picture,
    scaled_size,
)
from tidal.sources.base import Item, ItemFailure, Partition, Source

# fmt: off
VIDEO_EXTENSIONS = (
    "mp4", "mov", "m4v", "mkv", "webm", "avi", "mpg", "mpeg", "ts", "mts", "m2ts", "flv", "wmv",
    "3gp", "ogv",
)
# fmt: on
REENCODE_HINT = "re-download or re-encode it (ffmpeg -i IN -c:v libx264 OUT.mp4)"
_EXACT_DENOMINATOR = 1_000_000


class Segment(NamedTuple):
    """A partition's payload: which frames of which file, and where to seek to read them.

    ``frames`` holds ``(pts, frame_index)`` of the selected frames. ``seek_pts`` is the
    keyframe starting the segment (None: read from the start of the file), ``end_pts`` the
    next segment's keyframe (exclusive; None: to the end). ``repeats`` maps the selected null
    frames (see the module docstring) to the timestamp of the frame they show again.
    ``truncated`` is raised after the
    frames of a file's last segment when the file stops early; ``error`` is raised at once for
    a file that cannot be read at all.
    """

    path: str
    fingerprint: str
    seek_pts: int | None
    end_pts: int | None
    frames: tuple[tuple[int, int], ...]
    origin_pts: int = 0
    time_base: tuple[int, int] = (1, 1)
    truncated: str | None = None
    error: str | None = None
    repeats: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class _Timeline:
    """What demuxing one video tells: sorted timestamps, keyframe ranks, its time base.

    ``shown[i]`` is the timestamp of the decoded frame that frame ``i`` shows: ``pts[i]``
    itself, or for a null frame the last frame with data before it.
    """

    pts: list[int]
    keyframe_indexes: list[int]
    time_base: Fraction
    shown: list[int]
    truncated: str | None = None


class VideoFrames(Source):
    """The frames of video files as ``HxWx3`` uint8 RGB arrays, with path, index and time.

    Selection: ``start``/``end`` (seconds from the first frame, end exclusive), ``fps``
    (the first frame of each ``1/fps`` slot of video time, like ffmpeg's fps filter),
    ``every_nth`` (frame indexes divisible by it), ``frames`` (N frames evenly spaced over each
    video, or over ``start``..``end``: the middle frame of each of N equal slices of its frames;
    all of them when it has N or fewer), ``max_frames`` (the first ones selected, per video).
    ``width``/``height`` (one alone keeps the aspect ratio) and ``rotate`` (clockwise) shape
    the output; ``segment_frames`` is the least frames in a partition.

    Example::

        VideoFrames(paths="videos/**/*.mp4", fps=2, width=300)
        VideoFrames(paths="people/*.mp4", frames=30, width=300, rotate=90)   # 30 per video
    """

    # arguments added after jobs could already run: left out of the job id while at their default,
    # so those jobs keep their ids and resume (tidal.config.spec.canonical)
    added_arguments: ClassVar[frozenset[str]] = frozenset({"frames"})

    def __init__(
        self,
        paths: str | list[str],
        fps: float | None = None,
        every_nth: int = 1,
        width: int | None = None,
        height: int | None = None,
        rotate: Literal[0, 90, 180, 270] = 0,
        start: float | None = None,
        end: float | None = None,
        max_frames: int | None = None,
        segment_frames: int = SEGMENT_FRAMES,
        frames: int | None = None,
    ) -> None:
        check_geometry(width, height, rotate)
        _check_selection(fps, every_nth, start, end, max_frames, segment_frames)
        _check_frames(frames, fps, every_nth, max_frames)
        self.paths = paths
        self.fps = fps
        self.every_nth = every_nth
        self.width = width
        self.height = height
        self.rotate = rotate
        self.start = start
        self.end = end
        self.max_frames = max_frames
        self.segment_frames = segment_frames
        self.frames = frames
        self._endpoint = s3_endpoint_url()  # travels to workers with the source

    def partitions(self) -> list[Partition]:
        """Demux every file (no decoding) and cut each into keyframe-aligned segments."""
        files = list_media(self.paths, VIDEO_EXTENSIONS, self._endpoint)
        return [partition for listed in map_files(self._list, files) for partition in listed]

    def read(self, partition: Partition) -> Iterator[Item | ItemFailure]:
        """Seek to the segment's keyframe, decode, and yield the selected frames in order."""
        segment: Segment = partition.payload
        if segment.error is not None:
            raise DecodeError(segment.error)
        decoding = _Decoding(segment)
        try:
            # from an object store: its index, then only this segment's byte ranges
            with (
                opened(segment.path, segment.fingerprint, self._endpoint, ranged=True) as readable,
                av.open(readable, mode="r") as container,
            ):
                yield from self._decode(container, decoding)
        except av.FFmpegError as error:
            raise DecodeError(
                f"{segment.path} is truncated or corrupt: reading stopped ({error}) after "
                f"{decoding.read} frames of this part; {REENCODE_HINT}"
            ) from error
        if segment.truncated is not None:
            raise DecodeError(
                f"{segment.truncated}; {decoding.read} frames of this part were read; "
                f"{REENCODE_HINT}"
            )
        yield from decoding.failures()

    # listing

    def _list(self, file: MediaFile) -> list[Partition]:
        path, digest = file.location, file.fingerprint
        if digest is None:
            return [_unreadable(path, "unreadable", file.error or f"cannot read {path}")]
        try:
            with opened(path, None, self._endpoint) as readable:  # listed just now: no check
                timeline = _timeline(path, readable)
        except DecodeError as error:
            return [_unreadable(path, digest, str(error))]
        return self._segments(path, digest, timeline)

    def _segments(self, path: str, digest: str, timeline: _Timeline) -> list[Partition]:
        selected = self._selected(timeline)
        partitions = []
        for begin, stop in _segment_ranges(timeline, self.segment_frames):
            chosen = selected[bisect_left(selected, begin) : bisect_left(selected, stop)]
            last = stop == len(timeline.pts)
            if chosen or (last and self._wants_tail(timeline, selected)):
                segment = _segment(path, digest, timeline, begin, stop, chosen)
                partitions.append(
                    Partition(f"{path}@{digest}:{begin}-{stop - 1}", len(chosen), segment)
                )
        return partitions

    def _wants_tail(self, timeline: _Timeline, selected: list[int]) -> bool:
        """Whether frames past a truncation would have been selected (so it is reported)."""
        if timeline.truncated is None:
            return False
        if self.max_frames is not None and len(selected) >= self.max_frames:
            return False
        last_time = (timeline.pts[-1] - timeline.pts[0]) * timeline.time_base
        return self.end is None or _exact(self.end) > last_time

    def _selected(self, timeline: _Timeline) -> list[int]:
        """Indexes of the selected frames of one video, ascending."""
        ticks = [pts - timeline.pts[0] for pts in timeline.pts]
        first = 0 if self.start is None else _ticks(self.start, timeline.time_base)
        stop = None if self.end is None else _ticks(self.end, timeline.time_base)
        indexes = [
            index
            for index, tick in enumerate(ticks)
            if tick >= first and (stop is None or tick < stop)
        ]
        if self.fps is not None:
            slot = _slotter(self.fps, timeline.time_base)
            indexes = [
                index
                for position, index in enumerate(indexes)
                if position == 0 or slot(ticks[index]) > slot(ticks[index - 1])
            ]
        indexes = [index for index in indexes if index % self.every_nth == 0]
        if self.frames is not None:
            indexes = evenly_spaced(indexes, self.frames)
        return indexes[: self.max_frames]

    # reading

    def _decode(self, container: InputContainer, decoding: _Decoding) -> Iterator[Item]:
        stream = container.streams.video[0]
        # Frame and slice threads: measured faster than one thread on the same loop.
        stream.codec_context.thread_type = "AUTO"
        segment = decoding.segment
        # One scaler for the segment: frame.reformat() builds a new swscale context (and its
        # threads) for every frame, about half the CPU time of decode + scale (same pixels).
        scaler = VideoReformatter()
        for shown, frame in _frames(container, stream, decoding):
            showing = decoding.wanted.pop(shown, None)
            if showing is None:
                continue
            picture = self._picture(frame, scaler)
            for number, (pts, index) in enumerate(showing):
                # a null frame's copy: a processor may change its array in place
                data = picture if number == 0 else picture.copy()
                yield Item(_key(segment, index), data, _meta(segment, pts, index))
                decoding.read += 1
            if not decoding.wanted:
                return

    def _picture(self, frame: VideoFrame, scaler: VideoReformatter) -> np.ndarray:
        width, height = scaled_size(
            frame.width, frame.height, self.width, self.height, self.rotate, even=True
        )
        picture = scaler.reformat(frame, width=width, height=height, format="rgb24").to_ndarray()
        return rotate_picture(picture, self.rotate)


@dataclass(slots=True)
class _Decoding:
    """The state of reading one segment: frames still wanted, frames read, decoder errors.

    ``wanted`` maps the timestamp of each decoded frame still needed to the selected frames
    ``(pts, index)`` showing it: itself, and the null frames repeating it.
    """

    segment: Segment
    wanted: dict[int, list[tuple[int, int]]] = field(init=False)
    read: int = 0
    last_error: str | None = None

    def __post_init__(self) -> None:
        repeats = dict(self.segment.repeats)
        self.wanted = {}
        for pts, index in self.segment.frames:
            self.wanted.setdefault(repeats.get(pts, pts), []).append((pts, index))

    def failures(self) -> Iterator[ItemFailure]:
        """The selected frames the decoder never produced, in order."""
        reason = self.last_error or "the decoder produced no frame with this timestamp"
        missing = [frame for showing in self.wanted.values() for frame in showing]
        for pts, index in sorted(missing, key=lambda entry: entry[1]):
            meta = _meta(self.segment, pts, index)
            error = f"frame {index} of {self.segment.path} not decoded ({reason}); {REENCODE_HINT}"
            yield ItemFailure(_key(self.segment, index), error, meta)


def _frames(
    container: InputContainer, stream: VideoStream, decoding: _Decoding
) -> Iterator[tuple[int, VideoFrame]]:
    """``(pts, frame)`` from the segment's keyframe to its end, in presentation order."""
    segment = decoding.segment
    for packet in _packets(container, stream, segment.seek_pts):
        for frame in _decode_packet(packet, decoding):
            if frame.pts is None:
                continue
            if segment.end_pts is not None and frame.pts >= segment.end_pts:
                return
            yield frame.pts, frame


def _packets(
    container: InputContainer, stream: VideoStream, seek_pts: int | None
) -> Iterator[Packet[VideoStream]]:
    """Packets from the keyframe at ``seek_pts``; from the start if the seek went past it."""
    if seek_pts is None:
        yield from container.demux(stream)
        return
    container.seek(seek_pts, stream=stream, backward=True, any_frame=False)
    packets = container.demux(stream)
    first = next(packets, None)
    if first is not None and first.pts is not None and first.pts > seek_pts:
        container.seek(stream.start_time or 0, stream=stream, backward=True, any_frame=False)
        packets = container.demux(stream)
    elif first is not None:
        yield first
    yield from packets


def _decode_packet(packet: Packet[VideoStream], decoding: _Decoding) -> list[VideoFrame]:
    """The frames one packet completes; a damaged packet is noted and decoding goes on."""
    try:
        return packet.decode()
    except av.error.InvalidDataError as error:
        decoding.last_error = str(error)
        return []


def _timeline(path: str, readable: Readable) -> _Timeline:
    """Demux (no decoding) the first video stream of ``path``: its timestamps and keyframes.

    From an object store, demuxing reads the whole object once (the packets' data comes with
    their timestamps); decoding a segment later fetches only its ranges.
    """
    try:
        with av.open(readable, mode="r") as container:
            if not container.streams.video:
                raise DecodeError(f"{path} has no video stream; leave it out of paths")
            return _demux(path, container, container.streams.video[0])
    except av.FFmpegError as error:
        raise DecodeError(
            f"cannot open video {path} ({_ffmpeg_words(error)}): it is not a video, or is truncated or "
            f"corrupt; {REENCODE_HINT}, or leave it out of paths"
        ) from error


def _ffmpeg_words(error: av.FFmpegError) -> str:
    """FFmpeg's own words for ``error``, without PyAV's errno code and file name around them;
    a file of 0 bytes says so."""
    words = str(getattr(error, "strerror", "") or error)
    filename = getattr(error, "filename", None)
    if isinstance(filename, str) and os.path.isfile(filename) and os.path.getsize(filename) == 0:
        return "the file is empty: 0 bytes"
    return words


def _demux(path: str, container: InputContainer, stream: VideoStream) -> _Timeline:
    pts: set[int] = set()
    keyframes: set[int] = set()
    count = FrameCount(path, container, stream)
    try:
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            count.add(packet.pts)
            if packet.is_discard:
                continue
            pts.add(packet.pts)
            if packet.is_keyframe:
                keyframes.add(packet.pts)
    except av.FFmpegError as error:
        count.failure = f"demuxing failed ({error})"
    if not pts or stream.time_base is None:
        raise DecodeError(
            f"{path} has no video frame with a timestamp; remux it "
            "(ffmpeg -i IN -c copy OUT.mp4) or leave it out of paths"
        )
    ordered, shown = count.with_null_frames(sorted(pts))
    rank = {value: index for index, value in enumerate(ordered)}
    keyframe_indexes = sorted(rank[value] for value in keyframes)
    return _Timeline(ordered, keyframe_indexes, stream.time_base, shown, count.truncation())


class FrameCount:
    """Whether a file's frames add up to the count its header announces, null frames included.

    Fed the timestamp of every packet while demuxing. In AVI (see the module docstring) a
    timestamp counts chunks, null ones included, so the frames are the ticks up to the last
    packet's, and the header's count is trusted for null frames after it when the index read
    at opening lists exactly the packets read (a cut file has lost its index, which is at the
    end). Elsewhere the packets are the frames. Used by :class:`VideoFrames` and by
    :func:`tidal.sources.clips.decode_clip` so that both see the same frames.
    """

    def __init__(self, path: str, container: InputContainer, stream: VideoStream) -> None:
        self.path = path
        self.expected = stream.frames
        self.counts_ticks = "avi" in container.format.name.split(",")
        self.indexed = len(stream.index_entries) if self.counts_ticks else 0
        self.seen = 0
        self.last_pts: int | None = None
        self.failure: str | None = None

    def add(self, pts: int) -> None:
        """One more packet, with its timestamp."""
        self.seen += 1
        self.last_pts = pts if self.last_pts is None else max(pts, self.last_pts)

    def last_tick(self) -> int | None:
        """The timestamp of the file's last frame: its last packet's, or a null frame's after it."""
        if self.last_pts is None or not self.counts_ticks:
            return self.last_pts
        if self.failure is None and self.indexed == self.seen:
            return max(self.last_pts, self.expected - 1)
        return self.last_pts

    def with_null_frames(self, data_pts: list[int]) -> tuple[list[int], list[int]]:
        """Every frame's timestamp (``data_pts`` plus the null frames), and the one it shows."""
        last = self.last_tick()
        if not self.counts_ticks or last is None:
            return data_pts, data_pts
        ticks = list(range(data_pts[0], last + 1))
        return ticks, [data_pts[bisect_right(data_pts, tick) - 1] for tick in ticks]

    def truncation(self) -> str | None:
        """Why the file's frames stop early, or None when they do not."""
        frames = self.seen
        if self.counts_ticks and self.last_pts is not None:
            frames = (self.last_tick() or 0) + 1  # ticks from 0: leading null chunks count too
        return _truncation(self.path, frames, self.expected, self.failure)


def _truncation(path: str, seen: int, expected: int, failure: str | None) -> str | None:
    """Why a file's frames stop early, or None when they do not seem to."""
    if failure is None and not 0 < seen < expected:
        return None
    where = f"after {seen} of {expected} frames" if expected else f"after {seen} frames"
    because = f" ({failure})" if failure else ""
    return f"{path} is truncated or corrupt: its frames stop {where}{because}"


def _segment_ranges(timeline: _Timeline, segment_frames: int) -> list[tuple[int, int]]:
    """Frame index ranges ``[begin, stop)`` starting at keyframes, merging GOPs until each
    holds at least ``segment_frames`` frames."""
    ranges, begin = [], 0
    for start in timeline.keyframe_indexes:
        if start - begin >= segment_frames:
            ranges.append((begin, start))
            begin = start
    ranges.append((begin, len(timeline.pts)))
    return ranges


def _segment(
    path: str, digest: str, timeline: _Timeline, begin: int, stop: int, chosen: list[int]
) -> Segment:
    last = stop == len(timeline.pts)
    return Segment(
        path=path,
        fingerprint=digest,
        seek_pts=None if begin == 0 else timeline.pts[begin],
        end_pts=None if last else timeline.pts[stop],
        frames=tuple((timeline.pts[index], index) for index in chosen),
        origin_pts=timeline.pts[0],
        time_base=(timeline.time_base.numerator, timeline.time_base.denominator),
        truncated=timeline.truncated if last else None,
        repeats=tuple(
            (timeline.pts[index], timeline.shown[index])
            for index in chosen
            if timeline.shown[index] != timeline.pts[index]
        ),
    )


def _unreadable(path: str, digest: str, reason: str) -> Partition:
    """One failing partition for a file that cannot be listed: the job records it, goes on."""
    segment = Segment(path, digest, None, None, (), error=reason)
    return Partition(f"{path}@{digest}:unreadable", 0, segment)  # nothing to expect from it


def _slotter(fps: float, time_base: Fraction) -> Callable[[int], int]:
    """``ticks -> floor(seconds * fps)`` in integer arithmetic."""
    rate = _exact(fps)
    numerator = time_base.numerator * rate.numerator
    denominator = time_base.denominator * rate.denominator
    return lambda ticks: (ticks * numerator) // denominator


def _ticks(seconds: float, time_base: Fraction) -> int:
    """The first whole number of ``time_base`` ticks at or after ``seconds``."""
    return math.ceil(_exact(seconds) / time_base)


def _exact(value: float) -> Fraction:
    """``0.2`` as 1/5 and ``29.97`` as 2997/100, not their binary approximations."""
    return Fraction(value).limit_denominator(_EXACT_DENOMINATOR)


def _key(segment: Segment, index: int) -> str:
    return f"{segment.path}@{segment.fingerprint}#{index}"


def _meta(segment: Segment, pts: int, index: int) -> dict[str, Any]:
    numerator, denominator = segment.time_base
    # int / int is correctly rounded: the float of the exact Fraction, without building one per frame
    time = (pts - segment.origin_pts) * numerator / denominator
    return {"path": segment.path, "frame_index": index, "time": time}


def evenly_spaced(indexes: list[int], count: int) -> list[int]:
    """``count`` of ``indexes``, evenly spaced: the middle one of each of ``count`` equal slices.

    Middles rather than both ends: the first and last frames of a video are often a fade or a
    hand at the camera. With ``count`` or fewer indexes, all of them.

    >>> evenly_spaced(list(range(100)), 4)
    [12, 37, 62, 87]
    """
    total = len(indexes)
    if total <= count:
        return indexes
    return [indexes[(2 * slot + 1) * total // (2 * count)] for slot in range(count)]


def _check_frames(frames: int | None, fps: float | None, every_nth: int, max_frames: int | None) -> None:
    """``frames`` is a count of frames per video, alone: fps, every_nth and max_frames pick
    frames another way, and mixing them would make "N evenly spaced" untrue."""
    if frames is None:
        return
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ConfigError(
            f"frames is the number of evenly spaced frames to take per video: give 1 or more, "
            f"not {frames!r}"
        )
    others = [
        f"{name}={value}"
        for name, value, unset in (
            ("fps", fps, None), ("every_nth", every_nth, 1), ("max_frames", max_frames, None)
        )
        if value != unset
    ]  # fmt: skip
    if others:
        raise ConfigError(
            f"frames={frames} (evenly spaced frames per video) cannot be combined with "
            f"{', '.join(others)}; keep frames alone, or drop it and select with {others[0].split('=')[0]}"
        )


def _check_selection(
    fps: float | None,
    every_nth: int,
    start: float | None,
    end: float | None,
    max_frames: int | None,
    segment_frames: int,
) -> None:
    if fps is not None and not fps > 0:
        raise ConfigError(f"fps must be above 0, not {fps}")
    for name, value in (
        ("every_nth", every_nth),
        ("segment_frames", segment_frames),
        ("max_frames", max_frames),
    ):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be at least 1, not {value}")
    if start is not None and start < 0:
        raise ConfigError(f"start must be 0 or more seconds, not {start}")
    if start is not None and end is not None and end <= start:
        raise ConfigError(f"end ({end}) must be after start ({start})")
