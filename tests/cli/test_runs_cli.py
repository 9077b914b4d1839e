"""``tidal runs ls / show / compare`` over runs logged by real scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def tidal(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"TIDAL_HOME": str(home), "COLUMNS": "200"}
    env.pop("TIDAL_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "tidal", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def log_runs(home: Path) -> None:
    script = (
        "import tidal.tracking.run as t\n"
        "for lr, tag in [(0.1, 'baseline'), (0.01, 'tuned')]:\n"
        "    with t.start_run(project='det', name=f'lr{lr}', tags=[tag]) as run:\n"
        "        run.log_params({'lr': lr, 'depth': 50})\n"
        "        run.log_metric('loss', lr * 3, step=1)\n"
    )
    env = os.environ | {"TIDAL_HOME": str(home)}
    env.pop("TIDAL_TRACKING_URI", None)
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)


def test_ls_show_compare(tmp_path: Path) -> None:
    log_runs(tmp_path)
    runs = json.loads(tidal(tmp_path, "runs", "ls", "--project", "det", "--json").stdout)
    assert [r["name"] for r in runs] == ["lr0.01", "lr0.1"] and {r["status"] for r in runs} == {"completed"}
    tagged = json.loads(tidal(tmp_path, "runs", "ls", "--tag", "tuned", "--json").stdout)
    assert [r["name"] for r in tagged] == ["lr0.01"]
    shown = json.loads(tidal(tmp_path, "runs", "show", runs[0]["id"], "--json").stdout)
    assert shown["params"] == {"lr": 0.01, "depth": 50} and shown["metrics"] == {"loss": 0.03}
    compared = tidal(tmp_path, "runs", "compare", runs[0]["id"], runs[1]["id"]).stdout
    assert "*lr" in compared and "*depth" not in compared and "depth" in compared


def test_unknown_run_is_a_usage_error(tmp_path: Path) -> None:
    log_runs(tmp_path)
    result = tidal(tmp_path, "runs", "show", "nope")
    assert result.returncode == 2 and "no run 'nope'" in result.stderr
