"""A step in its own virtual environment: built once (uv or pip), reused by another pipeline, rows as JSON."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from shapes_project import edit

from tidal.engines.inline import InlineEngine
from tidal.errors import PipelineError
from tidal.pipelines import load_pipeline, run_pipeline


@pytest.mark.slow
def test_a_step_runs_in_its_environment_and_a_second_pipeline_reuses_it(project: Path) -> None:
    edit(project / "shapes" / "measure.py", 'return [{"double": 2 * item.data["area"]} for item in batch]',
         'return [{"double": 2 * item.data["area"], "python": __import__("sys").prefix} for item in batch]')
    (project / "requirements.txt").write_text("# nothing to install: the layer over tidal is enough\n")
    edit(project / "pipeline.hjson", 'where: "square"}', 'where: "square", env: {requirements: "requirements.txt"}}')
    report = run_pipeline(load_pipeline(project / "pipeline.hjson"), engine=InlineEngine())
    assert {step.name: step.outcome for step in report.steps} == {"measure": "ran", "double": "ran", "summary": "ran"}
    from tidal.tracking.stores import open_store

    store = open_store()
    try:
        [double] = [step for step in report.steps if step.name == "double"]
        prefixes = {row["python"] for row in store.results(double.job_id)}
    finally:
        store.close()
    [prefix] = prefixes
    assert "/envs/" in prefix  # the processor ran in the step's environment, not in tidal's
    other = (project / "pipeline.hjson").read_text().replace('fields: ["area"]', "fields: []")
    (project / "other.hjson").write_text(other)
    started = time.monotonic()
    from tidal.pipelines.environment import Environment

    [step] = [s for s in load_pipeline(project / "other.hjson").steps.values() if s.env is not None]
    assert step.env is not None
    Environment.ensure(step.env)
    assert time.monotonic() - started < 5.0  # found, not built again (building one takes 20 s or more)


@pytest.mark.slow
def test_a_failing_install_fails_before_any_item_with_the_installers_message(project: Path) -> None:
    edit(project / "pipeline.hjson", 'where: "square"}', 'where: "square", env: {pip: ["./no-such-folder"]}}')
    with pytest.raises(PipelineError, match="no-such-folder") as caught:
        run_pipeline(load_pipeline(project / "pipeline.hjson"), engine=InlineEngine())
    assert "no item was processed" in str(caught.value)
    from tidal.tracking.stores import open_store

    store = open_store()
    try:
        assert store.list_jobs() == []  # not even the steps before it ran
    finally:
        store.close()
