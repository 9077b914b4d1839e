"""Training tests: a small real training (an MLP on scikit-learn's bundled digits) in a fresh
TIDAL_HOME, with helpers to write variants of its config."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch", reason="tidal train needs torch: pip install 'tidal[train]'")
pytest.importorskip("sklearn", reason="the digits data ships with scikit-learn: pip install 'tidal[train]'")

from tidal.config.files import read_config_file
from tidal.tracking.store import Store
from tidal.tracking.stores import open_store

TINY = Path(__file__).parent / "tiny.hjson"

WriteConfig = Callable[..., Path]


@pytest.fixture
def tidal_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("TIDAL_HOME", str(home))
    monkeypatch.delenv("TIDAL_TRACKING_URI", raising=False)
    monkeypatch.delenv("TIDAL_ARTIFACTS", raising=False)
    return home


@pytest.fixture
def store(tidal_home: Path) -> Iterator[Store]:
    opened = open_store()
    yield opened
    opened.close()


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """``write_config(cycle0_changes, cycle1_changes, ...)``: tiny.hjson's cycles with keys replaced
    (a key set to None is removed), written as JSON; fewer arguments keep fewer cycles."""

    def write(*changes: dict[str, Any], name: str = "train.json") -> Path:
        cycles = read_config_file(TINY)[: max(1, len(changes))]
        for cycle, change in zip(cycles, changes, strict=False):
            cycle.update(change)
            for key in [key for key, value in change.items() if value is None]:
                del cycle[key]
        path = tmp_path / name
        path.write_text(json.dumps(cycles))
        return path

    return write


def wait_for_checkpoint(home: Path, train_id: str, process: subprocess.Popen[str], seconds: float) -> None:
    """Until the training driven by ``process`` (TIDAL_HOME ``home``) has stored a checkpoint the
    store lists for ``train_id``; fails if it exits first or ``seconds`` pass."""
    from tidal.train import checkpoint as checkpoints

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        if any((home / "artifacts").rglob("step-*.pt")):  # the store exists (and is migrated) by then
            store = open_store(f"sqlite:///{home / 'tidal.db'}")
            try:
                if checkpoints.candidates(store, train_id):
                    return
            finally:
                store.close()
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint appeared; the training exited with {process.poll()}: "
                         f"{process.stderr.read() if process.stderr and process.poll() is not None else ''}")
