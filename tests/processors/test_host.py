"""The processor host, hosted three ways: in this process, in the inline engine, in a local
engine's worker process (a spawned interpreter that receives the spec pickled)."""

from __future__ import annotations

import logging

import pytest
from host_suite import Hosted, ProcessorHostSuite, spec

from tidal.engines.base import Engine, Task, Work
from tidal.engines.inline import InlineEngine
from tidal.engines.local import LocalEngine
from tidal.errors import ConfigError, ProcessorError
from tidal.processors.host import ProcessorHost, ProcessorSpec, encode_json
from tidal.settings import DEFAULT_BATCH_SIZE
from tidal.sources.base import Item
from tidal.sources.range import Range


class TestInProcessHost(ProcessorHostSuite):
    def outcomes(self, spec: ProcessorSpec, count: int) -> list[Hosted]:
        items = [Item(f"range:{index}", index, {"index": index}) for index in range(count)]
        with ProcessorHost(spec) as host:
            size = host.batch_size
            batches = [items[start:start + size] for start in range(0, count, size)]
            outcomes = [outcome for batch in batches for outcome in host.process(batch)]
        return [self._encoded(outcome.result) if outcome.error is None else (None, outcome.error)
                for outcome in outcomes]

    @staticmethod
    def _encoded(result: object) -> Hosted:
        try:
            return encode_json(result), None
        except TypeError as error:
            return None, str(error)


class EngineHosting(ProcessorHostSuite):
    """The host as an engine runs it: one partition of ``count`` items, rows back."""

    def engine(self) -> Engine:
        raise NotImplementedError

    def outcomes(self, spec: ProcessorSpec, count: int) -> list[Hosted]:
        source = Range(count, per_partition=count)
        tasks = [Task(partition) for partition in source.partitions()]
        rows = [row for message in self.engine().run(Work("host-suite", source, spec), tasks) for row in message.rows]
        rows.sort(key=lambda row: int(row.key.split(":")[1]))
        return [(row.result, row.error) for row in rows]


class TestHostInInlineEngine(EngineHosting):
    def engine(self) -> Engine:
        return InlineEngine()


class TestHostInLocalWorker(EngineHosting):
    def engine(self) -> Engine:
        return LocalEngine(workers=1)


def test_batch_size_is_the_processors_else_the_one_default() -> None:
    with ProcessorHost(spec("Picky", batch_size=3)) as host:
        assert host.batch_size == 3
    undeclared = ProcessorSpec("tidal.processors.noop.NoOp", {"batch_size": 0})
    with ProcessorHost(undeclared) as host:
        assert host.batch_size == DEFAULT_BATCH_SIZE


def test_a_plain_function_is_hosted_item_by_item() -> None:
    with ProcessorHost(spec("scaled", factor=3)) as host:
        outcomes = host.process([Item("a", 1), Item("b", 2)])
    assert [outcome.result for outcome in outcomes] == [{"scaled": 3}, {"scaled": 6}]


def test_build_failures_say_so_and_config_errors_stay_config_errors() -> None:
    with pytest.raises(ProcessorError, match=r"hostprocessors.Picky: setting up the processor failed while "
                       r"building it: TypeError: .*'colour'"):
        ProcessorHost(spec("Picky", colour="red")).start()
    outside = ProcessorSpec("os.system", {"command": "true"})
    with pytest.raises(ConfigError, match=r"'os\.system' is outside the allowed modules"):
        ProcessorHost(outside).start()


def test_a_failing_teardown_is_reported_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    host = ProcessorHost(spec("Picky"))
    host.start()
    host.processor.teardown = _raise  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="tidal.processors"):
        message = host.stop()
    assert message is not None and "teardown() failed: OSError: disk gone" in message
    assert message in caplog.text


def test_process_before_start_says_what_to_do() -> None:
    with pytest.raises(ProcessorError, match="call start"):
        ProcessorHost(spec("Picky")).process([Item("a", 1)])


def _raise() -> None:
    raise OSError("disk gone")
