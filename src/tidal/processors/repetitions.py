"""Repetition counting over a whole video, in the spirit of RepNet, that counts people, not pixels.

Whatever repeats (press-ups, a swing, a machine), one repetition brings the video back to
where it was. The counter finds, for every frame, the frame one repetition later, and counts
the hops from match to match:

0. **Where to look** (``region="auto"``, the default): when the frame as a whole does not
   come back (a street goes by behind the person, someone walks past), the window of the
   frame that repeats most clearly is used instead (:mod:`tidal.processors.region`); with
   ``features="pose"`` the body is looked for in a frame-high window around it, so a person
   elsewhere in the frame is not tracked instead.
1. **Features per frame**: by default the frame in grey, shrunk to about 32 px wide, with its
   mean removed and its norm set to 1 (so a change of light is not motion); with
   ``features="pose"``, MediaPipe's body landmarks (``tidal[pose]``) centred on the hips and
   measured in torso lengths, so that only the body's motion counts. A body less than half
   as tall as the view is looked at again, closer: a box around where it stood in a few
   frames looked at one by one (the person who stays, not one walking through; see
   :mod:`tidal.processors.person`) is tracked over the clip, when the body is found there in
   at least half of the frames. Frames where no trunk (shoulders and hips) is seen for more
   than a quarter of a second match nothing, and a video where a trunk is seen in less than
   half the frames (counted before any gap is filled) counts 0: motion without a body (a
   hand, a pendulum) and a likeness found now and then (a fence, a passer-by glimpsed) are
   not a person's repetition.
2. **Temporal self-similarity**, in the band that matters: the distance from each frame to
   the frames up to ``max_period`` later, averaged over a few frames along the diagonal so
   that a motion and its reverse (the way down and the way back up) do not match.
3. **The local period**: the same distances averaged over one lag's worth of frames around
   each frame, then the first valley over lags that is about as deep as the deepest (valleys
   at 2 or 3 periods are the same match again), or a shorter clear valley when it is a
   consistent step of it (two short hops land where the long one does): a video looping
   after two repetitions counts two per loop, and paces alternating by up to ~1.3x are
   counted one by one. Averaging over a stretch is what makes it robust: at the true period
   every frame of the stretch matches at once, while chance likenesses come at lags that
   change from frame to frame and do not add up.
4. **Each frame's match**: the valley of its own distances nearest to the local period.
5. **Counting by hops**: from the first periodic frame hop to its match, start again from
   the best-matched frame near the landing, and so on; each hop is one repetition. A hop
   lands on the same phase one repetition later whatever the pace, so when repetitions slow
   down or speed up (up to 1.8x from one to the next) the count does not drift, as one from
   an average period would. Frames between hops get fractional counts, the unfinished last
   repetition counts by the share of a period that still matched, and the total is rounded.
6. **A calibrated confidence**: how likely the count is exact (see :func:`confidence`); a 0
   is sure when nothing in the video matched, and a count is sure when its hops matched
   deeply, covered the video, kept their length and ended near a whole number.

Measured on 43 videos made of real footage and 7 held out from another camera and other
people (``bench/repetitions.py``; their making and labels: ``bench/repetition_set.py``).
Limits: a person under about 90 px tall in a blurred, compressed video is missed by pose
estimation, even looked at closer, and often by pixels at 112 px; a humanoid cartoon is taken
for a body; repetitions that alternate between very different paces (2.5x) are counted in
pairs; loops of three or more repetitions count the loop; a motion whose two halves look
alike may be counted twice per repetition; a motion that never returns to the same look (a
pan, a walk) counts 0, and so does a single repetition. The period must be within
``min_period`` to ``max_period``.

Example::

    clip = decode_clip("pressups.mp4")
    result = RepetitionCounter().process([Item("pressups", clip)])[0]
    result["count"], result["confidence"]    # 12, 0.93
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
from numpy.typing import NDArray

from tidal.errors import ConfigError
from tidal.processors.base import Processor
from tidal.processors.person import person_box, trunk_seen
from tidal.processors.pose import KEY_LANDMARKS, LANDMARK_COUNT, estimate_landmarks, load_pose_model
from tidal.processors.region import Region, repeating_region
from tidal.sources.base import Item
from tidal.sources.clips import Clip

Features = Literal["pixels", "pose"]
FEATURES: tuple[str, ...] = get_args(Features)
Where = Literal["auto", "frame"]
WHERE: tuple[str, ...] = get_args(Where)
MIN_POSE_SIDE = 256  # pose estimation on smaller frames is too noisy to count with

FloatArray = NDArray[np.float32]

# Tuned on ping-pong videos of real footage (see the tests and the module docstring).
_PIXEL_WIDTH = 32  # frames are shrunk to about this many pixels wide before comparing
_SMOOTHING_SECONDS = 0.08  # half length of the diagonal averaging (at least one frame)
_MIN_DEPTH = 0.5  # a valley must fall below half of the highest distance before it
_DEPTH_SLACK = 0.05  # the first valley this close to the deepest one is the period
_SHORTER_SHARE = 0.6  # a shorter period is preferred when its valley is this share of the deepest's depth
_MAX_SHORT_SHARE = 0.75  # ... when at most this share of the long period
_LANDING_SLACK = 0.1  # ... and the frame it lands on matches where the long period lands, give or take this share
_FINE_SPREAD = 0.25  # a frame's own match is looked for this share of a period around it
_NEIGHBOURHOOD = 0.1  # a hop starts from the best frame within this share of a period
_MAX_SPEED_CHANGE = 1.8  # one repetition at most this many times faster or slower than the last
_MIN_CHAIN = 1.5  # repetitions a chain of hops must reach to count (one alone is chance)
_NOISE_FLOOR = {"pixels": 0.02, "pose": 0.01}  # distances below this are not motion
_MAX_POSE_GAP = 0.25  # seconds without a body that are a missed detection, not an absence
_MIN_BODY_SHARE = 0.5  # pose features: a body seen in less than this share of the frames is not counted
_BODY_ASPECT = 0.75  # width / height of the window a body is looked for in, around what repeats
_PROBES = 16  # frames looked at one by one to place the box where the body is, before tracking it
_POSE_SHOULDERS = (KEY_LANDMARKS["left_shoulder"], KEY_LANDMARKS["right_shoulder"])
_POSE_HIPS = (KEY_LANDMARKS["left_hip"], KEY_LANDMARKS["right_hip"])


@dataclass(frozen=True, slots=True)
class Weights:
    """The confidence's weights (see :func:`confidence`). ``bench/repetitions.py`` refits them
    leaving out one source footage at a time and reports the calibration on the footage left out."""

    stray: float = 3.0  # a count of 0 loses this much per unit of mean match depth left unchained
    free_irregularity: float = 0.3  # hop lengths may vary this much (std / mean) at no cost
    rounding: float = 1.0  # a count that ended half-way between two numbers loses this share
    broken_chain: float = 0.7  # the factor of repetitions found in several runs, not one


WEIGHTS = Weights()


@dataclass(frozen=True, slots=True)
class Sighting:
    """What the counter looked at: ``where`` (``"frame"``, ``"window"`` where something repeats,
    ``"person"``: a box around the body, looked at again closer), that view's ``width`` and
    ``height`` in pixels, and with poses the share of frames where a body's trunk was seen."""

    where: str
    width: int
    height: int
    body_share: float | None = None


