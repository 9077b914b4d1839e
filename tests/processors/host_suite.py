"""The behaviour every way of hosting a processor must have. Mixed into one test class per way
(in this process, in the inline engine, in a local engine's worker process).

A class using it implements :meth:`ProcessorHostSuite.outcomes`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hostprocessors import logged_batches

from tidal.errors import ProcessorError
from tidal.processors.host import ProcessorSpec

HERE = Path(__file__).parent
Hosted = tuple[str | None, str | None]
"""One item's outcome as a row holds it: its result as JSON, or the error (the other is None)."""


def spec(name: str, **kwargs: Any) -> ProcessorSpec:
    """A spec of a processor in hostprocessors, importable wherever the spec is built."""
    return ProcessorSpec(f"hostprocessors.{name}", kwargs, ("hostprocessors",), (str(HERE),))


class ProcessorHostSuite:
    """Tests shared by every way of hosting a processor."""

    def outcomes(self, spec: ProcessorSpec, count: int) -> list[Hosted]:
        """Host ``spec`` over the items ``0..count-1`` (in batches of its batch size), stop it,
        and return each item's outcome in order; a setup failure raises ProcessorError."""
        raise NotImplementedError

    def test_setup_failure_names_the_processor_and_where(self) -> None:
        with pytest.raises(ProcessorError) as raised:
            self.outcomes(spec("BrokenSetup"), 3)
        message = str(raised.value)
        assert "hostprocessors.BrokenSetup" in message and "BrokenSetup.setup()" in message
        assert "RuntimeError: weights file missing" in message and "hostprocessors.py" in message

    def test_bisection_isolates_one_bad_item_in_a_batch_of_16(self, tmp_path: Path) -> None:
        log = tmp_path / "calls.log"
        found = self.outcomes(spec("Picky", refuse=[5], log=str(log), batch_size=16), 16)
        assert [error is not None for _, error in found] == [index == 5 for index in range(16)]
        assert "ValueError: refusing items [5]" in str(found[5][1])
        assert [json.loads(result or "null") for result, _ in found if result] == [
            {"square": index * index} for index in range(16) if index != 5]
        halves = [list(range(16)), list(range(8)), list(range(4)), [4, 5, 6, 7], [4, 5], [4], [5], [6, 7],
                  list(range(8, 16))]
        assert logged_batches(log) == halves  # 9 calls, not 1 + 16: good halves stay batched

    def test_a_wrong_result_count_retries_every_item_of_the_batch_alone(self, tmp_path: Path) -> None:
        log = tmp_path / "calls.log"
        found = self.outcomes(spec("Miscount", log=str(log), batch_size=4), 4)
        assert [json.loads(result or "null") for result, _ in found] == [{"index": index} for index in range(4)]
        assert logged_batches(log) == [[0, 1, 2, 3], [0], [1], [2], [3]]

    def test_a_count_wrong_even_for_one_item_fails_it_saying_why(self) -> None:
        found = self.outcomes(spec("Miscount", honest_up_to=0, batch_size=2), 2)
        assert [result for result, _ in found] == [None, None]
        assert all("process() returned 0 results for 1 items" in str(error) for _, error in found)

    def test_dataclass_pydantic_datetime_and_numpy_results_encode_identically(self) -> None:
        plain = self.outcomes(spec("Typed", kind="plain"), 5)
        assert all(error is None for _, error in plain)
        assert json.loads(str(plain[2][0])) == {"label": "item 2", "at": "2024-05-01T12:30:15",
                                                "scores": [1.0, 1.5], "count": 2}
        for kind in ("dataclass", "pydantic", "numpy"):
            assert self.outcomes(spec("Typed", kind=kind), 5) == plain, kind

    def test_bytes_are_refused_saying_what_to_do(self) -> None:
        [(result, error)] = self.outcomes(spec("Typed", kind="bytes"), 1)
        assert result is None
        assert "bytes cannot be written as JSON" in str(error) and "base64" in str(error)
        assert "artifact" in str(error)

    def test_teardown_runs(self, tmp_path: Path) -> None:
        log = tmp_path / "calls.log"
        self.outcomes(spec("Picky", log=str(log), batch_size=2), 3)
        assert log.read_text().splitlines() == ["0 1", "2", "teardown"]
