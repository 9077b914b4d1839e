"""examples/train-digits: two cycles on the bundled digits reach 97 % validation accuracy."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidal.tracking.store import Store
from tidal.train.trainer import fit

EXAMPLE = Path(__file__).parents[2] / "examples" / "train-digits" / "digits.hjson"


@pytest.mark.slow
def test_the_digits_example_reaches_97_percent(store: Store) -> None:
    report = fit(EXAMPLE, store=store)
    assert report.metrics["val/accuracy"] >= 0.97
    assert report.steps == 15 * 23  # 1,438 training digits in batches of 64, 10 + 5 epochs
