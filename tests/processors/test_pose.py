"""PoseKeypoints on real full-body footage (Pose2Sim's demo) and on frames without a person."""

from __future__ import annotations

import pickle
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tidal.errors import ConfigError
from tidal.processors.pose import KEY_LANDMARKS, LANDMARK_COUNT, PoseKeypoints, is_complete, pose_result
from tidal.sources.base import Item
from tidal.sources.clips import decode_clip
from tidal.sources.video import VideoFrames

pytest.importorskip("mediapipe", reason="PoseKeypoints needs mediapipe: pip install 'tidal[pose]'")


@pytest.fixture(scope="module")
def person_frames(pose2sim_videos: Path) -> list[np.ndarray]:
    """Three real frames of one person seen whole, 360 px wide (portrait)."""
    clip = decode_clip(pose2sim_videos / "cam01.mp4", width=360, max_frames=61)
    return [clip.frames[index] for index in (0, 30, 60)]


@pytest.fixture(scope="module")
def processor() -> Iterator[PoseKeypoints]:
    keypoints = PoseKeypoints()
    keypoints.setup()
    yield keypoints
    keypoints.teardown()


def test_a_whole_person_is_detected_complete_with_33_normalised_landmarks(
    processor: PoseKeypoints, person_frames: list[np.ndarray]
) -> None:
    items = [Item(f"frame{index}", frame) for index, frame in enumerate(person_frames)]
    for result in processor.process(items):
        assert result["detected"] is True and result["complete"] is True
        landmarks = np.array(result["landmarks"])
        assert landmarks.shape == (LANDMARK_COUNT, 4)
        assert ((landmarks[:, :2] > -0.1) & (landmarks[:, :2] < 1.1)).all()
        assert ((landmarks[:, 3] >= 0) & (landmarks[:, 3] <= 1)).all()
        nose, left_ankle = landmarks[0], landmarks[KEY_LANDMARKS["left_ankle"]]
        assert nose[1] < left_ankle[1]  # standing: the head above the feet


def test_no_person_is_not_detected(processor: PoseKeypoints, person_frames: list[np.ndarray]) -> None:
    frame = person_frames[0]
    [feet] = processor.process([Item("frame", frame)])
    lowest = max(point[1] for point in feet["landmarks"])
    floor = np.ascontiguousarray(frame[int(frame.shape[0] * (lowest + 0.08)) :])  # the mat below the feet
    blank = np.full((256, 256, 3), 128, dtype=np.uint8)
    for result in processor.process([Item("floor", floor), Item("blank", blank)]):
        assert result == {"landmarks": [], "detected": False, "complete": False}


def test_a_body_cut_at_the_hips_is_detected_but_not_complete(
    processor: PoseKeypoints, person_frames: list[np.ndarray]
) -> None:
    frame = person_frames[0]
    [whole] = processor.process([Item("frame", frame)])
    hips = np.mean([whole["landmarks"][KEY_LANDMARKS[name]][1] for name in ("left_hip", "right_hip")])
    [upper] = processor.process([Item("upper", np.ascontiguousarray(frame[: int(frame.shape[0] * hips)]))])
    assert upper["detected"] is True and upper["complete"] is False


def test_completeness_follows_the_key_landmarks_visibility() -> None:
    landmarks = np.ones((LANDMARK_COUNT, 4), dtype=np.float32)
    landmarks[0, 3] = 0.0  # the nose is not a key landmark
    assert is_complete(landmarks, 0.5)
    landmarks[KEY_LANDMARKS["right_knee"], 3] = 0.4
    assert not is_complete(landmarks, 0.5)
    assert is_complete(landmarks, 0.3)
    assert pose_result(None, 0.5) == {"landmarks": [], "detected": False, "complete": False}


def test_tracking_mode_on_consecutive_frames_of_a_video(pose2sim_videos: Path) -> None:
    source = VideoFrames(str(pose2sim_videos / "cam03.mp4"), width=360, max_frames=12)
    items = [item for partition in source.partitions() for item in source.read(partition)]
    tracking = PoseKeypoints(static_image_mode=False)
    tracking.setup()
    try:
        results = tracking.process(items[:6]) + tracking.process(items[6:])
    finally:
        tracking.teardown()
    assert len(results) == 12 and all(result["detected"] for result in results)


def test_the_processor_pickles_without_its_model(processor: PoseKeypoints) -> None:
    copy = pickle.loads(pickle.dumps(processor))
    assert copy._model is None and copy.min_visibility == processor.min_visibility


@pytest.mark.parametrize("complexity", [0, 2, True])
def test_only_the_shipped_model_complexity_is_accepted(complexity: int) -> None:
    with pytest.raises(ConfigError, match="model_complexity must be 1"):
        PoseKeypoints(model_complexity=complexity)


@pytest.mark.parametrize("name", ["min_visibility", "min_detection_confidence", "min_tracking_confidence"])
def test_thresholds_must_be_fractions(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        PoseKeypoints(**{name: 1.5})


def test_a_frame_of_the_wrong_shape_names_the_item(processor: PoseKeypoints) -> None:
    with pytest.raises(ConfigError, match=r"item-7: pose estimation needs an HxWx3 uint8 RGB frame"):
        processor.process([Item("item-7", np.zeros((64, 64), dtype=np.uint8))])


def test_missing_mediapipe_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mediapipe.python.solutions", None)
    with pytest.raises(ConfigError, match=r"pip install 'tidal\[pose\]'"):
        PoseKeypoints().setup()
