"""`tidal config check` knows the three kinds of config file: jobs, pipelines and trainings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples"


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tidal", "config", "check", str(path)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("example", "says"), [
    ("dominant-colors/job.hjson", "ok: stage 0 job 1d4c33b7208f"),  # DominantColors results_version 2
    ("body-measurements/pipeline.hjson", "ok: pipeline"),
    ("train-digits/digits.hjson", "2 cycle(s)"),
])
def test_each_kind_of_example_checks(example: str, says: str) -> None:
    result = check(EXAMPLES / example)
    assert result.returncode == 0, result.stderr
    assert says in result.stdout


def test_a_misspelled_training_name_exits_2_naming_the_closest(tmp_path: Path) -> None:
    config = tmp_path / "train.hjson"
    text = (EXAMPLES / "train-digits" / "digits.hjson").read_text().replace("torch.optim.Adam", "torch.optim.Adamm")
    config.write_text(text)
    result = check(config)
    assert result.returncode == 2 and "Adam" in result.stderr, result.stderr
