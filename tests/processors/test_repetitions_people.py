"""RepetitionCounter counts people, not pixels: where it looks, which period it prefers, how sure it is.

Videos are made of real footage as in ``test_repetitions.py`` (Pose2Sim's person doing one
movement out, played out and back once per repetition), then looped, put beside a street
scene where a man walks by (bikes.mp4), or replaced by things that repeat but are no body.
The full evaluation (43 videos, MAE, off-by-one, calibration) is ``bench/repetitions.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tidal.errors import ConfigError
from tidal.processors.region import repeating_region
from tidal.processors.repetitions import (
    LANDMARK_COUNT,
    RepetitionCounter,
    match_frames,
    ping_pong_indexes,
    pixel_features,
    pose_features,
)
from tidal.sources.clips import Clip, decode_clip


@pytest.fixture(scope="module")
def reach(pose2sim_videos: Path) -> np.ndarray:
    """Frames 16-48 of Pose2Sim's cam01 at 30 fps, 288 px wide: one movement out (the arm
    rises, a leg reaches out), no pose coming back (seen on a contact sheet)."""
    return decode_clip(pose2sim_videos / "cam01.mp4", width=288, max_frames=49).frames[16:49:2]


@pytest.fixture
def encode(write_video: Callable[..., Path]) -> Callable[..., Clip]:
    """Write frames as H.264 at 30 fps and decode them at ``width`` (real compression noise)."""

    def make(frames: np.ndarray, width: int = 112) -> Clip:
        return decode_clip(write_video(list(frames), fps=30), width=width)

    return make


def ping_pong(frames: np.ndarray, paces: list[float]) -> np.ndarray:
    return frames[ping_pong_indexes(len(frames), paces)]


def beside_a_street(person: np.ndarray, bikes: Path) -> np.ndarray:
    """The person's video (shrunk to 218 px high) left of bikes.mp4 from frame 20, where a man
    walks towards the camera and cars pass: motion that never repeats, over most of the frame."""
    street = decode_clip(bikes, width=512, max_frames=20 + len(person)).frames[20:]
    step = person.shape[1] / 218
    rows = np.minimum(np.round(np.arange(218) * step).astype(int), person.shape[1] - 1)
    columns = np.arange(0, person.shape[2], step).astype(int)[:122]
    small = person[:, rows][:, :, columns]
    return np.concatenate([small, street[:, :218, : 512 - 2]], axis=2)


def test_a_loop_of_two_repetitions_counts_two_per_loop(encode: Callable[..., Clip], reach: np.ndarray) -> None:
    """Looped exactly, two repetitions match best at the loop; the counter prefers the
    shorter period of which the loop is two steps."""
    two = ping_pong(reach, [1.0, 1.3])[:-1]
    looped = np.concatenate([two, two, two, two[:1]])
    result = RepetitionCounter().count(encode(looped))
    assert result["count"] == 6


def test_repetitions_alternating_in_pace_are_counted_one_by_one(
    encode: Callable[..., Clip], reach: np.ndarray
) -> None:
    assert RepetitionCounter().count(encode(ping_pong(reach, [1.0, 1.3] * 3)))["count"] == 6


def test_a_person_beside_a_passing_street_is_counted(
    encode: Callable[..., Clip], reach: np.ndarray, bikes_mp4: Path
) -> None:
    """Compared whole, the frames never come back (the street goes on); the window where
    the person repeats does."""
    clip = encode(beside_a_street(ping_pong(reach, [1.0] * 5), bikes_mp4))
    assert RepetitionCounter(region="frame").count(clip)["count"] != 5
    result = RepetitionCounter().count(clip)
    assert result["count"] == 5 and result["confidence"] >= 0.8


def test_the_repeating_region_is_where_the_person_is(
    encode: Callable[..., Clip], reach: np.ndarray, bikes_mp4: Path
) -> None:
    clip = encode(beside_a_street(ping_pong(reach, [1.0] * 4), bikes_mp4))

    def depths_of(features: np.ndarray) -> np.ndarray:
        return match_frames(features, clip.fps).depths

    region, best = repeating_region(clip.frames, float(depths_of(pixel_features(clip.frames)).mean()), depths_of)
    person_right_edge = 122 * clip.frames.shape[2] / 632
    assert region is not None and region.right <= person_right_edge + 4 and region.score == best > 0.5


def test_a_still_region_is_never_chosen(encode: Callable[..., Clip], reach: np.ndarray) -> None:
    """The whole frame repeats here: no window is chosen, the count is the whole frame's."""
    clip = encode(ping_pong(reach, [1.0] * 3))
    region, best = repeating_region(clip.frames, 0.9, lambda features: match_frames(features, clip.fps).depths)
    assert region is None and best == 0.9


