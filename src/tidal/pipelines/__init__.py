"""Pipelines: named steps reading each other's results, each item cached by what went into it.

| module | its one job |
| --- | --- |
| ``config`` | the pipeline file → validated steps (names, fields, reducers, environments) |
| ``graph`` | the steps' order; unknown names and cycles |
| ``identity`` | a step's identity: config, code (with the user's helpers), environment, inputs |
| ``state`` | each step's job, current partitions, and cached/stale verdict with reasons |
| ``runner`` | runs what is stale: map steps as ``tidal map`` jobs, reduce steps in-process |
| ``record`` | each execution as a run in the store: the graph, each step's verdict and outcome |
| ``drawing`` | a recorded run as the dashboard draws it (boxes and edges for an SVG) |
| ``environment`` | a step's own virtual environment, built once (uv or pip), content-addressed |
| ``envhost`` / ``envworker`` | the processor of such a step in worker processes, rows as JSON |

Example::

    from tidal.pipelines import load_pipeline, run_pipeline

    report = run_pipeline(load_pipeline("examples/body-measurements/pipeline.hjson"))
    print([(step.name, step.outcome) for step in report.steps], report.exit_code)
"""

from __future__ import annotations

from tidal.pipelines.config import PipelineConfig, Step, load_pipeline
from tidal.pipelines.runner import PipelineReport, StepReport, run_pipeline
from tidal.pipelines.state import StepState, step_states

__all__ = ["PipelineConfig", "PipelineReport", "Step", "StepReport", "StepState", "load_pipeline",
           "run_pipeline", "step_states"]