@dataclass(frozen=True, slots=True)
class Matches:
    """Per frame: the lag in frames to its match one repetition later (0: none) and the
    depth of the local period's valley (0-1, how clearly the video repeats there)."""

    lags: NDArray[np.intp]
    depths: FloatArray


class RepetitionCounter(Processor):
    """How many times the content of each video repeats, and when.

    Items are whole videos (:class:`~tidal.sources.clips.Clip`, from
    :class:`~tidal.sources.clips.VideoClips` or :func:`~tidal.sources.clips.decode_clip`).
    Each result is ``{"count": int, "counts": [cumulative count per frame], "period":
    [seconds per frame, None where nothing repeats], "confidence": 0-1, "fps": float}``.
    ``features="pose"`` counts people only: it needs ``tidal[pose]`` and frames at least 256
    px on their longer side (360 or more recommended; a person should be at least ~100 px
    tall: a smaller one is looked at closer, but a blurred one under ~90 px is often missed).
    ``region="auto"`` looks where something repeats when the whole frame does not;
    ``"frame"`` always compares whole frames (the counter before the search, and faster).
    The confidence is the likelihood that ``count`` is exact; ``bench/repetitions.py`` reports
    how often a count at 0.8 or more is wrong with weights fitted without the video's footage;
    with ``region="frame"`` a 0 cannot see a small repeating part and is overconfident.

    Example, in a job config::

        source: {"tidal.sources.VideoClips": {paths: "videos/*.mp4", width: 112}}
        processor: {"tidal.processors.RepetitionCounter": {max_period: 4}}
    """

    batch_size = 1
    results_version = 2  # 2: poses looked at closer around a small body, a body seen in half the frames
    video_input = "clip"  # tidal serve: an uploaded video is one item, a whole Clip

    def __init__(
        self,
        features: Features = "pixels",
        min_period: float = 0.25,
        max_period: float = 5.0,
        min_visibility: float = 0.5,
        region: Where = "auto",
    ) -> None:
        _check_arguments(features, min_period, max_period, min_visibility, region)
        self.features = features
        self.region = region
        self.min_period = min_period
        self.max_period = max_period
        self.min_visibility = min_visibility
        self._pose_model: Any = None
        self._probe_model: Any = None

    def setup(self) -> None:
        """Load the pose model when counting on poses (tracking mode: a clip's frames are in order)."""
        if self.features == "pose":
            self._pose_model = load_pose_model(static_image_mode=False)
            self._probe_model = load_pose_model(static_image_mode=True)

    def process(self, batch: list[Item]) -> list[dict[str, Any]]:
        """One result per video."""
        return [self.count(_as_clip(item), item.key) for item in batch]

    def teardown(self) -> None:
        for model in (self._pose_model, self._probe_model):
            if model is not None:
                model.close()
        self._pose_model = self._probe_model = None

    def count(self, clip: Clip, name: str = "video") -> dict[str, Any]:
        """Count the repetitions of one decoded video (``name`` is used in errors)."""
        return self.measure(clip, name)[0]

    def measure(self, clip: Clip, name: str = "video") -> tuple[dict[str, Any], dict[str, float], Sighting]:
        """The result, the measures its confidence was made of (:func:`evidence`, and how clearly
        the pixels repeat), and what was looked at: to calibrate and explain counts on labelled
        videos (``bench/repetitions.py``)."""
        features, pixel_repetition, sighting = self._features(clip, name)
        matches = match_frames(features, clip.fps, self.min_period, self.max_period, self.features)
        counting = hop_counts(matches)
        measures = {**evidence(counting, matches), "pixel_repetition": pixel_repetition}
        return _result(counting.counts, counting.periods, confidence(measures), clip.fps), measures, sighting

    def frame_features(self, clip: Clip, name: str = "video") -> FloatArray:
        """``(T, D)`` features of the clip's frames, as configured (NaN rows: no body seen)."""
        return self._features(clip, name)[0]

    def _features(self, clip: Clip, name: str) -> tuple[FloatArray, float, Sighting]:
        """The features, how clearly the pixels repeat where they were taken (0-1), and where that was."""
        if self.features == "pose":
            _check_pose_size(clip, name)
        frames, pixel_repetition, where = self.looked_at(clip)
        if self.features == "pixels":
            return pixel_features(frames), pixel_repetition, Sighting(where, frames.shape[2], frames.shape[1])
        landmarks, frames, where = self._find_body(frames, name, where)
        height, width = frames.shape[1:3]
        features = pose_features(landmarks, self.min_visibility, max(1, round(_MAX_POSE_GAP * clip.fps)))
        share = _seen(landmarks, self.min_visibility) / max(1, len(landmarks))
        if share < _MIN_BODY_SHARE:  # glimpses of a body (or of a likeness) are not someone
            features[:] = np.nan
        return features, pixel_repetition, Sighting(where, width, height, round(share, 4))

    def _find_body(
        self, frames: NDArray[np.uint8], name: str, where: str
    ) -> tuple[list[FloatArray | None], NDArray[np.uint8], str]:
        """Every frame's landmarks and the frames they were found in: a box around the body
        when it is small in the view (:func:`~tidal.processors.person.person_box`, placed from a
        few frames looked at one by one) and is tracked there in at least half of the frames;
        else the view."""
        if self._pose_model is None:
            self.setup()
        probes = np.linspace(0, len(frames) - 1, min(_PROBES, len(frames))).round().astype(int)
        found = [estimate_landmarks(self._probe_model, frames[index], name) for index in probes]
        box = person_box(found, frames.shape[1], frames.shape[2], self.min_visibility)
        if box is not None:
            closer = box.crop(frames)
            landmarks = self._landmarks(closer, name)
            if _seen(landmarks, self.min_visibility) >= _MIN_BODY_SHARE * len(frames):
                return landmarks, closer, "person"
        return self._landmarks(frames, name), frames, where

    def _landmarks(self, frames: NDArray[np.uint8], name: str) -> list[FloatArray | None]:
        """Every frame's landmarks, the body tracked from frame to frame."""
        self._pose_model.reset()  # tracking must not carry over from the previous video
        return [estimate_landmarks(self._pose_model, frame, name) for frame in frames]

    def looked_at(self, clip: Clip) -> tuple[NDArray[np.uint8], float, str]:
        """The frames cut to the window where something repeats (``region="auto"``), else
        whole; how clearly the pixels repeat at best (the mean depth of each frame's match, in
        the whole frame or in the window that repeats most clearly); ``"window"`` or ``"frame"``.

        Poses are found in a window as tall as the frame around it (``_BODY_ASPECT`` times as
        wide): the moving part may be a limb, and the body it belongs to must be seen whole,
        while a person elsewhere in the frame is not seen at all.
        """
        def depths_of(features: FloatArray) -> FloatArray:
            return match_frames(features, clip.fps, self.min_period, self.max_period).depths

        whole = float(depths_of(pixel_features(clip.frames)).mean())
        found: Region | None
        found, best = repeating_region(clip.frames, whole, depths_of) if self.region == "auto" else (None, whole)
        if found is None:
            return clip.frames, best, "frame"
        if self.features == "pose":
            height, width = clip.frames.shape[1:3]
            found = found.standing_box(height, width, _BODY_ASPECT)
        return found.crop(clip.frames), found.score, "window"

    def __getstate__(self) -> dict[str, Any]:
        """Pickled to workers without a loaded model: each worker loads its own in setup()."""
        return {**self.__dict__, "_pose_model": None, "_probe_model": None}


