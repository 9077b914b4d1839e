"""A processor returning dataclasses works through ``tidal map``: a real run, results exported.

(``tidal serve`` of the same processor, ``hostprocessors.Typed(kind="dataclass")``, is checked
by the serving tests.)
"""

from __future__ import annotations

import json
from pathlib import Path

from tidal.config.job import load_config
from tidal.database import sqlite_url
from tidal.engines.local import LocalEngine
from tidal.jobs.runner import run_job
from tidal.sinks.export import export
from tidal.tracking.stores import open_store


def test_dataclass_results_run_and_export_like_dicts(tmp_path: Path) -> None:
    config = tmp_path / "job.hjson"
    config.write_text('{source: {"tidal.sources.Range": {n: 10, per_partition: 4}}\n'
                      'processor: {"hostprocessors.Typed": {kind: "dataclass"}}\nimports: ["hostprocessors"]}')
    [job] = load_config(config)
    report = run_job(job, state_home=tmp_path, engine=LocalEngine(workers=2))
    assert (report.done, report.failed_items, report.exit_code) == (10, 0, 0)
    store = open_store(sqlite_url(tmp_path), home=tmp_path)
    try:
        assert export(store, job.job_id, tmp_path / "out.jsonl", "jsonl") == 10
    finally:
        store.close()
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    by_index = {row["index"]: row for row in rows}
    assert sorted(by_index) == list(range(10))
    assert {key: by_index[3][key] for key in ("label", "at", "scores", "count")} == {
        "label": "item 3", "at": "2024-05-01T12:30:15", "scores": [1.5, 1.5], "count": 3}
