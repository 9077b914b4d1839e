"""tidal: run ML models over videos and images, resumably, on all cores or a Ray cluster.

Example::

    import tidal

    [job] = tidal.load_config("examples/dominant-colors/job.hjson")
    report = tidal.run_job(job)
    print(report.done, report.failed_items)

    run = tidal.init(project="detectron2", name="inference", config={"score": 0.5})
    run.log_metric("loss", 0.3, step=10)

    @tidal.register                      # configs (tidal train, tidal map) may name it "MyNet"
    class MyNet(torch.nn.Module): ...
"""

from __future__ import annotations

from tidal import artifacts
from tidal.config.job import JobConfig, load_config
from tidal.config.registry import register
from tidal.errors import (
    ConfigError,
    DecodeError,
    JobLockedError,
    ProcessorError,
    SourceError,
    StoreError,
    TidalError,
    UsageError,
)
from tidal.jobs.runner import JobReport, run_job
from tidal.processors.base import Processor, Resources
from tidal.sources.base import Item, Partition, Source
from tidal.tracking.run import Run, current_run, init, start_run

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DecodeError",
    "Item",
    "JobConfig",
    "JobLockedError",
    "JobReport",
    "Partition",
    "Processor",
    "ProcessorError",
    "Resources",
    "Run",
    "Source",
    "SourceError",
    "StoreError",
    "TidalError",
    "UsageError",
    "artifacts",
    "current_run",
    "init",
    "load_config",
    "register",
    "run_job",
    "start_run",
]
