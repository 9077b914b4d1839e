"""Engines run a job's partitions: inline (this process), local (a process pool), ray."""

from tidal.engines.base import BatchMessage, Engine, Task, Work
from tidal.engines.inline import InlineEngine
from tidal.engines.local import LocalEngine

__all__ = ["BatchMessage", "Engine", "InlineEngine", "LocalEngine", "Task", "Work"]
