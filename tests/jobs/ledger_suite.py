"""The behaviour every Ledger (and the job half of every Store) must have. Mixed into one test
class per backend; a class defines a ``store`` fixture returning a fresh store whose ledgers are
the backend under test."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tidal.engines.base import BatchMessage
from tidal.errors import JobNotFound, StoreError, UsageError
from tidal.jobs.ledger import ItemStatus, JobStatus, Ledger, PartitionStatus
from tidal.tracking.store import Store


def new_job_id() -> str:
    return uuid.uuid4().hex[:12]


def row(job_id: str, partition: str, index: int, error: str | None = None, path: str | None = None) -> tuple[Any, ...]:
    status = ItemStatus.FAILED.value if error else ItemStatus.DONE.value
    result = None if error else json.dumps({"square": index * index})
    meta = json.dumps({"index": index} | ({"path": path} if path else {}))
    return (job_id, partition, f"{partition}#{index}", status, path, index if path else None, meta, result, error)


def message(job_id: str, partition: str, indexes: range, failing: set[int] = frozenset(),  # type: ignore[assignment]
            end: tuple[str, str | None] | None = None, path: str | None = None) -> BatchMessage:
    rows = [row(job_id, partition, i, "ValueError: bad" if i in failing else None, path) for i in indexes]
    return BatchMessage(partition, rows, end, sum(1 for i in indexes if i in failing))  # type: ignore[arg-type]


class LedgerSuite:
    """Tests shared by all ledgers."""

    @pytest.fixture
    def job(self, store: Store) -> Any:
        job_id = new_job_id()
        ledger = store.ledger(job_id)
        ledger.register("squares", {"source": {"n": 10}}, "/jobs/squares.hjson")
        yield job_id, ledger
        ledger.close()

    def test_a_message_is_recorded_with_its_results(self, store: Store, job: tuple[str, Ledger]) -> None:
        job_id, ledger = job
        ledger.record(message(job_id, "p0", range(0, 4), failing={2}, end=("done", None)))
        ledger.flush()
        counts = ledger.counts()
        assert (counts.done, counts.failed_items, counts.failed_partitions) == (3, 1, 0)
        assert ledger.keys("p0", [ItemStatus.DONE]) == {"p0#0", "p0#1", "p0#3"}
        assert ledger.keys("p0", [ItemStatus.FAILED]) == {"p0#2"}
        assert ledger.partition_states() == {"p0": (PartitionStatus.DONE, 1)}
        rows = list(store.results(job_id))
        assert [r["index"] for r in rows] == [0, 1, 3] and rows[2]["square"] == 9

    def test_the_same_message_twice_changes_nothing(self, store: Store, job: tuple[str, Ledger]) -> None:
        job_id, ledger = job
        first = message(job_id, "p0", range(0, 5), end=("done", None))
        ledger.record(first)
        ledger.record(first)  # a retried request: exactly once all the same
        ledger.flush()
        assert ledger.counts().done == 5
        assert len(list(store.results(job_id))) == 5
        assert store.get_job(job_id)["partitions_done"] == 1

    def test_a_retried_item_replaces_its_failure(self, store: Store, job: tuple[str, Ledger]) -> None:
        job_id, ledger = job
        ledger.record(message(job_id, "p0", range(0, 3), failing={1}, end=("done", None)))
        ledger.record(message(job_id, "p0", range(1, 2), end=("done", None)))
        ledger.flush()
        counts = ledger.counts()
        assert (counts.done, counts.failed_items) == (3, 0)
        assert ledger.partition_states()["p0"].failed == 0

    def test_a_failed_partition_keeps_its_error(self, store: Store, job: tuple[str, Ledger]) -> None:
        job_id, ledger = job
        ledger.record(message(job_id, "p1", range(0, 2), end=("failed", "DecodeError: truncated at frame 2")))
        ledger.flush()
        assert ledger.partition_states()["p1"].status is PartitionStatus.FAILED
        assert ledger.counts().failed_partitions == 1
        detail = store.get_job(job_id)
        assert detail["partitions_failed"] == 1
        assert detail["failures"][0] == {"kind": "partition", "key": "p1", "error": "DecodeError: truncated at frame 2"}

    def test_an_open_partition_has_no_state_but_its_keys(self, job: tuple[str, Ledger]) -> None:
        job_id, ledger = job
        ledger.record(message(job_id, "p0", range(0, 2)))
        ledger.flush()
        assert ledger.partition_states() == {}
        assert ledger.keys("p0", [ItemStatus.DONE, ItemStatus.FAILED]) == {"p0#0", "p0#1"}
        assert ledger.keys("other", [ItemStatus.DONE]) == set()

    def test_status_total_and_registration(self, store: Store, job: tuple[str, Ledger]) -> None:
        job_id, ledger = job
        ledger.set_status(JobStatus.RUNNING, 10)
        ledger.set_status(JobStatus.COMPLETED)  # no total: the known one stays
        ledger.register("squares", {"source": {"n": 10}}, None)  # a resume without a file keeps the file
        ledger.set_status(JobStatus.FAILED)
        detail = store.get_job(job_id)
        assert (detail["status"], detail["total_items"], detail["name"]) == ("failed", 10, "squares")
        assert detail["config_file"] == "/jobs/squares.hjson" and detail["config"] == {"source": {"n": 10}}

    def test_results_are_ordered_by_path_frame_and_key(self, store: Store, job: tuple[str, Ledger]) -> None:
        job_id, ledger = job
        ledger.record(message(job_id, "b", range(3, 5), path="b.mp4", end=("done", None)))
        ledger.record(message(job_id, "a", range(0, 3), failing={1}, path="a.mp4", end=("done", None)))
        ledger.flush()
        assert [(r["path"], r["index"]) for r in store.results(job_id)] == [
            ("a.mp4", 0), ("a.mp4", 2), ("b.mp4", 3), ("b.mp4", 4)]
        with_failed = list(store.results(job_id, include_failed=True))
        assert [r["status"] for r in with_failed] == ["done", "failed", "done", "done", "done"]
        assert with_failed[1]["error"] == "ValueError: bad" and "square" not in with_failed[1]

    def test_jobs_are_listed_and_found_by_prefix(self, store: Store, job: tuple[str, Ledger]) -> None:
        job_id, ledger = job
        ledger.record(message(job_id, "p0", range(0, 3), failing={0}, end=("done", None)))
        ledger.flush()
        [listed] = [j for j in store.list_jobs() if j["id"] == job_id]
        assert (listed["done"], listed["failed"], listed["name"]) == (2, 1, "squares")
        assert store.find_job(job_id[:7]) == job_id and store.find_job(job_id) == job_id
        assert [j["id"] for j in store.list_jobs(prefix=job_id[:9])] == [job_id]

    def test_unknown_jobs_are_clear_errors(self, store: Store) -> None:
        with pytest.raises(JobNotFound, match="tidal jobs ls"):
            store.find_job("ffffffffffff")
        with pytest.raises(JobNotFound):
            store.get_job("ffffffffffff")
        with pytest.raises(UsageError):
            store.find_job("%")  # a LIKE wildcard is a character, not a pattern
        with pytest.raises(JobNotFound):
            list(store.results("ffffffffffff"))

    def test_a_message_is_all_or_nothing(self, store: Store, job: tuple[str, Ledger]) -> None:
        job_id, ledger = job
        good = row(job_id, "p0", 0)
        broken = (job_id, "p0", None, "done", None, None, "{}", "{}", None)  # a key is required
        with pytest.raises((StoreError, UsageError)):  # a database refusal, or a server's 422
            ledger.record(BatchMessage("p0", [good, broken], ("done", None), 0))  # type: ignore[list-item]
            ledger.flush()
        assert ledger.counts().done == 0 and ledger.partition_states() == {}
