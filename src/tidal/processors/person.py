"""Where the person is in a clip: the box in which to look at the body again, closer.

MediaPipe's pose detector sees the whole frame shrunk to 224 px: a person a quarter of the
frame's height is about 50 px there, found in some frames and lost in others, and another
person passing by may be taken instead. Once a body has been seen in some frames, the box
where it stood (over the frames whose hips are near their median: the person who stays in
place and repeats, not one walking through) is cut out with a margin, and pose estimation runs
again on that crop, where the person fills about half of the detector's view. Nothing here is
fitted to a data set: the margins are what a body needs to stay inside the box while it moves.

Example::

    box = person_box(landmarks, frames.shape[1], frames.shape[2])
    closer = box.crop(frames) if box else frames
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from tidal.processors.pose import KEY_LANDMARKS
from tidal.processors.region import Region

FloatArray = NDArray[np.float32]

SMALL_BODY = 0.5  # a body less tall than this share of the view is looked at again, closer
_MARGIN = 0.35  # the box reaches this share of the body's height beyond where it went, each side
_SAME_PERSON = 0.75  # hips this many body heights from their median hips are someone else's
_MIN_SEEN = 3  # frames with a body needed to place a box
_MIN_SIDE = 48  # px: a smaller box holds too few pixels for pose estimation
_TRUNK = [KEY_LANDMARKS[joint] for joint in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]
_HIPS = [KEY_LANDMARKS["left_hip"], KEY_LANDMARKS["right_hip"]]


def trunk_seen(landmarks: FloatArray | None, min_visibility: float) -> bool:
    """Whether a body was found with its shoulders and hips in view: a body, not a hand or a likeness."""
    return landmarks is not None and bool((landmarks[_TRUNK, 3] >= min_visibility).all())


def person_box(
    landmarks: list[FloatArray | None], height: int, width: int, min_visibility: float = 0.5
) -> Region | None:
    """The box of a ``height`` x ``width`` view to look at the body again, closer, or None.

    None when the body was seen in fewer than ``_MIN_SEEN`` frames (nothing to go on) or is
    already at least ``SMALL_BODY`` of the view's height (closer would not help). ``landmarks``
    are MediaPipe's ``(33, 4)`` rows per frame, normalised to the view (None: no body).
    """
    seen = [found for found in landmarks if found is not None and trunk_seen(found, min_visibility)]
    if len(seen) < _MIN_SEEN:
        return None
    points = np.stack([found[:, :2] for found in seen]) * np.array([width, height], dtype=np.float32)
    visible = np.stack([found[:, 3] >= min_visibility for found in seen])
    points[~visible] = np.nan  # a joint out of view is guessed, often beyond the border
    tops, bottoms = np.nanmin(points[:, :, 1], axis=1), np.nanmax(points[:, :, 1], axis=1)
    body = float(np.median(bottoms - tops))
    if body >= SMALL_BODY * height or body <= 0:
        return None
    hips = points[:, _HIPS].mean(axis=1)
    staying = np.linalg.norm(hips - np.median(hips, axis=0), axis=1) <= _SAME_PERSON * body
    kept = points[staying]
    margin = _MARGIN * body
    top, bottom = max(0.0, np.nanmin(kept[:, :, 1]) - margin), min(float(height), np.nanmax(kept[:, :, 1]) + margin)
    left, right = max(0.0, np.nanmin(kept[:, :, 0]) - margin), min(float(width), np.nanmax(kept[:, :, 0]) + margin)
    if min(bottom - top, right - left) < _MIN_SIDE:
        return None
    return Region(round(top), round(left), round(bottom), round(right), float(staying.mean()))