def count_repetitions(
    features: FloatArray, fps: float, min_period: float = 0.25, max_period: float = 5.0, kind: str = "pixels"
) -> dict[str, Any]:
    """The counter's result for ``(T, D)`` per-frame features sampled at ``fps``."""
    matches = match_frames(features, fps, min_period, max_period, kind)
    counting = hop_counts(matches)
    return _result(counting.counts, counting.periods, confidence(evidence(counting, matches)), fps)


def match_frames(
    features: FloatArray, fps: float, min_period: float = 0.25, max_period: float = 5.0, kind: str = "pixels"
) -> Matches:
    """Each frame's match one repetition later (steps 2 to 4 of the module docstring).

    Frames are compared with frames up to ``max_period`` later only: the rest of the
    self-similarity matrix is never computed, so a long video costs time in proportion.
    """
    total = len(features)
    min_lag = max(2, math.ceil(min_period * fps))
    max_lag = min(math.floor(max_period * fps), total - 1)
    if total < 2 * min_lag + 1 or max_lag < min_lag:
        return Matches(np.zeros(total, dtype=np.intp), np.zeros(total, dtype=np.float32))
    half = max(1, round(_SMOOTHING_SECONDS * fps))
    fine = smooth_diagonals(lag_distances(features, max_lag + 1), half)
    return find_matches(fine, window_means(fine), min_lag, _NOISE_FLOOR.get(kind, 0.02))


