"""A script's runs are written before the interpreter stops its thread pools: with artifacts on a
real S3-protocol server (moto's), ``tidal.init()`` + a normal exit keeps params, metrics, images
and artifacts, and so does a ``start_run`` block."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from s3_server import Bucket
from tidal.database import sqlite_url
from tidal.tracking.artifacts import ENDPOINT_ENV
from tidal.tracking.stores import open_store


@pytest.mark.slow
def test_s3_artifacts_init_and_a_normal_exit_keep_everything(tmp_path: Path, bucket: Bucket, s3_server: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENDPOINT_ENV, s3_server)
    artifacts = f"s3://{bucket.name}/team"
    (tmp_path / "weights.bin").write_bytes(b"w" * 5000)
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent("""
        import numpy as np, tidal
        run = tidal.init(project="s3", name="main")
        run.log_params({"lr": 0.1})
        for step in range(50):
            run.log_metric("loss", 1 / (step + 1), step=step)
        run.log_image("frame", np.zeros((8, 8, 3), np.uint8), step=1)
        run.log_artifact("weights.bin")
        with tidal.start_run(project="s3", name="block") as block:
            block.log_artifact("weights.bin", "copy.bin")
    """))
    env = os.environ | {"TIDAL_HOME": str(tmp_path / "home"), "TIDAL_ARTIFACTS": artifacts}
    env.pop("TIDAL_TRACKING_URI", None)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    store = open_store(sqlite_url(tmp_path / "home"), home=tmp_path / "home", artifacts=artifacts)
    runs = {run["name"]: store.get_run(str(run["id"])) for run in store.list_runs(project="s3")}
    main, block = runs["main"], runs["block"]
    assert main["status"] == block["status"] == "completed" and main["params"] == {"lr": 0.1}
    assert len(store.metrics(str(main["id"]))["loss"]) == 50 and len(store.images(str(main["id"]))) == 1
    sizes = {a["name"]: (a["size"], a["uri"]) for a in store.artifacts(str(main["id"]))}
    assert sizes["weights.bin"] == (5000, f"{artifacts}/{main['id']}/weights.bin")
    with store.open_artifact(str(main["id"]), "weights.bin") as file:
        assert file.read() == b"w" * 5000
    assert [a["name"] for a in store.artifacts(str(block["id"]))] == ["copy.bin"]
