"""Whole videos as items: every selected frame of a file decoded into one array.

Some processors need a video at once, not frame by frame: a repetition counter compares every
frame with the ones around it. :class:`VideoClips` yields one item per file whose ``data`` is a
:class:`Clip` (``T x H x W x 3`` uint8 frames, their times, the frame rate). Frames are scaled
down while decoding (``width=112`` by default) because a whole video must fit in a worker's
memory: 112 px wide, a 16:9 minute at 30 fps is about 34 MB.

:func:`decode_clip` is the same decoding for a path, bytes or a binary file object, so that a
service can decode an uploaded video exactly as a batch job does.

Null frames (the zero-size chunks of AVI files written by capture tools) are repeats of the
frame before them, kept in the clip at their own time, exactly as :class:`VideoFrames` yields
them (see :mod:`tidal.sources.video`): the frames stay evenly spaced at the clip's ``fps``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import av
import numpy as np
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream
from numpy.typing import NDArray

from tidal.errors import ConfigError, DecodeError
from tidal.settings import s3_endpoint_url
from tidal.sources._paths import MediaFile, check_geometry, list_media, opened, scaled_size
from tidal.sources.base import Item, ItemFailure, Partition, Source
from tidal.sources.video import REENCODE_HINT, VIDEO_EXTENSIONS, FrameCount, _slotter

VideoInput = str | os.PathLike[str] | bytes | BinaryIO | io.RawIOBase


@dataclass(frozen=True, slots=True)
class Clip:
    """A decoded video: ``frames`` ``(T, H, W, 3)`` uint8 RGB, ``times`` ``(T,)`` seconds from
    the first frame, ``fps`` the rate of the frames kept (the requested ``fps`` when frames
    were dropped to reach it). ``dropped`` counts damaged frames the decoder skipped."""

    frames: NDArray[np.uint8]
    times: NDArray[np.float64]
    fps: float
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.frames)


class VideoClips(Source):
    """Each video file as one item whose ``data`` is a :class:`Clip` of its decoded frames.

    ``width``/``height`` scale the frames (one alone keeps the aspect ratio; ``None`` for both
    keeps the full size, which costs memory), ``fps`` keeps the first frame of every ``1/fps``
    seconds (like :class:`~tidal.sources.video.VideoFrames`), ``max_frames`` the first ones.
    Keys are ``path@fingerprint``; ``meta`` is ``{"path", "frames", "fps"}``. A file that
    cannot be decoded, or stops early, becomes a failed item and the job goes on. Videos in an
    object store (``s3://bucket/uploads/*.mp4``) are read through once, as they decode.

    Example::

        VideoClips(paths="uploads/*.mp4", width=112, fps=15)
    """

    def __init__(
        self,
        paths: str | list[str],
        width: int | None = 112,
        height: int | None = None,
        fps: float | None = None,
        max_frames: int | None = None,
    ) -> None:
        _check_arguments(width, height, fps, max_frames)
        self.paths = paths
        self.width = width
        self.height = height
        self.fps = fps
        self.max_frames = max_frames
        self._endpoint = s3_endpoint_url()  # travels to workers with the source

    def partitions(self) -> list[Partition]:
        """One partition per file, listed with a fingerprint only (nothing is decoded)."""
        return [_partition(file) for file in list_media(self.paths, VIDEO_EXTENSIONS, self._endpoint)]

    def read(self, partition: Partition) -> Iterator[Item | ItemFailure]:
        """Decode the whole file; a file that cannot be decoded is one failed item."""
        path, digest = partition.payload
        key = f"{path}@{digest}"
        if digest is None:
            yield ItemFailure(key, f"cannot read {path}; check it exists and is readable", {"path": path})
            return
        with opened(path, digest, self._endpoint) as readable:  # a changed file fails the partition
            try:
                clip = decode_clip(readable, self.width, self.height, self.fps, self.max_frames)
            except DecodeError as error:
                yield ItemFailure(key, str(error), {"path": path})
                return
        yield Item(key, clip, {"path": path, "frames": len(clip), "fps": clip.fps})


def _partition(file: MediaFile) -> Partition:
    # an unreadable file (no fingerprint) is reported as a failed item by read(): the job goes on
    return Partition(f"{file.location}@{file.fingerprint or 'unreadable'}", 1, (file.location, file.fingerprint))


def decode_clip(
    video: VideoInput,
    width: int | None = 112,
    height: int | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
) -> Clip:
    """Decode a video (a path, its bytes, or a binary file object) into a :class:`Clip`.

    Raise DecodeError, naming the video, when it is not a video, holds no frame, or is
    truncated (its frames stop before the count its header announces).

    Example::

        clip = decode_clip(request_body, width=112)   # bytes of an uploaded .mp4
        clip.frames.shape, clip.fps                    # (T, 48, 112, 3), 25.0
    """
    _check_arguments(width, height, fps, max_frames)
    name = _name(video)
    if isinstance(video, bytes) and not video:
        raise DecodeError("the uploaded video is empty (0 bytes); send the video file's content")
    given = io.BytesIO(video) if isinstance(video, bytes) else video
    try:
        with av.open(given, mode="r") as container:
            return _decode(container, name, (width, height), fps, max_frames)
    except av.FFmpegError as error:
        raise DecodeError(
            f"cannot decode {name} ({error}): it is not a video, or is truncated or corrupt; {REENCODE_HINT}"
        ) from error


def _decode(
    container: InputContainer, name: str, size: tuple[int | None, int | None], fps: float | None, max_frames: int | None
) -> Clip:
    if not container.streams.video:
        raise DecodeError(f"{name} has no video stream; give a video file")
    stream = container.streams.video[0]
    stream.codec_context.thread_type = "AUTO"  # frame and slice threads: faster on whole files
    reading = _Reading(name, container, stream, fps)
    pictures: list[NDArray[np.uint8]] = []
    times: list[float] = []
    converted: tuple[VideoFrame | None, Any] = (None, None)
    scaler = VideoReformatter()  # reused: a new one per frame rebuilds its swscale context each time
    for pts, frame in reading.frames(container):
        if not reading.keep(pts):
            continue
        if converted[0] is not frame:  # a null frame repeats the picture before it
            converted = (frame, _picture(frame, scaler, *size))
        pictures.append(converted[1])
        times.append(reading.seconds(pts))
        if max_frames is not None and len(pictures) >= max_frames:
            return _clip(name, pictures, times, reading.rate(fps), reading.dropped)
    reading.check_complete()
    return _clip(name, pictures, times, reading.rate(fps), reading.dropped)


class _Reading:
    """The state of decoding one stream: packets seen, damaged packets, the fps selection."""

    def __init__(self, name: str, container: InputContainer, stream: VideoStream, fps: float | None) -> None:
        self.name = name
        self.stream = stream
        self.time_base = stream.time_base
        self.slot = None if fps is None or stream.time_base is None else _slotter(fps, stream.time_base)
        self.origin: int | None = None
        self.last_ticks: int | None = None
        self.count = FrameCount(name, container, stream)
        self.packets: set[int] = set()  # timestamps with data: the gaps between them are null frames
        self.dropped = 0

    def frames(self, container: InputContainer) -> Iterator[tuple[int, VideoFrame]]:
        """``(pts, frame)`` of every frame, null frames as the frame they repeat, in order."""
        previous: tuple[int, VideoFrame] | None = None
        for frame in self._decoded(container):
            assert frame.pts is not None
            if previous is not None:
                yield from self._repeats(previous, frame.pts)
            previous = (frame.pts, frame)
            yield previous
        last = self.count.last_tick()
        if previous is not None and last is not None:
            yield from self._repeats(previous, last + 1)

    def _decoded(self, container: InputContainer) -> Iterator[VideoFrame]:
        """Decoded frames with a timestamp; a damaged packet is counted and skipped."""
        try:
            for packet in container.demux(self.stream):
                if packet.pts is not None:
                    self.count.add(packet.pts)
                    self.packets.add(packet.pts)
                try:
                    decoded = packet.decode()
                except av.error.InvalidDataError:
                    self.dropped += 1
                    continue
                yield from (frame for frame in decoded if frame.pts is not None)
        except av.FFmpegError as error:  # demuxing itself failed: the file stops here
            self.count.failure = f"demuxing failed ({error})"

    def _repeats(self, previous: tuple[int, VideoFrame], stop: int) -> Iterator[tuple[int, VideoFrame]]:
        """The null frames after ``previous`` and before ``stop``: ticks no packet carried."""
        if not self.count.counts_ticks:
            return
        pts, frame = previous
        yield from ((tick, frame) for tick in range(pts + 1, stop) if tick not in self.packets)

    def keep(self, pts: int) -> bool:
        """Whether the fps selection keeps this frame: the first of each ``1/fps`` slot."""
        if self.origin is None:
            self.origin = pts
        ticks, previous = pts - self.origin, self.last_ticks
        self.last_ticks = ticks
        return self.slot is None or previous is None or self.slot(ticks) > self.slot(previous)

    def seconds(self, pts: int) -> float:
        assert self.origin is not None and self.time_base is not None
        return float((pts - self.origin) * self.time_base)

    def rate(self, fps: float | None) -> float:
        """The stream's frame rate, or ``fps`` when the selection dropped frames to reach it."""
        native = float(self.stream.average_rate or self.stream.guessed_rate or 0) or None
        if fps is None:
            return native or 0.0
        return float(min(fps, native) if native else fps)

    def check_complete(self) -> None:
        """Raise DecodeError when the file stops before the frames its header announces."""
        reason = self.count.truncation()
        if reason is not None:
            raise DecodeError(f"{reason}; {REENCODE_HINT}")


def _picture(frame: VideoFrame, scaler: VideoReformatter, width: int | None, height: int | None
             ) -> NDArray[np.uint8]:
    size = scaled_size(frame.width, frame.height, width, height, even=True)
    picture = scaler.reformat(frame, width=size[0], height=size[1], format="rgb24").to_ndarray()
    return np.ascontiguousarray(picture, dtype=np.uint8)  # decoders pad rows; consumers want them packed


def _clip(name: str, pictures: list[NDArray[np.uint8]], times: list[float], fps: float, dropped: int) -> Clip:
    if not pictures:
        raise DecodeError(f"{name} holds no decodable frame; {REENCODE_HINT}")
    if fps <= 0:  # no rate in the header: the median spacing of the timestamps
        spacing = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
        fps = 1.0 / spacing if spacing > 0 else 1.0
    return Clip(np.stack(pictures), np.asarray(times, dtype=np.float64), fps, dropped)


def _name(video: Any) -> str:
    """How error messages name the video: its path, or what kind of upload it was."""
    if isinstance(video, bytes):
        return f"the uploaded video ({len(video)} bytes)"
    if isinstance(video, (str, os.PathLike)):
        return str(Path(video))
    return str(getattr(video, "name", None) or "the uploaded video (a file object)")


def _check_arguments(width: int | None, height: int | None, fps: float | None, max_frames: int | None) -> None:
    check_geometry(width, height, 0)
    if fps is not None and not fps > 0:
        raise ConfigError(f"fps must be above 0, not {fps}; leave it out to keep every frame")
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"max_frames must be at least 1, not {max_frames}; leave it out to keep every frame")
