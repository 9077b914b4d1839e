"""A pipeline run as the dashboard draws it: boxes and edges placed for an SVG, and a row per step.

Drawn on the server (the page needs no script and no CDN): each step a box in the column of its
depth (:func:`tidal.pipelines.graph.layout`), each ``from`` an edge from the box it reads. What
a box says comes from the pipeline's run (:mod:`tidal.pipelines.record`: the verdict, reasons,
cache hits and outcome of that execution) and, for progress, from the step's job as it is now.

Example::

    view = pipeline_view(store.get_run(run_id), {job_id: store.get_job(job_id) | {"progress": ...}})
    view.width, [(step.name, step.x, step.y, step.status) for step in view.steps]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tidal.pipelines.graph import layout

BOX_WIDTH = 210
BOX_HEIGHT = 84
COLUMN_GAP = 64
ROW_GAP = 22
MARGIN = 8


@dataclass
class StepView:
    """One step as drawn and listed: where its box goes, its verdict and its job's progress."""

    name: str
    kind: str
    target: str
    upstream: str | None
    job_id: str | None
    verdict: dict[str, Any]
    job: dict[str, Any] | None
    x: int = 0
    y: int = 0

    @property
    def status(self) -> str:
        return str(self.verdict.get("status") or "waiting")

    @property
    def reasons(self) -> list[str]:
        return [str(reason) for reason in self.verdict.get("reasons") or []]

    @property
    def hits(self) -> str:
        """Cache hits as text: partitions reused of the current ones, and items where exact."""
        if self.kind == "source" or self.verdict.get("hit_partitions") is None:
            return ""
        text = f"{self.verdict['hit_partitions']}/{self.verdict.get('partitions', 0)} partitions"
        if self.verdict.get("hit_items") is not None:
            text += f" · {self.verdict['hit_items']:,}/{self.verdict.get('items', 0):,} items"
        return text

    @property
    def settled(self) -> str:
        """What ran in this execution, or what a source listed."""
        if self.kind == "source":
            items = self.verdict.get("items")
            listed = f"{self.verdict.get('partitions', 0)} partitions"
            return f"{listed} · {items:,} items" if items is not None else listed
        if "processed" not in self.verdict:
            return ""
        return f"{self.verdict['processed']:,} processed · {self.verdict.get('failed', 0):,} failed"


@dataclass
class PipelineView:
    """The page's drawing: steps in run order, the edges' SVG paths, the drawing's size."""

    name: str
    file: str
    steps: list[StepView]
    edges: list[str] = field(default_factory=list)
    width: int = 0
    height: int = 0
    box_width: int = BOX_WIDTH
    box_height: int = BOX_HEIGHT


def pipeline_view(run: dict[str, Any], jobs: dict[str, dict[str, Any]]) -> PipelineView:
    """The drawing of a pipeline run (``run["config"]["pipeline"]``, ``run["stats"]["steps"]``);
    ``jobs`` holds the steps' jobs found in the store, by id."""
    graph = (run.get("config") or {}).get("pipeline") or {}
    verdicts = (run.get("stats") or {}).get("steps") or {}
    steps = [_step_view(node, verdicts.get(node["name"]) or {}, jobs) for node in graph.get("steps", [])]
    places = layout({step.name: step.upstream for step in steps})
    for step in steps:
        column, row = places[step.name]
        step.x = MARGIN + column * (BOX_WIDTH + COLUMN_GAP)
        step.y = MARGIN + row * (BOX_HEIGHT + ROW_GAP)
    by_name = {step.name: step for step in steps}
    edges = [_edge(by_name[step.upstream], step) for step in steps if step.upstream in by_name]
    columns = 1 + max((column for column, _ in places.values()), default=0)
    rows = 1 + max((row for _, row in places.values()), default=0)
    return PipelineView(str(graph.get("name") or run.get("name") or ""), str(graph.get("file") or ""), steps, edges,
                        2 * MARGIN + columns * BOX_WIDTH + (columns - 1) * COLUMN_GAP,
                        2 * MARGIN + rows * BOX_HEIGHT + (rows - 1) * ROW_GAP)


def _step_view(node: dict[str, Any], verdict: dict[str, Any], jobs: dict[str, dict[str, Any]]) -> StepView:
    job_id = node.get("job_id")
    return StepView(str(node["name"]), str(node.get("kind") or "map"), str(node.get("target") or ""),
                    node.get("from"), job_id, verdict, jobs.get(job_id) if job_id else None)


def _edge(upstream: StepView, step: StepView) -> str:
    """A cubic curve from the right middle of the box read to the left middle of the reader's."""
    x1, y1 = upstream.x + BOX_WIDTH, upstream.y + BOX_HEIGHT // 2
    x2, y2 = step.x, step.y + BOX_HEIGHT // 2
    bend = COLUMN_GAP // 2
    return f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2 - 6},{y2}"


def pipeline_summaries(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per pipeline (name and file) from its runs, newest first: the latest run, how many
    runs, and its steps counted by status."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        graph = (run.get("config") or {}).get("pipeline") or {}
        key = (str(graph.get("name") or run.get("name") or ""), str(graph.get("file") or ""))
        if key in found:
            found[key]["runs"] += 1
            continue
        verdicts = ((run.get("stats") or {}).get("steps") or {}).values()
        counts: dict[str, int] = {}
        for verdict in verdicts:
            status = str(verdict.get("status") or "waiting")
            if status != "listed":  # a source step: nothing ran or was cached
                counts[status] = counts.get(status, 0) + 1
        found[key] = {"name": key[0], "file": key[1], "latest": run, "runs": 1, "step_counts": counts}
    return list(found.values())
