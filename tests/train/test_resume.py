"""Checkpoints and resume: after ``kill -9`` or SIGTERM, ``tidal train --resume`` reaches the very
metrics of an uninterrupted run; a corrupt checkpoint is refused with the previous one offered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.train.conftest import WriteConfig, wait_for_checkpoint

from tidal.errors import TrainingError
from tidal.tracking.stores import open_store
from tidal.train import checkpoint as checkpoints
from tidal.train.config import load_train_config
from tidal.train.trainer import fit

EPOCHS = 20  # per cycle: on a quiet machine 8 epochs ended before the kill that follows the first checkpoint
LONGER = {"train_loop": {"tidal.train.Loop": {"epochs": EPOCHS, "log_every": 2, "threads": 1}}}


def _train(config: Path, home: Path, *extra: str) -> subprocess.Popen[str]:
    environment = {**os.environ, "TIDAL_HOME": str(home)}
    environment.pop("TIDAL_TRACKING_URI", None)
    return subprocess.Popen([sys.executable, "-m", "tidal", "train", str(config), *extra], env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)



def _final_metrics(home: Path) -> dict[str, float]:
    store = open_store(f"sqlite:///{home / 'tidal.db'}")
    try:
        [run, *_] = store.list_runs(project="train")
        assert run["status"] == "completed", run
        return dict(run["stats"]["metrics"])
    finally:
        store.close()


def _interrupted_then_resumed(config: Path, home: Path, how: int) -> subprocess.CompletedProcess[str]:
    train_id = load_train_config(config).train_id
    process = _train(config, home)
    wait_for_checkpoint(home, train_id, process, 120)
    process.send_signal(how)
    process.communicate(timeout=120)
    if how == signal.SIGTERM:
        assert process.returncode == 143
    resumed = _train(config, home, "--resume")
    out, err = resumed.communicate(timeout=300)
    return subprocess.CompletedProcess(resumed.args, resumed.returncode, out, err)


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_resume_reaches_the_metrics_of_an_uninterrupted_run(write_config: WriteConfig, tmp_path: Path,
                                                            how: int) -> None:
    config = write_config(LONGER, LONGER)
    whole = _train(config, tmp_path / "whole")
    _, errors = whole.communicate(timeout=300)
    assert whole.returncode == 0, errors
    resumed = _interrupted_then_resumed(config, tmp_path / "resumed", how)
    assert resumed.returncode == 0, resumed.stderr
    assert _final_metrics(tmp_path / "resumed") == _final_metrics(tmp_path / "whole")
    store = open_store(f"sqlite:///{tmp_path / 'resumed' / 'tidal.db'}")
    try:
        newest, first = store.list_runs(project="train")
        assert newest["tags"]["resumed_from"].startswith(first["id"] + "/checkpoints/step-")
        assert int(newest["tags"]["resumed_from"][-12:-3]) < 2 * EPOCHS * 11  # it stopped before the end
        assert first["status"] == ("interrupted" if how == signal.SIGTERM else "lost")  # kill -9: no goodbye
    finally:
        store.close()


@pytest.mark.slow
def test_a_corrupt_checkpoint_is_refused_and_the_previous_one_offered(
        write_config: WriteConfig, store: object, tidal_home: Path) -> None:
    config = write_config({}, {})
    report = fit(config, store=store)  # type: ignore[arg-type]
    latest, previous, *_ = checkpoints.candidates(store, report.train_id)  # type: ignore[arg-type]
    [path] = (tidal_home / "artifacts").rglob(latest.name.rsplit("/", 1)[-1])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a torn write
    with pytest.raises(TrainingError) as raised:
        fit(config, store=store, resume=True)  # type: ignore[arg-type]
    message = str(raised.value)
    assert f"checkpoint {latest} cannot be read" in message
    assert f"`tidal train {config} --resume --checkpoint {previous}`" in message
    resumed = fit(config, store=store, checkpoint=str(previous))  # type: ignore[arg-type]
    assert resumed.resumed_from == str(previous)
    assert resumed.metrics == report.metrics
