"""Training for real (an MLP on the digits): cycles, freezing, tracking with no code, and the
errors a training stops with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.train.conftest import WriteConfig

from tidal.errors import ConfigError, TrainingError
from tidal.status import RunStatus
from tidal.tracking.store import Store
from tidal.train.config import load_train_config
from tidal.train.trainer import Trainer, fit


@pytest.mark.slow
def test_a_two_cycle_training_is_tracked_with_no_code(write_config: WriteConfig, store: Store) -> None:
    report = fit(write_config({}, {}), store=store)
    assert report.status is RunStatus.COMPLETED
    assert report.steps == 4 * 11  # 1,348 training digits in batches of 128, 2 + 2 epochs
    assert report.metrics["val/accuracy"] > 0.8
    run = store.get_run(report.run_id)
    assert run["kind"] == "train" and run["status"] == "completed"
    assert run["params"]["cycles.1.optimizer._target_"] == "torch.optim.SGD"
    assert run["params"]["cycles.0.optimizer.lr"] == 0.01
    metrics = store.metrics(report.run_id)
    assert [step for step, _, _ in metrics["val/accuracy"]] == [11, 22, 33, 44]  # per epoch, at the global step
    assert len(metrics["train/loss"]) == 22  # every log_every=2 steps
    assert [value for _, value, _ in metrics["cycle"]] == [0.0, 1.0]  # the phases on the charts
    assert {"lr", "train/samples_per_second", "checkpoint/seconds", "train/epoch_loss"} <= set(metrics)
    assert [phase["start_step"] for phase in run["stats"]["phases"]] == [0, 22]
    images = {image["key"] for image in store.images(report.run_id)}
    assert {"samples", "confusion/cycle0", "confusion/cycle1"} <= images
    artifacts = {artifact["name"] for artifact in store.artifacts(report.run_id)}
    assert {"model/model.pt", "model/config.json"} <= artifacts
    assert sum(name.startswith("checkpoints/") for name in artifacts) == 4
    with store.open_artifact(report.run_id, "model/config.json") as stream:
        described = json.loads(stream.read())
    assert described["train_id"] == report.train_id
    assert described["metrics"]["val/accuracy"] == report.metrics["val/accuracy"]


@pytest.mark.slow
def test_a_frozen_submodule_keeps_its_weights_and_the_optimizer_starts_fresh(
        write_config: WriteConfig, store: Store) -> None:
    trainer = Trainer(load_train_config(write_config({}, {})), store)
    seen: dict[str, object] = {}

    class Spy:  # records the model as the second cycle starts
        def on_cycle_start(self, trainer: Trainer) -> None:
            if trainer.cycle.index == 1:
                seen["frozen"] = trainer.model.layers[1].weight.detach().clone()
                seen["head"] = trainer.model.layers[4].weight.detach().clone()
                seen["optimizer"] = trainer.optimizer

    original = trainer._start_cycle

    def start_cycle(cycle: object) -> None:
        original(cycle)  # type: ignore[arg-type]
        Spy().on_cycle_start(trainer)

    trainer._start_cycle = start_cycle  # type: ignore[method-assign]
    trainer.fit()
    assert torch.equal(trainer.model.layers[1].weight, seen["frozen"])
    assert not torch.equal(trainer.model.layers[4].weight, seen["head"])
    assert isinstance(seen["optimizer"], torch.optim.SGD)
    assert not trainer.model.layers[1].weight.requires_grad


@pytest.mark.slow
def test_freezing_a_submodule_that_does_not_exist_lists_those_that_do(
        write_config: WriteConfig, store: Store) -> None:
    path = write_config({}, {"train_loop": {"tidal.train.Loop": {"epochs": 1, "freeze": ["layer@1"]}}})
    with pytest.raises(ConfigError) as raised:
        fit(path, store=store)
    message = str(raised.value)
    assert message.startswith(f"{path} cycle 1: train_loop.freeze: MLP has no submodule 'layer@1'")
    assert "did you mean 'layers@1'?" in message
    assert "its submodules: layers, layers@0, layers@1" in message


@pytest.mark.slow
def test_a_loss_that_refuses_the_shapes_names_both(write_config: WriteConfig, store: Store) -> None:
    path = write_config({"loss": {"torch.nn.BCEWithLogitsLoss": {}}})
    with pytest.raises(TrainingError) as raised:
        fit(path, store=store)
    message = str(raised.value)
    assert "outputs of shape (128, 10) (float32)" in message
    assert "targets of shape (128,) (int64)" in message
    assert "(step 0, cycle 0)" in message
    [run] = store.list_runs(project="train")
    assert run["status"] == "failed"


@pytest.mark.slow
def test_a_nan_loss_stops_the_run_naming_the_step_and_the_last_good_checkpoint(
        write_config: WriteConfig, store: Store, tmp_path: Path) -> None:
    (tmp_path / "nandigits.py").write_text(
        "from tidal.train.datasets import Digits\n\n"
        "def digits_with_a_nan() -> Digits:\n"
        "    digits = Digits(batch_size=128, val_fraction=0.25)\n"
        "    digits.train.tensors[0][:] = float('nan')  # every training image: the first step of cycle 1 fails\n"
        "    return digits\n")
    path = write_config({"imports": ["nandigits"]}, {"datasets": {"nandigits.digits_with_a_nan": {}}})
    with pytest.raises(TrainingError) as raised:
        fit(path, store=store)
    message = str(raised.value)
    [run] = store.list_runs(project="train")
    assert "the loss is nan at step 23 (cycle 1, epoch 0, batch 0)" in message
    assert f"the last good checkpoint is {run['id']}/checkpoints/step-000000022.pt" in message
    assert run["status"] == "failed"
