"""Ray Train (``tidal train --engine ray``) on a real Ray of 2 CPUs on 127.0.0.1, started once for
this module: two workers train into one run, a worker killed is replaced from Ray's checkpoint,
and a driver killed with ``kill -9`` is resumed with ``--resume``, both reaching the metrics of
the uninterrupted training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.train.conftest import TINY, wait_for_checkpoint

from rayhost import RAY_ENVIRONMENT, local_ray
from tidal.config.files import read_config_file
from tidal.errors import ConfigError
from tidal.status import RunStatus
from tidal.tracking.stores import open_store
from tidal.train import checkpoint as checkpoints
from tidal.train.config import load_train_config
from tidal.train.ray import RayTrain
from tidal.train.trainer import TrainReport, fit

ray = pytest.importorskip("ray", reason="Ray Train's tests need Ray: pip install -e '.[ray]'")

pytestmark = pytest.mark.slow  # a Ray Train run starts its worker group in about 20 s here

NO_DROPOUT = {"model": {"tidal.train.models.MLP": {"num_inputs": 64, "num_outputs": 10, "hidden": [32]}}}
LONGER = {"train_loop": {"tidal.train.Loop": {"epochs": 6, "log_every": 2, "threads": 1}}}
CRASH_ONCE = '''
import os
import tidal.train


class CrashOnce(tidal.train.Callback):
    """Kills its worker's process at the end of an epoch, the first time only."""

    def __init__(self, marker: str, epoch: int) -> None:
        self.marker, self.epoch = marker, epoch

    def on_epoch_end(self, trainer, metrics):
        if trainer.progress.total_epochs == self.epoch and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)
'''


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """A new local Ray of 2 CPUs for the module."""
    with local_ray(2) as address:
        yield address


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny.hjson's two cycles, longer, without dropout (so one process and two workers compare)."""
    cycles = read_config_file(TINY)
    for cycle in cycles:
        cycle.update(LONGER)
    cycles[0].update(NO_DROPOUT)
    cycles[1]["train_loop"]["tidal.train.Loop"]["freeze"] = ["layers@1"]
    path = tmp_path_factory.mktemp("config") / "train.json"
    path.write_text(json.dumps(cycles))
    return path


@dataclass
class Trained:
    report: TrainReport
    home: Path


@pytest.fixture(scope="module")
def uninterrupted(ray_address: str, config: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """The training on 2 workers, once for the module, in its own TIDAL_HOME."""
    home = tmp_path_factory.mktemp("whole")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TIDAL_HOME", str(home))
        patch.delenv("TIDAL_TRACKING_URI", raising=False)
        return Trained(RayTrain(workers=2).fit(config), home)


def test_two_workers_train_the_same_steps_as_one_process(uninterrupted: Trained, config: Path,
                                                          tidal_home: Path) -> None:
    report = uninterrupted.report
    assert report.status is RunStatus.COMPLETED
    alone = fit(config)
    assert report.steps == alone.steps == 2 * 6 * 11  # 1,348 digits in batches of 128: 11 an epoch
    for key in ("val/loss", "val/accuracy"):  # the same training, its sums in another order
        assert report.metrics[key] == pytest.approx(alone.metrics[key], abs=1e-3)


def test_rank_0_records_into_the_drivers_run(uninterrupted: Trained) -> None:
    report = uninterrupted.report
    store = open_store(f"sqlite:///{uninterrupted.home / 'tidal.db'}")
    try:
        [run] = store.list_runs(project="train")
        artifacts = {artifact["name"] for artifact in store.artifacts(run["id"])}
        series = store.metrics(run["id"], ["train/loss", "val/accuracy"])
    finally:
        store.close()
    assert (run["id"], run["status"], run["tags"]["train"]) == (report.run_id, "completed", report.train_id)
    assert run["stats"]["metrics"] == report.metrics and run["stats"]["step"] == 132
    assert {"model/model.pt", "model/config.json"} <= artifacts
    assert sorted(name for name in artifacts if name.startswith("checkpoints/")) == [
        checkpoints.Checkpoint.name_for(11 * epoch) for epoch in range(1, 13)]
    assert report.checkpoint == f"{report.run_id}/{checkpoints.Checkpoint.name_for(132)}"
    assert len(series["train/loss"]) == 66 and len(series["val/accuracy"]) == 12  # every 2 steps; each epoch
    assert len(report.checkpoint_seconds) == 12


def _driver(config: Path, home: Path, address: str, *extra: str) -> subprocess.Popen[str]:
    environment = {**os.environ, **RAY_ENVIRONMENT, "TIDAL_HOME": str(home)}
    environment.pop("TIDAL_TRACKING_URI", None)
    return subprocess.Popen([sys.executable, "-m", "tidal", "train", str(config), "--engine", "ray", "--workers", "2",
                             "--address", address, *extra], env=environment, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _runs(home: Path) -> list[dict[str, Any]]:
    store = open_store(f"sqlite:///{home / 'tidal.db'}")
    try:
        return store.list_runs(project="train")
    finally:
        store.close()



def test_a_driver_killed_is_resumed_to_the_same_metrics(uninterrupted: Trained, config: Path, ray_address: str,
                                                       tmp_path: Path) -> None:
    home = tmp_path / "home"
    driver = _driver(config, home, ray_address)
    wait_for_checkpoint(home, load_train_config(config).train_id, driver, 240)
    driver.send_signal(signal.SIGKILL)
    driver.communicate(timeout=60)
    resumed = _driver(config, home, ray_address, "--resume")
    _, errors = resumed.communicate(timeout=400)
    assert resumed.returncode == 0, errors
    newest, first = _runs(home)
    assert newest["status"] == "completed"
    assert newest["tags"]["resumed_from"].startswith(first["id"] + "/checkpoints/step-")
    assert int(newest["tags"]["resumed_from"][-12:-3]) < 132  # the killed driver stopped before the end
    assert newest["stats"]["metrics"] == uninterrupted.report.metrics


def test_a_worker_killed_is_replaced_from_rays_checkpoint_in_the_same_run(
        uninterrupted: Trained, config: Path, ray_address: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "crash_once.py").write_text(CRASH_ONCE)
    crashing = tmp_path / "crashing.json"
    cycles = json.loads(config.read_text())
    cycles[0].update(imports=["crash_once"], callbacks=[
        {"crash_once.CrashOnce": {"marker": str(tmp_path / "crashed"), "epoch": 3}}])
    crashing.write_text(json.dumps(cycles))
    monkeypatch.setenv("TIDAL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TIDAL_TRACKING_URI", raising=False)
    report = RayTrain(workers=2, max_failures=1).fit(crashing)
    assert (tmp_path / "crashed").exists()  # rank 0 did die once
    assert report.status is RunStatus.COMPLETED
    [run] = _runs(tmp_path / "home")
    assert run["id"] == report.run_id and run["status"] == "completed"
    assert report.metrics == uninterrupted.report.metrics


def test_an_embedded_store_with_a_remote_cluster_is_refused(config: Path, tidal_home: Path) -> None:
    with pytest.raises(ConfigError, match="cannot reach this machine's embedded store; use a tidal server"):
        RayTrain(workers=2, address="ray://head.example:10001").fit(config)
