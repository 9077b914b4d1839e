"""Planning a resume: finished partitions are not read again; settled keys are skipped."""

from __future__ import annotations

from pathlib import Path

from tidal.database import connect
from tidal.engines.base import BatchMessage
from tidal.jobs.ledger import Ledger
from tidal.jobs.plan import Plan
from tidal.jobs.sqlite_ledger import SQLiteLedger
from tidal.sources.base import Partition


def row(partition: str, key: str, error: str | None = None) -> tuple[object, ...]:
    status = "failed" if error else "done"
    return ("job", partition, key, status, None, None, "{}", None if error else "{}", error)


def make_ledger(tmp_path: Path) -> Ledger:
    ledger = SQLiteLedger(connect(tmp_path), "job")
    ledger.record(BatchMessage("a", [row("a", "a1"), row("a", "a2")], ("done", None)))
    ledger.record(BatchMessage("b", [row("b", "b1"), row("b", "b2", "boom")], ("done", None)))
    ledger.record(BatchMessage("c", [row("c", "c1")], ("failed", "truncated")))
    ledger.record(BatchMessage("d", [row("d", "d1"), row("d", "d2", "bad frame")]))  # cut short
    return ledger


PARTITIONS = [Partition(name, 3) for name in "abcde"]


def test_resume_reads_only_unfinished_partitions_and_skips_settled_items(tmp_path: Path) -> None:
    plan = Plan(make_ledger(tmp_path), PARTITIONS, retry_failed=False)
    tasks = {task.partition.id: task.skip for task in plan.tasks()}
    assert tasks == {"d": frozenset({"d1", "d2"}), "e": frozenset()}
    assert plan.total == 15
    assert plan.expected == {"d": 1, "e": 3}


def test_retry_failed_reads_partitions_with_failures_skipping_done_items(tmp_path: Path) -> None:
    plan = Plan(make_ledger(tmp_path), PARTITIONS, retry_failed=True)
    tasks = {task.partition.id: task.skip for task in plan.tasks()}
    assert tasks == {"b": frozenset({"b1"}), "c": frozenset({"c1"}), "d": frozenset({"d1"}),
                     "e": frozenset()}


def test_unknown_sizes_give_no_total(tmp_path: Path) -> None:
    plan = Plan(make_ledger(tmp_path), [Partition("x", None), Partition("y", 2)], retry_failed=False)
    assert plan.total is None
