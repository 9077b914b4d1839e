"""Body proportions from MediaPipe's 3-D world landmarks: lengths in metres, and each relative to
the stature. Proportions from a pose model's joint centres, not a body-shape model: no girths
and no head top (the stature is heel to nose, along the body's segments).
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

from bodies.skeleton import ANKLES, ELBOWS, HEELS, HIPS, KNEES, NOSE, REQUIRED, SHOULDERS, WRISTS
from tidal import Processor

LENGTHS = ("shoulder_width_m", "hip_width_m", "arm_m", "leg_m", "torso_m")


class Measure(Processor):
    """Lengths of one frame's body from the ``world_landmarks`` of tidal.processors.PoseKeypoints.

    A frame whose required joints are not all seen with ``min_visibility`` gives
    ``{"measured": False}`` (its lengths would be guesses).
    """

    batch_size = 64
    fields: ClassVar[dict[str, type]] = {"measured": bool, "stature_m": float,
                                         **{name: float for name in LENGTHS},
                                         **{name.replace("_m", "_ratio"): float for name in LENGTHS}}

    def __init__(self, min_visibility: float = 0.5) -> None:
        self.min_visibility = min_visibility

    def process(self, batch: list[Any]) -> list[dict[str, Any]]:
        return [self.measure(item.data.get("world_landmarks") or []) for item in batch]

    def measure(self, world: list[list[float]]) -> dict[str, Any]:
        import numpy as np  # installed in this step's own environment

        points = np.asarray(world, dtype=np.float64)
        if points.shape != (33, 4) or (points[list(REQUIRED), 3] < self.min_visibility).any():
            return {"measured": False}
        joints = points[:, :3]

        def length(*chain: int) -> float:
            return float(sum(np.linalg.norm(joints[a] - joints[b]) for a, b in itertools.pairwise(chain)))

        def mean_of_sides(chains: list[tuple[int, ...]]) -> float:
            return (length(*chains[0]) + length(*chains[1])) / 2

        middle = {name: (joints[a] + joints[b]) / 2 for name, (a, b) in (("shoulders", SHOULDERS), ("hips", HIPS))}
        torso = float(np.linalg.norm(middle["shoulders"] - middle["hips"]))
        leg = mean_of_sides([(HIPS[side], KNEES[side], ANKLES[side]) for side in (0, 1)])
        heel_to_ankle = mean_of_sides([(HEELS[side], ANKLES[side]) for side in (0, 1)])
        neck_to_nose = float(np.linalg.norm(joints[NOSE] - middle["shoulders"]))
        lengths = {
            "shoulder_width_m": length(*SHOULDERS),
            "hip_width_m": length(*HIPS),
            "arm_m": mean_of_sides([(SHOULDERS[side], ELBOWS[side], WRISTS[side]) for side in (0, 1)]),
            "leg_m": leg,
            "torso_m": torso,
        }
        stature = heel_to_ankle + leg + torso + neck_to_nose
        ratios = {name.replace("_m", "_ratio"): value / stature for name, value in lengths.items()}
        return {"measured": True, "stature_m": stature, **lengths, **ratios}
