"""Running pipelines: what is cached, what reruns and why, on real stores and the inline engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shapes_project import edit

from tidal.cli._common import job_id_from
from tidal.engines.inline import InlineEngine
from tidal.pipelines import load_pipeline, run_pipeline, step_states
from tidal.pipelines.explain import explain_item, explain_step
from tidal.pipelines.results import current_results
from tidal.tracking.stores import open_store


def run(project: Path, **options: object) -> dict[str, tuple[str, int]]:
    """Run the project's pipeline; each step's outcome and how many items it processed."""
    report = run_pipeline(load_pipeline(project / "pipeline.hjson"), engine=InlineEngine(), **options)  # type: ignore[arg-type]
    return {step.name: (step.outcome, step.processed) for step in report.steps}


def rows(project: Path, step: str) -> list[dict[str, object]]:
    store = open_store()
    try:
        pipeline = str(project / "pipeline.hjson")
        return list(current_results(store, pipeline).results(job_id_from(store, pipeline, step=step)))
    finally:
        store.close()


def test_a_cold_run_runs_every_step_and_a_rerun_processes_nothing(project: Path) -> None:
    assert run(project) == {"measure": ("ran", 5), "double": ("ran", 3), "summary": ("ran", 2)}
    assert run(project) == {"measure": ("cached", 0), "double": ("cached", 0), "summary": ("cached", 0)}
    assert sorted(row["double"] for row in rows(project, "double")) == [2, 8, 32]  # 1x1, 2x2, 4x4 are square
    by_file = {row["path"]: row for row in rows(project, "summary")}
    assert by_file["a.txt"]["area.mean"] == pytest.approx((4 + 6 + 16) / 3)
    assert by_file["b.txt"]["area.count"] == 2


def test_changing_the_last_step_reruns_only_it(project: Path) -> None:
    run(project)
    edit(project / "pipeline.hjson", 'fields: ["area"]', 'fields: ["are*"]')
    assert run(project) == {"measure": ("cached", 0), "double": ("cached", 0), "summary": ("ran", 2)}


def test_editing_a_helper_the_processor_imports_reruns_that_step_and_those_after_it(project: Path) -> None:
    run(project)
    edit(project / "shapes" / "helpers.py", "return width * height", "return height * width")
    pipeline = load_pipeline(project / "pipeline.hjson")
    store = open_store()
    try:
        reasons = step_states(pipeline, store)["measure"].reasons
    finally:
        store.close()
    assert reasons == ["code of shapes.helpers changed"]
    assert run(project) == {"measure": ("ran", 5), "double": ("ran", 3), "summary": ("ran", 2)}


def test_replacing_one_input_file_reruns_only_its_items_in_every_step(project: Path) -> None:
    run(project)
    (project / "data" / "b.txt").write_text("3 3\n")
    assert run(project) == {"measure": ("ran", 1), "double": ("ran", 1), "summary": ("ran", 2)}
    assert sorted(row["double"] for row in rows(project, "double")) == [8, 18, 32]
    summary = {row["path"]: row["area.count"] for row in rows(project, "summary")}
    assert summary == {"a.txt": 3, "b.txt": 1}  # the old b.txt's items are not counted


def test_a_failed_item_is_never_a_cache_hit_and_later_steps_are_not_complete_without_it(project: Path) -> None:
    (project / "data" / "b.txt").write_text("1 1\n-5 2\n")
    assert run(project)["measure"] == ("failed", 5)
    assert run(project) == {"measure": ("failed", 1), "double": ("failed", 0), "summary": ("failed", 2)}
    (project / "data" / "b.txt").write_text("1 1\n5 2\n")  # fixed: a new partition, the old one is stale
    assert run(project) == {"measure": ("ran", 2), "double": ("ran", 1), "summary": ("ran", 2)}
    assert run(project) == {"measure": ("cached", 0), "double": ("cached", 0), "summary": ("cached", 0)}


def test_from_a_step_forces_it_and_every_step_after_it(project: Path) -> None:
    run(project)
    assert run(project, start="double") == {"measure": ("cached", 0), "double": ("ran", 3), "summary": ("cached", 0)}
    assert run(project, no_cache=True) == {"measure": ("ran", 5), "double": ("ran", 3), "summary": ("ran", 2)}


def test_explain_says_why_a_step_and_an_item_hit_or_miss(project: Path) -> None:
    pipeline = load_pipeline(project / "pipeline.hjson")
    store = open_store()
    try:
        assert "stale: never ran" in explain_step(pipeline, store, "measure")[0]
        assert "a miss" in explain_item(pipeline, store, "measure", "a.txt")[0]
        run(project)
        [line] = explain_item(pipeline, store, "measure", "a.txt@")[:1]
        assert "a hit" in line
        (project / "data" / "a.txt").write_text("7 7\n")
        assert "stale" in explain_item(pipeline, store, "measure", "a.txt@")[0]
        assert "1 of 2 partitions are new" in explain_step(pipeline, store, "measure")[0]
    finally:
        store.close()


def test_export_of_a_step_from_the_command_line(project: Path) -> None:
    from typer.testing import CliRunner

    from tidal.cli import app

    runner = CliRunner()
    ran = runner.invoke(app, ["run", "pipeline.hjson", "--quiet"])
    assert ran.exit_code == 0, ran.output
    exported = runner.invoke(app, ["results", "export", "pipeline.hjson", "--step", "summary", "-f", "jsonl",
                                   "-o", "summary.jsonl"])
    assert exported.exit_code == 0, exported.output
    lines = [json.loads(line) for line in (project / "summary.jsonl").read_text().splitlines()]
    assert [line["path"] for line in lines] == ["a.txt", "b.txt"]
    shown = runner.invoke(app, ["pipeline", "show", "pipeline.hjson"])
    assert shown.exit_code == 0 and "cached" in shown.output
