"""Checkpoints as run artifacts: written whole or not at all, found again for ``--resume``.

A checkpoint is one ``torch.save`` file holding the model, optimizer and scheduler states, the
random states, and where the training stood (cycle, epoch, batch, step). It is written to a
temporary file and handed to the run's artifact store, which stores it under a temporary name
and renames it (local folder or S3), so a ``kill -9`` leaves either the whole checkpoint or the
previous one. Checkpoints are named by global step (``checkpoints/step-000000420.pt``) and found
again through the run's tag ``train=<training id>``.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import torch

from tidal.errors import TidalError, TrainingError
from tidal.tracking.run import Run
from tidal.tracking.store import Store

PREFIX = "checkpoints/"
FORMAT = 1


@dataclass(frozen=True)
class Checkpoint:
    """Where a checkpoint is: its run and artifact name, and the global step it was taken at."""

    run_id: str
    name: str
    step: int

    def __str__(self) -> str:
        return f"{self.run_id}/{self.name}"

    @staticmethod
    def name_for(step: int) -> str:
        return f"{PREFIX}step-{step:09d}.pt"

    @staticmethod
    def parse(reference: str) -> Checkpoint:
        """``RUN/checkpoints/step-….pt`` as given to ``--checkpoint``."""
        run_id, _, name = reference.partition("/")
        if not name.startswith(PREFIX):
            raise TrainingError(f"--checkpoint {reference!r}: expected RUN/{PREFIX}step-NNNNNNNNN.pt, "
                                "as `tidal runs show RUN` lists it")
        return Checkpoint(run_id, name, _step_of(name))


def save(run: Run, state: dict[str, Any], step: int) -> tuple[Checkpoint, float]:
    """Write ``state`` as the run's checkpoint at ``step``; returns it and the seconds it took."""
    started = time.perf_counter()
    handle, path = tempfile.mkstemp(prefix="tidal-checkpoint-", suffix=".pt")
    os.close(handle)
    try:
        torch.save({"format": FORMAT, **state}, path)
        name = Checkpoint.name_for(step)
        run.log_artifact(path, name)
        run.flush()  # stored (and recorded) before training goes on: resume must find it
    finally:
        os.unlink(path)
    return Checkpoint(run.id, name, step), time.perf_counter() - started


def candidates(store: Store, train_id: str) -> list[Checkpoint]:
    """Every checkpoint of the training, furthest first (the newest run first among equals)."""
    found = []
    for run in store.list_runs(tag=f"train={train_id}"):
        for artifact in store.artifacts(run["id"]):
            if str(artifact["name"]).startswith(PREFIX):
                found.append(Checkpoint(run["id"], artifact["name"], _step_of(artifact["name"])))
    return sorted(found, key=lambda checkpoint: -checkpoint.step)  # stable: list_runs is newest first


def load(store: Store, checkpoint: Checkpoint, fallback: Checkpoint | None, config_file: str) -> dict[str, Any]:
    """Read a checkpoint; one that cannot be read is refused, naming the previous one to use."""
    try:
        with store.open_artifact(checkpoint.run_id, checkpoint.name) as stream:
            data = stream.read()
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != FORMAT or "model" not in state:
            raise ValueError("not a tidal training checkpoint")
        return state
    except TidalError:
        raise
    except Exception as error:  # torch.load raises what its unpickler and zip reader raise
        offer = (f"; resume from the previous one with `tidal train {config_file} --resume --checkpoint {fallback}`"
                 if fallback else "; no earlier checkpoint exists: start again without --resume")
        raise TrainingError(f"checkpoint {checkpoint} cannot be read ({type(error).__name__}: {error}){offer}") \
            from error


def _step_of(name: str) -> int:
    digits = name.removeprefix(PREFIX).removeprefix("step-").removesuffix(".pt")
    try:
        return int(digits)
    except ValueError:
        raise TrainingError(f"checkpoint name {name!r} does not end in step-NNNNNNNNN.pt") from None
