"""person_box: where to look at a small body again, closer, and whose body that is.

Landmarks here are drawn by hand (a body as MediaPipe reports it: 33 joints normalised to the
view); what the counter does with real footage is tested in ``test_repetitions_people.py``.
"""

from __future__ import annotations

import numpy as np

from tidal.processors.person import SMALL_BODY, person_box, trunk_seen
from tidal.processors.pose import LANDMARK_COUNT


def body(centre_x: float, top: float, bottom: float, visibility: float = 0.9) -> np.ndarray:
    """A standing body: joints spread from ``top`` to ``bottom`` (0-1 of the view's height),
    a tenth of the view wide around ``centre_x``."""
    joints = np.zeros((LANDMARK_COUNT, 4), dtype=np.float32)
    joints[:, 0] = centre_x + np.linspace(-0.05, 0.05, LANDMARK_COUNT)
    joints[:, 1] = np.linspace(top, bottom, LANDMARK_COUNT)
    joints[:, 3] = visibility
    return joints


def test_a_small_body_gets_a_box_around_where_it_went_with_a_margin() -> None:
    """A body a quarter of a 200x600 view tall, rising and falling by 10 px: the box holds every
    pose, plus 35 % of the body's height on each side, and is far smaller than the view."""
    frames = [body(0.5, 0.4 + 0.05 * (index % 2), 0.65 + 0.05 * (index % 2)) for index in range(10)]
    box = person_box(frames, 200, 600)
    assert box is not None
    height = 0.25 * 200
    assert box.top <= 0.4 * 200 - 0.3 * height and box.bottom >= 0.7 * 200 + 0.3 * height
    assert box.left <= 0.45 * 600 and box.right >= 0.55 * 600
    assert box.area() < 0.25 * 200 * 600


def test_a_body_already_large_in_the_view_is_not_looked_at_again() -> None:
    frames = [body(0.5, 0.1, 0.1 + SMALL_BODY + 0.05)] * 10
    assert person_box(frames, 200, 600) is None


def test_a_passer_by_taken_in_a_few_frames_does_not_stretch_the_box() -> None:
    """MediaPipe follows one body: in 3 frames of 12 it took a person passing far to the right.
    The box is the body that stays, and its score is the share of frames it was that body."""
    staying = [body(0.2, 0.4, 0.65)] * 9
    passing = [body(0.8, 0.4, 0.65)] * 3
    box = person_box([*staying, *passing], 200, 600)
    assert box is not None and box.right < 0.4 * 600 and box.score == 0.75


def test_no_box_without_a_body_seen_in_a_few_frames() -> None:
    """Two sightings are nothing to go on; a body without visible shoulders and hips is none."""
    assert person_box([body(0.5, 0.4, 0.65), body(0.5, 0.4, 0.65), None, None], 200, 600) is None
    faint = body(0.5, 0.4, 0.65, visibility=0.2)
    assert not trunk_seen(faint, 0.5) and person_box([faint] * 10, 200, 600) is None
