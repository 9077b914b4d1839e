"""``tidal runs ls / show / compare`` over runs logged by real scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


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


@pytest.mark.slow
def test_prefixes_columns_where_sort_and_pages(tmp_path: Path) -> None:
    log_runs(tmp_path)
    runs = json.loads(tidal(tmp_path, "runs", "ls", "--json").stdout)
    short = {run["name"]: run["id"][:8] for run in runs}
    listed = tidal(tmp_path, "runs", "ls", "--columns", "metrics.loss,params.lr", "--sort", "-metrics.loss").stdout
    assert listed.index(short["lr0.1"]) < listed.index(short["lr0.01"]) and "baseline" in listed
    assert "0.3" in listed and "0.03" in listed
    where = json.loads(tidal(tmp_path, "runs", "ls", "--where", "metrics.loss < 0.1", "--json").stdout)
    assert [run["name"] for run in where] == ["lr0.01"]
    first = json.loads(tidal(tmp_path, "runs", "ls", "--limit", "1", "--json").stdout)
    second = json.loads(tidal(tmp_path, "runs", "ls", "--limit", "1", "--offset", "1", "--json").stdout)
    assert [first[0]["name"], second[0]["name"]] == ["lr0.01", "lr0.1"]
    assert "more runs: --offset 1" in tidal(tmp_path, "runs", "ls", "--limit", "1").stdout
    shown = json.loads(tidal(tmp_path, "runs", "show", short["lr0.1"], "--json").stdout)
    assert shown["params"]["lr"] == 0.1 and shown["tags"] == {"baseline": ""}


@pytest.mark.slow
def test_compare_separates_params_metrics_and_config(tmp_path: Path) -> None:
    log_runs(tmp_path)
    ids = [run["id"][:8] for run in json.loads(tidal(tmp_path, "runs", "ls", "--json").stdout)]
    compared = tidal(tmp_path, "runs", "compare", *ids).stdout
    params, metrics = compared.index("params"), compared.index("metrics (last value)")
    assert params < compared.index("*lr") < metrics < compared.index("*loss") < compared.index("config")


def test_a_bogus_status_is_an_error_naming_the_valid_ones(tmp_path: Path) -> None:
    log_runs(tmp_path)
    result = tidal(tmp_path, "runs", "ls", "--status", "bogus")
    assert result.returncode == 2 and "use one of: running, completed, failed, interrupted, lost" in result.stderr


@pytest.mark.slow
def test_rename_note_archive_delete(tmp_path: Path) -> None:
    log_runs(tmp_path)
    runs = {run["name"]: run["id"] for run in json.loads(tidal(tmp_path, "runs", "ls", "--json").stdout)}
    assert tidal(tmp_path, "runs", "rename", runs["lr0.1"][:8], "baseline-sgd").returncode == 0
    assert tidal(tmp_path, "runs", "note", runs["lr0.1"][:8], "diverged after epoch 3").returncode == 0
    shown = tidal(tmp_path, "runs", "show", runs["lr0.1"][:8]).stdout
    assert "baseline-sgd" in shown and "diverged after epoch 3" in shown
    assert tidal(tmp_path, "runs", "archive", runs["lr0.1"]).returncode == 0
    assert [r["name"] for r in json.loads(tidal(tmp_path, "runs", "ls", "--json").stdout)] == ["lr0.01"]
    assert len(json.loads(tidal(tmp_path, "runs", "ls", "--archived", "--json").stdout)) == 2
    assert tidal(tmp_path, "runs", "delete", runs["lr0.01"][:8], "--yes").returncode == 0
    gone = tidal(tmp_path, "runs", "show", runs["lr0.01"])
    assert gone.returncode == 2 and "no run" in gone.stderr


@pytest.mark.slow
def test_export_metrics_and_get_an_artifact(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    script = ("import tidal.tracking.run as t\n"
              "with t.start_run(project='det', name='a') as run:\n"
              "    [run.log_metric('loss', 1 / (s + 1), step=s) for s in range(100)]\n"
              "    open('summary.json', 'w').write('{\"AP\": 38.2}')\n"
              "    run.log_artifact('summary.json', 'reports/summary.json')\n")
    env = os.environ | {"TIDAL_HOME": str(tmp_path)}
    env.pop("TIDAL_TRACKING_URI", None)
    (tmp_path / "work").mkdir()
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120, cwd=tmp_path / "work")
    run_id = json.loads(tidal(tmp_path, "runs", "ls", "--json").stdout)[0]["id"]
    csv_file, parquet_file = tmp_path / "m.csv", tmp_path / "m.parquet"
    assert tidal(tmp_path, "runs", "export", run_id[:8], "--metrics", "-f", "csv", "-o", str(csv_file)).returncode == 0
    lines = csv_file.read_text().splitlines()
    assert lines[0] == "key,step,value,timestamp" and len(lines) == 101 and lines[1].startswith("loss,0,1.0,")
    tidal(tmp_path, "runs", "export", run_id[:8], "-f", "parquet", "-o", str(parquet_file))
    assert pq.read_table(parquet_file).column("step").to_pylist() == list(range(100))
    got = tidal(tmp_path, "artifacts", "get", run_id[:8], "reports/summary.json", "-o", str(tmp_path))
    assert got.returncode == 0 and (tmp_path / "summary.json").read_bytes() == b'{"AP": 38.2}'
    missing = tidal(tmp_path, "artifacts", "get", run_id[:8], "nope.bin")
    assert missing.returncode == 2 and "no artifact 'nope.bin'" in missing.stderr