def test_pose_features_do_not_count_where_no_body_is(encode: Callable[..., Clip], bikes_mp4: Path) -> None:
    """A fence panned back and forth repeats, but no body is there: 0 people, and not a sure 0
    (the pixels repeat: a person could be too small to see)."""
    pytest.importorskip("mediapipe", reason="features='pose' needs mediapipe: pip install 'tidal[pose]'")
    fence = decode_clip(bikes_mp4, width=512, max_frames=186).frames[170:186]
    counter = RepetitionCounter(features="pose")
    try:
        result = counter.count(encode(ping_pong(fence, [1.0] * 5), width=512))
    finally:
        counter.teardown()
    assert result["count"] == 0 and result["confidence"] < 0.8
    assert RepetitionCounter().count(encode(ping_pong(fence, [1.0] * 5)))["count"] == 5  # pixels: 5


def test_pose_features_fill_short_gaps_and_drop_long_absences() -> None:
    """A body missed for 2 frames is a missed detection; missing for 10, it is not there."""
    body = np.zeros((LANDMARK_COUNT, 4), dtype=np.float32)
    body[:, 3] = 1.0
    body[:, 1] = np.linspace(0.0, 1.0, LANDMARK_COUNT)  # shoulders above hips: a torso length
    seen = [body.copy() for _ in range(30)]
    landmarks = [*seen[:5], None, None, *seen[5:15], *[None] * 10, *seen[15:]]
    features = pose_features(landmarks, max_gap=4)
    absent = np.isnan(features).all(axis=1)
    assert not absent[:17].any() and absent[17:27].all() and not absent[27:].any()


def test_a_body_whose_trunk_is_not_seen_is_no_body() -> None:
    """Shoulders and hips below the visibility threshold (a hand in view, say) are not a body."""
    hand = np.zeros((LANDMARK_COUNT, 4), dtype=np.float32)
    hand[15:23, 3] = 1.0  # a wrist and fingers seen, nothing else
    assert np.isnan(pose_features([hand] * 20, max_gap=4)).all()


def test_region_must_be_auto_or_frame() -> None:
    with pytest.raises(ConfigError, match=r"region must be 'auto'.* or 'frame'"):
        RepetitionCounter(region="person")  # type: ignore[arg-type]


def test_a_likeness_found_now_and_then_is_no_body(encode: Callable[..., Clip], bikes_mp4: Path) -> None:
    """The fence panned back and forth at uneven paces: pose estimation finds a "body" in it in
    about a third of the frames, with short gaps between. Filled across the gaps, that passed
    for a body seen throughout, and 3 people's repetitions were counted; a body must be seen in
    half of the frames, counted before any gap is filled."""
    pytest.importorskip("mediapipe", reason="features='pose' needs mediapipe: pip install 'tidal[pose]'")
    fence = decode_clip(bikes_mp4, width=512, max_frames=186).frames[170:186]
    counter = RepetitionCounter(features="pose")
    try:
        result, _, sighting = counter.measure(encode(ping_pong(fence, [1.0, 1.1, 0.9, 1.0, 1.2]), width=512))
    finally:
        counter.teardown()
    assert result["count"] == 0 and sighting.body_share is not None and sighting.body_share < 0.5


@pytest.mark.slow
def test_a_person_a_third_of_a_wide_frame_is_looked_at_closer_and_counted(
    encode: Callable[..., Clip], sports2d_demo: Path
) -> None:
    """Sports2D's man doing a jumping jack (frames 4-24: arms and legs out) played out and back
    at four paces, 640x360: he is about 130 px tall, 45 px in the 224 px the pose detector sees
    of the whole frame. The counter finds him in a few frames, tracks him in a box around where
    he stood, and counts every jumping jack."""
    pytest.importorskip("mediapipe", reason="features='pose' needs mediapipe: pip install 'tidal[pose]'")
    jack = decode_clip(sports2d_demo, width=640, max_frames=25).frames[4:25]
    counter = RepetitionCounter(features="pose")
    try:
        result, _, sighting = counter.measure(encode(ping_pong(jack, [1.0, 0.8, 1.2, 1.0]), width=640))
    finally:
        counter.teardown()
    assert sighting.where == "person" and sighting.width * sighting.height < 0.5 * 640 * 360
    assert (sighting.body_share or 0.0) >= 0.9 and result["count"] == 4
