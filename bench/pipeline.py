"""Pipelines: what a rerun costs when nothing, the last step, or one input changed; environments
reused; the cache lookup of a million-item step. Printed side by side in one run.

    python bench/pipeline.py            # the example (needs tidal[pose] and pose2sim, see its README)
    python bench/pipeline.py --frames 100 --items 0     # every frame of the demo videos; no Range step

Targets: a rerun with nothing changed ≤ 2 % of the cold run (plus fixed start-up) with no item
processed; the last step changed → only its time; one of N videos replaced → about 1/N of the
per-step work. That last one is reported as the work a rerun redoes: each step's time less its
fixed start-up (worker processes and the model, measured on one frame per video) over the cold
run's. At a few dozen frames per video the start-up is most of a step, so the raw time ratio
says little; hence 100 frames per video by default. A second pipeline naming the same
requirements gets its environment in < 1 s; a 1,000,000-item Range step with nothing changed is
looked up in ≤ 10 s with ≤ 200 bytes per item in the store.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "body-measurements"


def timed(label: str, config: Path) -> tuple[float, Any]:
    """Run the pipeline once; print its seconds and each step's outcome and items processed."""
    from tidal.pipelines import load_pipeline, run_pipeline

    started = time.monotonic()
    report = run_pipeline(load_pipeline(config))
    seconds = time.monotonic() - started
    steps = {step.name: (step.outcome, step.processed) for step in report.steps}
    print(f"  {label:<38} {seconds:8.2f} s   {steps}", flush=True)
    return seconds, report


def example(folder: Path, frames: int) -> None:
    import importlib.util

    spec = importlib.util.find_spec("Pose2Sim")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("pip install --no-deps pose2sim==0.10.49 first (the demo videos)")
    videos = Path(next(iter(spec.submodule_search_locations))) / "Demo_SinglePerson" / "videos"
    project = folder / "body-measurements"
    shutil.copytree(EXAMPLE, project)
    shutil.copytree(videos, project / "videos")
    config = project / "pipeline.hjson"
    text = config.read_text().replace("pkg://Pose2Sim/Demo_SinglePerson/videos/*.mp4",
                                      str(project / "videos" / "*.mp4"))
    config.write_text(_frames(text, frames))
    print(f"the example (4 videos, {frames} evenly spaced frames each, 300 px; local engine):")
    cold_env = environment_seconds(config)
    cold, cold_report = timed("cold run", config)
    warm, warm_report = timed("rerun, nothing changed", config)
    print(f"  {'':<38} {100 * warm / cold:7.2f} % of the cold run; items processed: "
          f"{sum(step.processed for step in warm_report.steps)}")
    config.write_text(config.read_text().replace('fields: ["*_m", "*_ratio"]', 'fields: ["*_ratio"]'))
    timed("rerun, last step's config changed", config)
    shutil.copy(project / "videos" / "cam01.mp4", project / "videos" / "cam02.mp4")
    replaced, replaced_report = timed("rerun, 1 of 4 videos replaced", config)
    print(f"  {'':<38} {100 * replaced / cold:7.2f} % of the cold run, start-up included (1/N = 25 %)")
    shutil.copy(project / "videos" / "cam01.mp4", project / "videos" / "cam03.mp4")
    with mock.patch("tidal.pipelines.runner.fewer_workers", lambda engine, partitions: engine):
        every, _ = timed("the same, a worker per core (as before)", config)
    print(f"  {'':<38} {100 * every / cold:7.2f} % of the cold run (idle workers load the pose model too: on "
          "2 cores in parallel, so about the same time; on many cores, a model's memory and CPU per core)")
    startup = project / "startup.hjson"  # the same steps over 1 frame per video: what any run pays first
    startup.write_text(_frames(config.read_text(), 1))
    _, startup_report = timed("start-up: cold, 1 frame per video", startup)
    work_scaled(cold_report, replaced_report, startup_report)
    shutil.copy(config, project / "second.hjson")  # another pipeline naming the same requirements
    print(f"  {'environment: first build':<38} {cold_env:8.2f} s")
    print(f"  {'environment: another pipeline, same reqs':<38} {environment_seconds(project / 'second.hjson'):8.3f} s"
          "   (target < 1 s)")


