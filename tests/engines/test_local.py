from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
from suite import EngineSuite, range_job, rows

from tidal.config.job import JobConfig, parse_job
from tidal.engines.base import BatchMessage, Row, Work
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


def marks_job(folder: Path, source: dict[str, Any] | None = None) -> JobConfig:
    return parse_job({"source": source or {"tidal.sources.Range": {"n": 20, "per_partition": 5}},
                      "processor": {"enginehelpers.Marks": {"folder": str(folder)}},
                      "imports": ["enginehelpers"]}, "test")


def test_workers_set_up_while_the_partitions_are_listed(tmp_path: Path) -> None:
    # the listing waits for a worker's setup(): it only ends early if the workers started first
    job = marks_job(tmp_path, {"enginehelpers.ListedAfterSetup": {"n": 20, "folder": str(tmp_path)}})
    report = run_job(job, state_home=tmp_path / "home", engine=LocalEngine(workers=1))
    assert (report.done, report.exit_code) == (20, 0)
    assert (tmp_path / "waited").read_text() == "saw a worker set up"


def test_a_worker_ends_after_its_threads_and_atexit_handlers(tmp_path: Path) -> None:
    report = run_job(marks_job(tmp_path), state_home=tmp_path / "home", engine=LocalEngine(workers=2))
    assert report.done == 20
    pids = {row["pid"] for row in rows(tmp_path / "home", marks_job(tmp_path))}
    for pid in pids:  # run_job returned: the workers have exited, having done all of it
        assert (tmp_path / f"thread-{pid}").exists()
        assert (tmp_path / f"atexit-{pid}").read_text() == "after the thread"


def test_started_workers_that_no_run_takes_are_stopped(tmp_path: Path) -> None:
    job = marks_job(tmp_path)
    engine = LocalEngine(workers=2)
    engine.start(Work(job.job_id, job.build_source(), job.processor_spec))
    processes = [slot.process for slot in engine._started[1].slots]  # type: ignore[index]
    assert all(process.is_alive() for process in processes)
    engine.close()
    assert not any(process.is_alive() for process in processes)
    assert engine._started is None
    report = run_job(job, state_home=tmp_path / "home", engine=engine)  # the engine still runs jobs
    assert report.done == 20


def test_batch_messages_cross_processes_as_they_were() -> None:
    rows = [Row("job", "p", f"k{i}", "done", "a.mp4", i, '{"i":1}', '{"v":2}', None) for i in range(3)]
    rows.append(Row("job", "p", "k3", "failed", None, None, "{}", None, "ValueError: bad"))
    message = BatchMessage("p", rows, ("done", None), 1)
    back = pickle.loads(pickle.dumps(message))
    assert back == message
    assert all(type(row) is Row for row in back.rows) and back.rows[3].error == "ValueError: bad"
