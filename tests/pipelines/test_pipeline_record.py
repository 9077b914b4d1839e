"""Each pipeline execution is a run in the store (what the dashboard lists): its graph, and each
step's verdict, cache hits and outcome as that execution saw them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from shapes_project import edit

from tidal.engines.inline import InlineEngine
from tidal.errors import PipelineError
from tidal.pipelines import load_pipeline, run_pipeline
from tidal.pipelines.graph import layout
from tidal.pipelines.record import PIPELINE_KIND
from tidal.tracking.stores import open_store


def run_and_read(project: Path) -> dict[str, Any]:
    """Run the project's pipeline and read back the run it recorded."""
    report = run_pipeline(load_pipeline(project / "pipeline.hjson"), engine=InlineEngine())
    store = open_store()
    try:
        assert report.run_id is not None
        return store.get_run(report.run_id)
    finally:
        store.close()


def test_a_run_records_the_graph_and_each_steps_verdict(project: Path) -> None:
    run = run_and_read(project)
    assert (run["kind"], run["project"], run["status"], run["tags"]) == (PIPELINE_KIND, "pipelines", "completed",
                                                                         {"pipeline": "pipeline"})
    graph = run["config"]["pipeline"]
    assert graph["file"] == str((project / "pipeline.hjson").resolve())
    edges = {step["name"]: step["from"] for step in graph["steps"]}
    assert edges == {"shapes": None, "measure": "shapes", "double": "measure", "summary": "measure"}
    assert [step["job_id"] is None for step in graph["steps"]] == [True, False, False, False]
    steps = run["stats"]["steps"]
    assert steps["shapes"] == {"status": "listed", "reasons": [], "partitions": 2, "hit_partitions": None,
                               "items": 5, "hit_items": None}
    measure = steps["measure"]
    assert (measure["status"], measure["reasons"], measure["processed"], measure["hit_partitions"]) == (
        "ran", ["never ran"], 5, 0)
    assert steps["double"]["items"] is None  # "where" keeps fewer rows than it reads: no exact count
    assert steps["double"]["processed"] == 3


def test_a_rerun_records_cache_hits_and_one_replaced_file(project: Path) -> None:
    run_and_read(project)
    cached = run_and_read(project)["stats"]["steps"]
    assert {name: step["status"] for name, step in cached.items()} == {
        "shapes": "listed", "measure": "cached", "double": "cached", "summary": "cached"}
    assert (cached["measure"]["hit_partitions"], cached["measure"]["hit_items"]) == (2, 5)
    (project / "data" / "b.txt").write_text("3 3\n")
    steps = run_and_read(project)["stats"]["steps"]
    assert steps["measure"]["reasons"] == ["1 of 2 partitions are new (new or changed inputs)"]
    assert (steps["measure"]["hit_partitions"], steps["measure"]["hit_items"], steps["measure"]["processed"]) == (
        1, 3, 1)


EDITS_ITSELF = """
from pathlib import Path
from tidal import Processor

class Measure(Processor):
    fields = {"area": int, "square": bool}

    def process(self, batch):
        with open(Path(__file__), "a") as source:
            source.write("# edited while running\\n")
        return [{"area": 1, "square": True} for item in batch]
"""


def test_a_pipeline_stopped_by_an_error_is_a_failed_run_naming_it(project: Path) -> None:
    (project / "shapes" / "editing.py").write_text(EDITS_ITSELF)
    edit(project / "pipeline.hjson", '"shapes.measure.Measure"', '"shapes.editing.Measure"')
    with pytest.raises(PipelineError, match="its code changed while it ran"):
        run_pipeline(load_pipeline(project / "pipeline.hjson"), engine=InlineEngine())
    store = open_store()
    try:
        [run] = store.list_runs(tag="pipeline")
    finally:
        store.close()
    assert run["status"] == "failed" and "its code changed while it ran" in run["error"]
    steps = run["stats"]["steps"]
    assert (steps["measure"]["status"], steps["double"]["status"], steps["summary"]["status"]) == (
        "failed", "waiting", "waiting")


def test_each_pipeline_name_is_its_own_tag(project: Path) -> None:
    edit(project / "pipeline.hjson", "steps: {", 'name: "shapes-a", steps: {')
    assert run_and_read(project)["tags"] == {"pipeline": "shapes-a"}


def test_layout_puts_readers_right_of_their_step_and_branches_below() -> None:
    places = layout({"shapes": None, "measure": "shapes", "double": "measure", "summary": "measure", "b": None})
    assert places == {"shapes": (0, 0), "measure": (1, 0), "double": (2, 0), "summary": (2, 1), "b": (0, 2)}