def _frames(text: str, frames: int) -> str:
    """The example's pipeline text with ``frames: N`` per video instead of its own count."""
    changed = re.sub(r"frames: \d+", f"frames: {frames}", text, count=1)
    assert changed != text or f"frames: {frames}" in text, "the example no longer sets frames: N"
    return changed


def work_scaled(cold: Any, replaced: Any, startup: Any) -> None:
    """Per step: the seconds of the cold run and of the 1-of-N rerun, each less the step's fixed
    start-up (its workers and model, measured on 1 frame per video), and their ratio: the work a
    rerun redoes, which should be about 1/N. Steps a run did not run show 0; the cold run's
    workers share the cores, the rerun's one worker has them to itself, so its share may be less."""
    def seconds(report: Any) -> dict[str, float]:
        return {step.name: step.seconds for step in report.steps}

    cold_s, replaced_s, startup_s = seconds(cold), seconds(replaced), seconds(startup)
    print(f"  {'step':<10}{'cold s':>9}{'1-of-4 s':>10}{'start-up s':>12}{'work redone':>13}   (1/N = 25 %)")
    for name in cold_s:
        fixed = startup_s.get(name, 0.0)
        cold_work, replaced_work = cold_s[name] - fixed, replaced_s.get(name, 0.0) - fixed
        # a step whose work is under a second is its start-up: its share would be noise
        share = f"{100 * replaced_work / cold_work:11.1f} %" if cold_work >= 1.0 else f"{'start-up':>13}"
        print(f"  {name:<10}{cold_s[name]:9.2f}{replaced_s.get(name, 0.0):10.2f}{fixed:12.2f}{share}")
    total_work = sum(cold_s.values()) - sum(startup_s.values())
    redone = sum(replaced_s.values()) - sum(startup_s.get(name, 0.0) for name in replaced_s)
    print(f"  {'all steps':<10}{sum(cold_s.values()):9.2f}{sum(replaced_s.values()):10.2f}"
          f"{sum(startup_s.values()):12.2f}{100 * max(redone, 0.0) / max(total_work, 1e-9):11.1f} %")


def environment_seconds(config: Path) -> float:
    from tidal.pipelines import load_pipeline
    from tidal.pipelines.environment import Environment

    started = time.monotonic()
    for step in load_pipeline(config).steps.values():
        if step.env is not None:
            Environment.ensure(step.env)
    return time.monotonic() - started


def million(folder: Path, items: int) -> None:
    config = folder / "range.hjson"
    config.write_text(f'{{steps: {{numbers: {{source: {{"tidal.sources.Range": {{n: {items}, per_partition: 10000}}}},'
                      ' processor: {"tidal.processors.NoOp": {batch_size: 1000}}}}}')
    print(f"a {items:,}-item Range step (NoOp):")
    database = Path(os.environ["TIDAL_HOME"]) / "tidal.db"
    before = _size(database)
    timed("cold run", config)
    lookup, _ = timed("rerun, nothing changed (cache lookup)", config)
    per_item = (_size(database) - before) / items
    print(f"  {'store per item':<38} {per_item:8.0f} bytes   (target ≤ 200); lookup {lookup:.2f} s (target ≤ 10 s)")


def _size(database: Path) -> int:
    import sqlite3

    if not database.exists():
        return 0
    connection = sqlite3.connect(database)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (pages,), = connection.execute("PRAGMA page_count").fetchall()
        (size,), = connection.execute("PRAGMA page_size").fetchall()
        (free,), = connection.execute("PRAGMA freelist_count").fetchall()
    finally:
        connection.close()
    return int((pages - free) * size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000, help="items of the Range step (0: skip it)")
    parser.add_argument("--frames", type=int, default=100,
                        help="evenly spaced frames per video (the demo videos have 100: all of them)")
    parser.add_argument("--skip-example", action="store_true")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        os.environ["TIDAL_HOME"] = str(folder / ".tidal")
        os.chdir(folder)
        if not arguments.skip_example:
            example(folder, arguments.frames)
        if arguments.items:
            million(folder, arguments.items)


if __name__ == "__main__":
    main()
