"""`tidal train` against the same training in a hand-written PyTorch loop, side by side.

The same model (SmallCNN), data (the digits, batches of 64), epochs, optimizer and per-epoch
evaluation; one CPU thread each (a shared machine punishes torch's spinning threads). tidal's
epochs include what it adds: tracking (metrics, images), a checkpoint saved each epoch.
Target: tidal within 1.05x of the plain loop per epoch.

Then Ray Train (``--engine ray``) with 1 and with 2 workers (one CPU each) on a Ray started for
the bench: seconds per epoch and the whole call with the worker group's start. On a 2-core machine
expect little gain, or a loss (the model is tiny: each step's gradient all-reduce costs about what
half a batch saves); the figures are for honesty, not a goal.

    python bench/train.py [--epochs 8] [--no-ray]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from tidal.tracking.store import Store
from tidal.tracking.stores import open_store
from tidal.train.datasets import Digits
from tidal.train.models import SmallCNN
from tidal.train.trainer import fit


def plain_loop(epochs: int) -> list[float]:
    """The loop one writes by hand; returns the time at each epoch's end."""
    torch.manual_seed(0)
    data = Digits(batch_size=64, val_fraction=0.2)
    model = SmallCNN(num_outputs=10)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    loss_function = torch.nn.CrossEntropyLoss()
    train = torch.utils.data.DataLoader(data.train, batch_size=64, shuffle=True)
    validation = torch.utils.data.DataLoader(data.validation, batch_size=64)
    ends = []
    for _ in range(epochs):
        model.train()
        for inputs, targets in train:
            loss = loss_function(model(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()
        model.eval()
        correct = 0
        with torch.no_grad():
            for inputs, targets in validation:
                correct += int((model(inputs).argmax(1) == targets).sum())
        ends.append(time.perf_counter())
    return ends


def tidal_train(epochs: int, folder: Path) -> tuple[list[float], list[float]]:
    """The same in `tidal train`; returns the epoch ends (from the run's metrics) and checkpoint times."""
    config = write_config(epochs, folder)
    store = open_store(f"sqlite:///{folder / 'tidal.db'}")
    try:
        report = fit(config, store=store)
        ends = epoch_ends(store, report.run_id)
    finally:
        store.close()
    return ends, report.checkpoint_seconds


def ray_train(epochs: int, folder: Path, workers: int) -> tuple[list[float], float]:
    """The same on Ray Train with ``workers`` workers; the epoch ends and the whole call's seconds."""
    from tidal.train.ray import RayTrain

    started = time.perf_counter()
    report = RayTrain(workers=workers).fit(write_config(epochs, folder), store_uri=f"sqlite:///{folder / 'tidal.db'}")
    seconds = time.perf_counter() - started
    store = open_store(f"sqlite:///{folder / 'tidal.db'}")
    try:
        return epoch_ends(store, report.run_id), seconds
    finally:
        store.close()


def epoch_ends(store: Store, run_id: str) -> list[float]:
    return [stamp for _, _, stamp in store.metrics(run_id, ["val/loss"])["val/loss"]]


def write_config(epochs: int, folder: Path) -> Path:
    config = folder / "bench.json"
    config.write_text(json.dumps({
        "datasets": {"tidal.train.datasets.Digits": {"batch_size": 64, "val_fraction": 0.2}},
        "model": {"tidal.train.models.SmallCNN": {"num_outputs": 10}},
        "loss": {"torch.nn.CrossEntropyLoss": {}},
        "metrics": [{"tidal.train.metrics.Accuracy": {}}],
        "optimizer": {"torch.optim.Adam": {"lr": 0.001}},
        "train_loop": {"tidal.train.Loop": {"epochs": epochs, "threads": 1}},
    }))
    return config


def per_epoch(ends: list[float]) -> float:
    """Seconds per epoch after the first (which pays for warming up)."""
    return (ends[-1] - ends[0]) / (len(ends) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--no-ray", action="store_true", help="skip Ray Train (1 and 2 workers)")
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        os.environ["TIDAL_HOME"] = folder
        plain = per_epoch(plain_loop(arguments.epochs))
        ends, saves = tidal_train(arguments.epochs, Path(folder))
        tidal = per_epoch(ends)
    print(f"{'':24}{'seconds/epoch':>14}")
    print(f"{'plain PyTorch loop':24}{plain:14.3f}")
    print(f"{'tidal train (tracked)':24}{tidal:14.3f}   ratio {tidal / plain:.3f} (target <= 1.05)")
    print(f"checkpoint save per epoch: median {statistics.median(saves) * 1000:.1f} ms, "
          f"max {max(saves) * 1000:.1f} ms ({len(saves)} saves)")
    if not arguments.no_ray:
        ray_side_by_side(arguments.epochs, tidal)
    sys.stdout.flush()


def ray_side_by_side(epochs: int, alone: float) -> None:
    """Ray Train with 1 and 2 workers on a Ray of 2 CPUs started here, beside `tidal train` alone."""
    import ray

    os.environ.update({"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"})
    ray.init(address="local", _node_ip_address="127.0.0.1", num_cpus=2, include_dashboard=False,
             logging_level="ERROR", configure_logging=False)
    try:
        figures = {}
        for workers in (1, 2):
            with tempfile.TemporaryDirectory() as folder:
                os.environ["TIDAL_HOME"] = folder
                ends, seconds = ray_train(epochs, Path(folder), workers)
                figures[workers] = (per_epoch(ends), seconds)
    finally:
        ray.shutdown()
    print(f"{'':24}{'seconds/epoch':>14}{'whole call (s)':>16}")
    for workers, (epoch, seconds) in figures.items():
        print(f"{f'Ray Train, {workers} worker(s)':24}{epoch:14.3f}{seconds:16.1f}   "
              f"{epoch / alone:.2f}x tidal train alone")
    print(f"2 workers against 1: {figures[2][0] / figures[1][0]:.2f}x the seconds per epoch")


if __name__ == "__main__":
    main()