def pixel_features(frames: NDArray[np.uint8]) -> FloatArray:
    """``(T, D)`` grey frames shrunk to ~32 px wide, each with zero mean and unit norm."""
    grey = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    factor = max(1, grey.shape[2] // _PIXEL_WIDTH)
    total, height, width = grey.shape
    rows, columns = height // factor, width // factor
    cropped = grey[:, : rows * factor, : columns * factor]
    small = cropped.reshape(total, rows, factor, columns, factor).mean(axis=(2, 4))
    flat = small.reshape(total, -1)
    flat -= flat.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    return (flat / np.maximum(norms, 1e-6)).astype(np.float32)


def pose_features(
    landmarks: list[FloatArray | None], min_visibility: float = 0.5, max_gap: int = 8
) -> FloatArray:
    """``(T, 66)`` landmark positions centred on the hips, in torso lengths; NaN rows where
    no body is seen.

    Joints seen below ``min_visibility`` take the values of the nearest frames where they were
    seen, so a missed joint is not a sudden motion. A frame counts as showing a body when its
    shoulders and hips are seen; runs of up to ``max_gap`` frames without one are filled the
    same way (a missed detection), longer ones stay NaN: there is no body there, and whatever
    moves there is not counted.
    """
    total = len(landmarks)
    points = np.full((total, LANDMARK_COUNT, 2), np.nan, dtype=np.float32)
    for index, found in enumerate(landmarks):
        if found is not None and trunk_seen(found, min_visibility):
            seen = found[:, 3] >= min_visibility
            points[index, seen] = found[seen, :2]
    absent = _long_gaps(np.asarray(np.isnan(points).all(axis=(1, 2))), max_gap)
    if absent.all():
        return np.full((total, 2 * LANDMARK_COUNT), np.nan, dtype=np.float32)
    points = _fill_gaps(points.reshape(total, -1))
    shaped = np.nan_to_num(points).reshape(total, LANDMARK_COUNT, 2)
    hips = shaped[:, list(_POSE_HIPS)].mean(axis=1, keepdims=True)
    shoulders = shaped[:, list(_POSE_SHOULDERS)].mean(axis=1, keepdims=True)
    torso = float(np.median(np.linalg.norm((shoulders - hips)[:, 0], axis=1)))
    centred = (shaped - hips) / max(torso, 1e-3)
    features = centred.reshape(total, -1).astype(np.float32) / math.sqrt(LANDMARK_COUNT)  # mean per joint
    features[absent] = np.nan
    return features


def _seen(landmarks: list[FloatArray | None], min_visibility: float) -> int:
    """How many frames show a body's trunk: found by pose estimation, not filled in across a gap."""
    return sum(trunk_seen(found, min_visibility) for found in landmarks)


def _long_gaps(missing: NDArray[np.bool_], max_gap: int) -> NDArray[np.bool_]:
    """The frames of ``missing`` that belong to runs longer than ``max_gap`` frames."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], missing.astype(np.int8), [0]])))
    long = np.zeros_like(missing)
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        long[start:stop] = stop - start > max_gap
    return long


def _fill_gaps(values: FloatArray) -> FloatArray:
    """Each column's NaNs replaced by linear interpolation (ends: the nearest value)."""
    frames = np.arange(len(values))
    for column in range(values.shape[1]):
        known = ~np.isnan(values[:, column])
        if known.any() and not known.all():
            values[:, column] = np.interp(frames, frames[known], values[known, column])
    return values


def lag_distances(features: FloatArray, lags: int) -> FloatArray:
    """``(T, lags + 1)``: squared distance from frame ``t`` to frame ``t + lag``; inf past the end.

    Only the band of the self-similarity matrix within ``lags`` of its diagonal: the rest
    (periods longer than ``max_period``) is never looked at, so long videos stay cheap.
    """
    total = len(features)
    squares = np.einsum("ij,ij->i", features, features)
    distances = np.full((total, lags + 1), np.inf, dtype=np.float32)
    for lag in range(min(lags, total - 1) + 1):
        products = np.einsum("ij,ij->i", features[: total - lag], features[lag:])
        distances[: total - lag, lag] = squares[: total - lag] + squares[lag:] - 2 * products
    return np.where(np.isnan(distances), np.inf, np.maximum(distances, 0.0)).astype(np.float32)


def smooth_diagonals(distances: FloatArray, half: int) -> FloatArray:
    """Each entry averaged with the ``half`` entries before and after it along its diagonal.

    In lag coordinates a diagonal of the self-similarity matrix is a column. Matching a few
    frames around both frames, not one frame alone, keeps a frame on the way down from
    matching the same frame on the way back up.
    """
    return _column_means(distances, np.full(distances.shape[1], half))


def window_means(distances: FloatArray) -> FloatArray:
    """Each entry ``(t, lag)`` averaged over the frames within ``lag / 2`` of ``t``.

    The distance between the stretch of one period around ``t`` and the stretch one lag
    later: at the true period every frame of the stretch matches, while the matches of a
    frame with its mirror image (at a lag that changes from frame to frame) do not add up.
    """
    return _column_means(distances, np.arange(distances.shape[1]) // 2)


def _column_means(distances: FloatArray, halves: NDArray[np.integer[Any]]) -> FloatArray:
    """Each entry averaged with the ``halves[column]`` entries above and below it.

    Entries past the end of the video (inf) are left out of the means; an entry itself past
    the end stays inf.
    """
    total, width = distances.shape
    finite = np.isfinite(distances)
    sums = np.pad(np.cumsum(np.where(finite, distances, 0.0), axis=0), ((1, 0), (0, 0)))
    counts = np.pad(np.cumsum(finite, axis=0), ((1, 0), (0, 0)))
    frames = np.arange(total)[:, None]
    starts = np.clip(frames - halves[None, :], 0, total)
    stops = np.clip(frames + halves[None, :] + 1, 0, total)
    columns = np.broadcast_to(np.arange(width), (total, width))
    totals = sums[stops, columns] - sums[starts, columns]
    numbers = counts[stops, columns] - counts[starts, columns]
    return np.where(finite, totals / np.maximum(numbers, 1), np.inf).astype(np.float32)


def valleys(distances: FloatArray, min_lag: int, noise_floor: float) -> tuple[NDArray[np.bool_], FloatArray]:
    """Where each row has a valley deep enough to be a match, and every entry's depth.

    A valley's depth is ``1 - distance / highest distance at a shorter lag``: a match only
    counts after the video has moved away from the frame (above ``noise_floor``) and come back.
    """
    highest = np.maximum.accumulate(np.where(np.isfinite(distances), distances, 0.0), axis=1)
    depth = (1.0 - distances / np.maximum(highest, 1e-12)).astype(np.float32)
    middle = distances[:, 1:-1]
    found = np.zeros_like(distances, dtype=bool)
    found[:, 1:-1] = (middle <= distances[:, :-2]) & (middle < distances[:, 2:]) & np.isfinite(distances[:, 2:])
    found[:, :min_lag] = False
    found &= (depth >= _MIN_DEPTH) & (highest >= noise_floor)
    return found, depth


def find_matches(fine: FloatArray, coarse: FloatArray, min_lag: int, noise_floor: float) -> Matches:
    """Each frame's period, from the window averages; its exact match, from its own row.

    The period is the first valley of the frame's ``coarse`` row nearly as deep as its
    deepest (deeper valleys at 2 or 3 periods are the same match again). The match is the
    valley of its ``fine`` row nearest to that period, within a quarter of it; the period
    itself where the frame's own row has none there.
    """
    found, depth = valleys(coarse, min_lag, noise_floor)
    periods = shortest_periods(found, depth)
    fine_found, _ = valleys(fine, min_lag, 0.0)
    lags = np.array([_nearest_valley(fine_found[frame], int(period)) for frame, period in enumerate(periods)])
    lags = np.where(np.isfinite(fine[np.arange(len(lags)), lags]), lags, 0)
    depths = np.where(lags > 0, depth[np.arange(len(lags)), periods], 0.0).astype(np.float32)
    return Matches(lags.astype(np.intp), depths)


def shortest_periods(found: NDArray[np.bool_], depth: FloatArray) -> NDArray[np.intp]:
    """Per row, the shortest lag that is a clear valley and one step of a consistent period
    (0 where the row has no valley).

    The long period of a row is its first valley nearly as deep as its deepest. It may be two
    repetitions long: a video that loops exactly after two repetitions matches itself best at
    the loop, and repetitions alternating in pace match best in pairs. A shorter clear valley
    ``lag`` is one repetition when it is consistent: the frame ``lag`` later has a valley
    where the long period lands (two short hops make the long one). That is what "prefer the
    shortest consistent period" means; a chance likeness at a shorter lag rarely passes it.
    """
    total, width = found.shape
    scored = np.where(found, depth, -np.inf)
    best = scored.max(axis=1, keepdims=True)
    long = np.argmax(found & (scored >= best - _DEPTH_SLACK), axis=1)
    rows, lags = np.arange(total)[:, None], np.arange(width)[None, :]
    landing, rest = rows + lags, long[:, None] - lags
    reach = np.maximum(1, np.round(_LANDING_SLACK * long)).astype(np.intp)[:, None]
    valid = (landing < total) & (rest >= 1)
    before = np.pad(np.cumsum(found, axis=1), ((0, 0), (1, 0)))  # before[r, c]: valleys of row r left of c
    landing, rest = np.where(valid, landing, 0), np.where(valid, rest, 0)
    near = before[landing, np.minimum(width, rest + reach + 1)] - before[landing, np.clip(rest - reach, 0, width)]
    clear = found & valid & (near > 0) & (scored >= np.maximum(_MIN_DEPTH, best * _SHORTER_SHARE))
    clear &= lags <= _MAX_SHORT_SHARE * long[:, None]
    clear[np.arange(total), long] = True
    return np.where(np.isfinite(best[:, 0]), np.argmax(clear, axis=1), 0)


def _nearest_valley(row: NDArray[np.bool_], period: int) -> int:
    """The valley of ``row`` nearest to ``period`` within a quarter of it, else ``period``."""
    if period == 0:
        return 0
    spread = max(1, round(_FINE_SPREAD * period))
    near = np.flatnonzero(row[max(0, period - spread) : period + spread + 1]) + max(0, period - spread)
    return period if len(near) == 0 else int(near[np.argmin(np.abs(near - period))])


@dataclass(slots=True)
class _Chain:
    """Hops through the video: each start frame, its phase (repetitions so far) and its lag."""

    starts: list[int]
    phases: list[float]
    lags: list[int]
    depths: list[float]


@dataclass(frozen=True, slots=True)
class Counting:
    """What the hops found: per-frame cumulative ``counts`` and ``periods`` (frames, 0 where
    none), and per hop kept its match's depth and its lag; ``chains`` how many runs of hops."""

    counts: NDArray[np.float64]
    periods: NDArray[np.float64]
    depths: list[float]
    lags: list[int]
    chains: int


def hop_counts(matches: Matches) -> Counting:
    """Per-frame cumulative counts and periods, from chains of hops.

    A chain of hops starts at the first frame with a match and ends where no frame near its
    last landing has one; the next chain starts at the next frame with a match, from the
    count the last one reached. A chain of less than ``_MIN_CHAIN`` repetitions is taken for
    chance likeness, not repetition, and left out.
    """
    total = len(matches.lags)
    counts, periods = np.zeros(total), np.zeros(total)
    depths: list[float] = []
    lags: list[int] = []
    chains = 0
    first = _next_periodic(matches.lags, 0)
    while first is not None:
        chain = _chain(matches, first, float(counts[first]))
        chain_counts, chain_periods = _chain_values(chain, matches.lags, total)
        if chain_counts[-1] - chain_counts[0] < _MIN_CHAIN:
            first = _next_periodic(matches.lags, first + max(1, round(_NEIGHBOURHOOD * chain.lags[0])))
            continue
        end = first + len(chain_counts) - 1
        counts[first : end + 1], periods[first : end + 1] = chain_counts, chain_periods
        counts[end:] = chain_counts[-1]
        depths.extend(chain.depths)
        lags.extend(chain.lags)
        chains += 1
        first = _next_periodic(matches.lags, end + 1)
    return Counting(counts, periods, depths, lags, chains)


def evidence(counting: Counting, matches: Matches) -> dict[str, float]:
    """The measures the confidence is made of (see :func:`confidence`)."""
    total = max(1, len(counting.counts))
    final = float(counting.counts[-1]) if len(counting.counts) else 0.0
    lags = np.asarray(counting.lags, dtype=np.float64)
    return {
        "count": float(math.floor(final + 0.5)),
        "depth": float(np.mean(counting.depths)) if counting.depths else 0.0,
        "coverage": float(np.count_nonzero(counting.periods)) / total,
        "irregularity": float(lags.std() / lags.mean()) if len(lags) else 0.0,
        "rounding": abs(final - math.floor(final + 0.5)),
        "chains": float(counting.chains),
        "stray": float(matches.depths.mean()),
    }


def confidence(measures: dict[str, float], weights: Weights = WEIGHTS) -> float:
    """How likely the count is exact, 0-1, from :func:`evidence`'s ``measures``: high means the
    count is usually exact.

    A count of 0 is as sure as the video is free of matches: every frame matching nothing
    gives 1; frames with deep matches that never chained into repetitions (a stray likeness,
    or repetitions too faint to follow), or pixels that repeat where nothing was counted
    (``pixel_repetition``: a person too small to be seen, a pendulum where poses are counted),
    lower it. A count above 0 is as sure as its hops matched deeply, covered the video, kept a
    steady length, ran as one chain, and ended near a whole number (4.5 could be 4 or 5). The
    ``weights`` set how much each shortfall costs; ``bench/repetitions.py`` reports how well the
    defaults hold on footage their fit did not see.
    """
    if measures["count"] == 0:
        unchained = max(measures["stray"], measures.get("pixel_repetition", 0.0))
        return max(0.0, 1.0 - weights.stray * unchained)
    steady = max(0.0, 1.0 - max(0.0, measures["irregularity"] - weights.free_irregularity))
    whole = max(0.0, 1.0 - weights.rounding * measures["rounding"])
    one_chain = 1.0 if measures["chains"] == 1 else weights.broken_chain
    return measures["depth"] * measures["coverage"] * steady * whole * one_chain


def _next_periodic(lags: NDArray[np.intp], start: int) -> int | None:
    found = np.flatnonzero(lags[start:])
    return None if len(found) == 0 else start + int(found[0])


def _chain(matches: Matches, first: int, base: float) -> _Chain:
    """Hop from ``first`` to its match, from near there to the next match, and so on.

    Each hop starts from the frame with the deepest match within a tenth of a period of where
    the last one landed: one badly matched frame does not end the count. The phase of that
    frame is carried over from the landing, so choosing it shifts no count.
    """
    chain = _Chain([first], [base], [], [])
    start, phase = first, base
    while True:
        lag = int(matches.lags[start])
        chain.lags.append(lag)
        chain.depths.append(float(matches.depths[start]))
        landing, phase = start + lag, phase + 1.0
        following = _best_near(matches, landing, lag)
        if following is None:
            chain.starts.append(landing)
            chain.phases.append(phase)
            return chain
        start, phase = following, phase + (following - landing) / lag
        chain.starts.append(start)
        chain.phases.append(phase)


def _best_near(matches: Matches, frame: int, lag: int) -> int | None:
    """The frame with the deepest match near ``frame`` whose lag is within the speed change
    allowed from ``lag``, or None.

    A lag much shorter or longer than the last one is taken for a false match (typically a
    frame whose true match lies past the end of the video), not for a change of pace.
    """
    reach = max(1, round(_NEIGHBOURHOOD * lag))
    begin, end = max(0, frame - reach), min(len(matches.lags), frame + reach + 1)
    lags = matches.lags[begin:end]
    steady = (lags * _MAX_SPEED_CHANGE >= lag) & (lags <= lag * _MAX_SPEED_CHANGE)
    depths = np.where(steady, matches.depths[begin:end], -1.0)
    if len(depths) == 0 or depths.max() < 0:
        return None
    return begin + int(np.argmax(depths))


def _chain_values(
    chain: _Chain, lags: NDArray[np.intp], total: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The counts and periods of the frames a chain covers, from its first frame on.

    Between hop starts the count rises linearly. After the last landing the unfinished
    repetition counts as far as the frames of the last hop have matches: the share of the
    period that the motion went on repeating, whether the video ends there or the motion stops.
    """
    starts, last_lag, landing = chain.starts, chain.lags[-1], chain.starts[-1]
    before = np.arange(starts[-2], landing)
    reach = int((before + lags[before])[lags[before] > 0].max(initial=landing)) - landing
    reach = min(reach, last_lag - 1, total - 1 - landing)
    frames = np.arange(starts[0], landing + reach + 1)
    counts = np.interp(frames, starts, chain.phases)
    tail = frames >= landing
    counts[tail] = chain.phases[-1] + (frames[tail] - landing) / last_lag
    hop_of_frame = np.minimum(np.searchsorted(starts, frames, side="right") - 1, len(chain.lags) - 1)
    return counts, np.asarray(chain.lags, dtype=np.float64)[hop_of_frame]


def _result(
    counts: NDArray[np.float64], periods: NDArray[np.float64], confidence: float, fps: float
) -> dict[str, Any]:
    final = float(counts[-1]) if len(counts) else 0.0
    return {
        "count": math.floor(final + 0.5),  # half a repetition or more counts as one
        "counts": [round(float(value), 4) for value in counts],
        "period": [round(float(value) / fps, 4) if value > 0 else None for value in periods],
        "confidence": round(min(1.0, max(0.0, confidence)), 4),
        "fps": float(fps),
    }


def ping_pong_indexes(clip_length: int, paces: Sequence[float]) -> list[int]:
    """Frame indexes that play a clip forward then back once per pace, and end on frame 0.

    Made of real footage, such a video has a known number of repetitions (``len(paces)``) at
    known speeds: each cycle lasts ``pace`` times the ``2 * (clip_length - 1)`` frames of a
    plain forward-and-back, its frames picked at the nearest position. The tests and the
    bench count on it; use it to try the counter on your own footage.

    Example::

        frames = [clip.frames[i] for i in ping_pong_indexes(len(clip), [1.0, 1.0, 1.5])]
    """
    if clip_length < 2 or any(not pace > 0 for pace in paces):
        raise ConfigError(f"ping_pong_indexes needs 2 frames or more and paces above 0, got {clip_length}, {paces}")
    cycle, last = 2 * (clip_length - 1), clip_length - 1
    indexes: list[int] = []
    for pace in paces:
        length = max(2, round(cycle * pace))
        indexes.extend(round(last - abs(last - step * cycle / length)) for step in range(length))
    return [*indexes, 0]


def _check_pose_size(clip: Clip, name: str) -> None:
    height, width = clip.frames.shape[1:3]
    if max(height, width) < MIN_POSE_SIDE:
        raise ConfigError(
            f"{name}: features='pose' needs frames at least {MIN_POSE_SIDE} px on their longer side, got "
            f"{width}x{height}; decode at a larger size, e.g. VideoClips(width=360) or decode_clip(..., width=360)"
        )


def _as_clip(item: Item) -> Clip:
    if not isinstance(item.data, Clip):
        raise ConfigError(
            f"{item.key}: RepetitionCounter needs a whole video (a Clip), got {type(item.data).__name__}; "
            "use the source tidal.sources.VideoClips"
        )
    return item.data


def _check_arguments(features: Any, min_period: Any, max_period: Any, min_visibility: Any, region: Any) -> None:
    if features not in FEATURES:
        raise ConfigError(f"RepetitionCounter: features must be 'pixels' or 'pose', got {features!r}")
    if region not in WHERE:
        raise ConfigError(
            f"RepetitionCounter: region must be 'auto' (look where something repeats) or 'frame' (the whole "
            f"frame), got {region!r}"
        )
    for name, value in (("min_period", min_period), ("max_period", max_period)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(f"RepetitionCounter: {name} must be a number of seconds above 0, got {value!r}")
    if max_period <= min_period:
        raise ConfigError(
            f"RepetitionCounter: max_period ({max_period}) must be above min_period ({min_period}); "
            "they bound the length of one repetition in seconds"
        )
    if isinstance(min_visibility, bool) or not isinstance(min_visibility, (int, float)) or not 0 <= min_visibility <= 1:
        raise ConfigError(f"RepetitionCounter: min_visibility must be from 0 to 1, got {min_visibility!r}")
