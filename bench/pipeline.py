"""Pipelines: what a rerun costs when nothing, the last step, or one input changed; environments
reused; the cache lookup of a million-item step. Printed side by side in one run.

    python bench/pipeline.py            # the example (needs tidal[pose] and pose2sim, see its README)
    python bench/pipeline.py --items 1000000

Targets: a rerun with nothing changed ≤ 2 % of the cold run (plus fixed start-up) with no item
processed; the last step changed → only its time; one of N videos replaced → about 1/N of the
per-step work; a second pipeline naming the same requirements gets its environment in < 1 s; a
1,000,000-item Range step with nothing changed is looked up in ≤ 10 s with ≤ 200 bytes per item
in the store.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "body-measurements"


def timed(label: str, config: Path) -> tuple[float, dict[str, tuple[str, int]]]:
    from tidal.pipelines import load_pipeline, run_pipeline

    started = time.monotonic()
    report = run_pipeline(load_pipeline(config))
    seconds = time.monotonic() - started
    steps = {step.name: (step.outcome, step.processed) for step in report.steps}
    print(f"  {label:<38} {seconds:8.2f} s   {steps}", flush=True)
    return seconds, steps


def example(folder: Path) -> None:
    import importlib.util

    spec = importlib.util.find_spec("Pose2Sim")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("pip install --no-deps pose2sim==0.10.49 first (the demo videos)")
    videos = Path(next(iter(spec.submodule_search_locations))) / "Demo_SinglePerson" / "videos"
    project = folder / "body-measurements"
    shutil.copytree(EXAMPLE, project)
    shutil.copytree(videos, project / "videos")
    config = project / "pipeline.hjson"
    config.write_text(config.read_text().replace("pkg://Pose2Sim/Demo_SinglePerson/videos/*.mp4",
                                                  str(project / "videos" / "*.mp4")))
    print("the example (4 videos, every 4th frame, 300 px; local engine):")
    cold_env = environment_seconds(config)
    cold, _ = timed("cold run", config)
    warm, steps = timed("rerun, nothing changed", config)
    print(f"  {'':<38} {100 * warm / cold:7.2f} % of the cold run; items processed: "
          f"{sum(count for _, count in steps.values())}")
    config.write_text(config.read_text().replace('fields: ["*_m", "*_ratio"]', 'fields: ["*_ratio"]'))
    timed("rerun, last step's config changed", config)
    shutil.copy(project / "videos" / "cam01.mp4", project / "videos" / "cam02.mp4")
    replaced, _ = timed("rerun, 1 of 4 videos replaced", config)
    print(f"  {'':<38} {100 * replaced / cold:7.2f} % of the cold run (1/N = 25 %)")
    shutil.copy(config, project / "second.hjson")  # another pipeline naming the same requirements
    print(f"  {'environment: first build':<38} {cold_env:8.2f} s")
    print(f"  {'environment: another pipeline, same reqs':<38} {environment_seconds(project / 'second.hjson'):8.3f} s"
          "   (target < 1 s)")


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
    parser.add_argument("--items", type=int, default=1_000_000, help="items of the Range step")
    parser.add_argument("--skip-example", action="store_true")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        os.environ["TIDAL_HOME"] = str(folder / ".tidal")
        os.chdir(folder)
        if not arguments.skip_example:
            example(folder)
        million(folder, arguments.items)


if __name__ == "__main__":
    main()
