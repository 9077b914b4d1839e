from __future__ import annotations

from pathlib import Path

import pytest
from suite import EngineSuite, range_job, rows

from tidal.engines.local import LocalEngine
from tidal.jobs.runner import run_job


class TestLocalEngine(EngineSuite):
    @pytest.fixture
    def engine(self) -> LocalEngine:
        return LocalEngine(workers=2)


def test_work_is_spread_over_workers(tmp_path: Path) -> None:
    job = range_job(200, 10, delay=0.01)
    run_job(job, state_home=tmp_path, engine=LocalEngine(workers=2))
    assert len({row["pid"] for row in rows(tmp_path, job)}) == 2


def test_a_worker_that_dies_fails_only_its_partition(tmp_path: Path) -> None:
    heal = tmp_path / "heal"
    job = range_job(100, 10, crash_on=42, heal_file=str(heal))
    report = run_job(job, state_home=tmp_path, engine=LocalEngine(workers=2))
    assert report.failed_partitions == 1
    assert report.exit_code == 3
    done = {row["index"] for row in rows(tmp_path, job)}
    assert set(range(40)) | set(range(50, 100)) <= done
    assert 42 not in done
    heal.touch()
    retried = run_job(job, state_home=tmp_path, engine=LocalEngine(workers=2), retry_failed=True)
    assert (retried.done, retried.failed_partitions, retried.exit_code) == (100, 0, 0)
    assert retried.processed == 100 - len(done)
