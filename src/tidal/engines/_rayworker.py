"""What runs inside a Ray worker of the Ray engine: one processor host, set up once per actor.

A plain class (Ray is imported only to say which node it runs on): ``tidal.engines.ray`` turns
it into an actor with the resources the config asks for. The job's
:class:`~tidal.engines.base.Work` arrives pickled, and is unpickled only after the job's import
folders are on ``sys.path``: Ray would otherwise unpickle a user's source class before this code
could tell it where the user's modules are.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from tidal.config.spec import add_import_paths
from tidal.engines.base import BatchMessage, Task, Work
from tidal.engines.partition import PartitionReader
from tidal.processors.host import ProcessorHost


class SetupFailed(NamedTuple):
    """Sent instead of a batch when the processor could not be built or set up on a worker."""

    reason: str


class PartitionWorker:
    """One Ray actor: sets the processor up in its constructor, then runs partitions on demand."""

    def __init__(self, work_pickle: bytes, import_folders: Sequence[str]) -> None:
        add_import_paths(import_folders)
        self.setup_error: str | None = None
        try:
            work: Work = pickle.loads(work_pickle)
        except Exception as error:  # reported on the first call: the driver raises it as ProcessorError
            self.setup_error = (f"a Ray worker cannot load the job ({type(error).__name__}: {error}); ship the"
                                " job's modules to the cluster with engine.ray.runtime_env (working_dir or py_modules)")
            return
        self.host = ProcessorHost(work.processor)
        try:
            self.host.start()
        except Exception as error:
            self.setup_error = str(error)
            return
        self.reader = PartitionReader(work, self.host)

    def node(self) -> str:
        """The id of the Ray node this actor runs on; the driver's first call, answered once the
        actor is placed and set up (the driver tells a node's loss from a crash with it)."""
        import ray

        return str(ray.get_runtime_context().get_node_id())

    def run(self, task: Task) -> Iterator[BatchMessage | SetupFailed]:
        """Stream the partition's batch messages (a Ray streaming generator on the driver's side)."""
        if self.setup_error is not None:
            yield SetupFailed(self.setup_error)
            return
        yield from self.reader.run(task)

    def stop(self) -> None:
        """Run the processor's teardown (the job ended normally)."""
        if self.setup_error is None:
            self.host.stop()
