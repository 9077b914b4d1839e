"""Engines run a job's partitions: inline (this process), local (a process pool), ray."""

from tidal.engines.base import BatchMessage, Engine, Task, Work
from tidal.engines.inline import InlineEngine
from tidal.engines.local import LocalEngine
from tidal.engines.ray import RayEngine  # light: Ray itself is imported when a job runs

__all__ = ["BatchMessage", "Engine", "InlineEngine", "LocalEngine", "RayEngine", "Task", "Work"]
