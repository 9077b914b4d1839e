"""Range: the integers ``0..n-1``, the source the engine tests and benchmarks run on."""

from __future__ import annotations

import pytest
from source_suite import SourceSuite

from tidal.errors import ConfigError
from tidal.sources.base import Item
from tidal.sources.range import Range


class TestRange(SourceSuite):
    @pytest.fixture
    def source(self) -> Range:
        return Range(n=50, per_partition=7)


def test_items_are_the_integers_in_partitions_of_per_partition() -> None:
    source = Range(n=10, per_partition=4)
    partitions = source.partitions()
    assert [(p.id, p.size) for p in partitions] == [("range:0-3", 4), ("range:4-7", 4), ("range:8-9", 2)]
    items = [item for partition in partitions for item in source.read(partition)]
    assert all(isinstance(item, Item) for item in items)
    assert [(item.key, item.data, item.meta) for item in items] == [
        (f"range:{i}", i, {"index": i}) for i in range(10)
    ]


def test_zero_items_is_no_partition() -> None:
    assert Range(n=0).partitions() == []


@pytest.mark.parametrize("options", [{"n": -1}, {"n": 5, "per_partition": 0}])
def test_bad_options_are_config_errors(options: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        Range(**options)
