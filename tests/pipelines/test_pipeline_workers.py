"""A step starts no more worker processes than it has partitions to run: each worker sets its
processor up (a model load) before it takes work, so an idle one is pure cost."""

from __future__ import annotations

from pathlib import Path

from tidal.engines.local import LocalEngine
from tidal.pipelines import load_pipeline, run_pipeline

COUNTED = '''
import os
from tidal import Processor
from shapes.helpers import area


class Counted(Processor):
    """Writes a line per setup to ``log``: how many workers set it up."""

    fields = {"area": int}

    def __init__(self, log: str) -> None:
        self.log = log

    def setup(self) -> None:
        with open(self.log, "a") as file:
            file.write(f"{os.getpid()}\\n")

    def process(self, batch):
        return [{"area": area(*item.data)} for item in batch]
'''


def setups(project: Path) -> int:
    log = project / "setups.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_a_rerun_after_one_input_changed_starts_one_worker(project: Path) -> None:
    (project / "shapes" / "counted.py").write_text(COUNTED)
    (project / "counted.hjson").write_text(
        '{steps: {shapes: {source: {"shapes.lines.Lines": {folder: "data"}}}, '
        f'measure: {{from: "shapes", processor: {{"shapes.counted.Counted": {{log: "{project / "setups.log"}"}}}}}}}}, '
        'imports: ["shapes"]}')

    def run() -> tuple[str, int]:
        report = run_pipeline(load_pipeline(project / "counted.hjson"), engine=LocalEngine(workers=2))
        return report.steps[0].outcome, report.steps[0].processed

    assert run() == ("ran", 5) and setups(project) == 2  # two files, two partitions: both workers
    (project / "data" / "b.txt").write_text("3 3\n")
    assert run() == ("ran", 1) and setups(project) == 3  # one new partition: one worker
    assert run() == ("cached", 0) and setups(project) == 3  # nothing to run: no worker
