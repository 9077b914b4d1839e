"""One processor, one encoding: its results read the same in ``tidal map``'s rows and in
``tidal serve``'s responses (both go through the processor host's encoder)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from servehelpers import HERE, running_front

MEASURE = {"serveprocessors.Measure": {}}


def tidal(*args: str, home: Path) -> None:
    env = os.environ | {"TIDAL_HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "tidal", *args], cwd=HERE, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_dataclass_results_are_the_same_json_in_map_rows_and_serve_responses(tmp_path: Path) -> None:
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"source": {"tidal.sources.Range": {"n": 3}}, "processor": MEASURE,
                               "imports": ["serveprocessors"]}))
    tidal("map", str(job), "--quiet", home=tmp_path)
    tidal("results", "export", str(job), "-f", "jsonl", "-o", str(tmp_path / "rows.jsonl"), home=tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    mapped = {row["number"]: {key: row[key] for key in ("number", "square", "label", "day", "tags", "point")}
              for row in rows}
    with running_front(MEASURE) as front:
        served = {number: front.predict(number).json()["results"][0] for number in range(3)}
    assert served == mapped
    assert served[2] == {"number": 2, "square": 4, "label": "n2", "day": "2024-05-03", "tags": ["a", "b"],
                         "point": {"x": 2, "y": 1.0}}
