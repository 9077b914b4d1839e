"""The behaviour every engine must have. Mixed into one test class per engine.

A class using it defines an ``engine`` fixture returning a fresh engine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jobrows import job_rows
from tidal.config.job import JobConfig, parse_job
from tidal.engines.base import Engine
from tidal.errors import ProcessorError
from tidal.jobs.runner import run_job


def range_job(n: int = 200, per_partition: int = 25, **processor: Any) -> JobConfig:
    data = {
        "source": {"tidal.sources.Range": {"n": n, "per_partition": per_partition}},
        "processor": {"enginehelpers.Square": processor},
        "imports": ["enginehelpers"],
    }
    return parse_job(data, "test")


def rows(home: Path, job: JobConfig, include_failed: bool = False) -> list[dict[str, Any]]:
    return job_rows(home, job.job_id, include_failed)


class EngineSuite:
    """Tests shared by all engines."""

    def test_every_item_once_with_its_result(self, engine: Engine, tmp_path: Path) -> None:
        job = range_job(200, 25)
        report = run_job(job, state_home=tmp_path, engine=engine)
        assert (report.done, report.failed_items, report.exit_code) == (200, 0, 0)
        found = rows(tmp_path, job)
        assert sorted(row["index"] for row in found) == list(range(200))
        assert all(row["square"] == row["index"] ** 2 for row in found)

    def test_second_run_resumes_with_nothing_to_do(self, engine: Engine, tmp_path: Path) -> None:
        job = range_job(100, 10)
        run_job(job, state_home=tmp_path, engine=engine)
        again = run_job(job, state_home=tmp_path, engine=engine)
        assert (again.processed, again.done) == (0, 100)

    def test_failing_items_are_isolated_and_retried_alone(self, engine: Engine, tmp_path: Path) -> None:
        heal = tmp_path / "heal"
        job = range_job(100, 10, fail_on=[7, 55], heal_file=str(heal))
        first = run_job(job, state_home=tmp_path, engine=engine)
        assert (first.done, first.failed_items, first.exit_code) == (98, 2, 3)
        failed = [row for row in rows(tmp_path, job, True) if row["status"] == "failed"]
        assert sorted(row["index"] for row in failed) == [7, 55]
        assert all("refusing item" in row["error"] for row in failed)
        plain_resume = run_job(job, state_home=tmp_path, engine=engine)
        assert (plain_resume.processed, plain_resume.failed_items) == (0, 2)
        heal.touch()
        retried = run_job(job, state_home=tmp_path, engine=engine, retry_failed=True)
        assert (retried.processed, retried.done, retried.exit_code) == (2, 100, 0)

    def test_setup_failure_stops_the_job_with_the_reason(self, engine: Engine, tmp_path: Path) -> None:
        job = parse_job({"source": {"tidal.sources.Range": {"n": 10}},
                         "processor": {"enginehelpers.BrokenSetup": {}},
                         "imports": ["enginehelpers"]}, "test")
        with pytest.raises(ProcessorError, match="model file missing"):
            run_job(job, state_home=tmp_path, engine=engine)

    def test_results_do_not_depend_on_the_engine(self, engine: Engine, tmp_path: Path) -> None:
        job = range_job(60, 7)
        run_job(job, state_home=tmp_path / "a", engine=engine)
        from tidal.engines.inline import InlineEngine

        run_job(job, state_home=tmp_path / "b", engine=InlineEngine())
        def strip(found: list[dict[str, Any]]) -> str:
            return json.dumps([{k: v for k, v in row.items() if k != "pid"} for row in found])
        assert strip(rows(tmp_path / "a", job)) == strip(rows(tmp_path / "b", job))
