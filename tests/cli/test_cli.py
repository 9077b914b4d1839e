"""The ``tidal`` command end to end, as a user runs it: real videos, real files, exit codes."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest


def run(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"TIDAL_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "tidal", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def job_with_bad_input(tmp_path: Path, bikes_mp4: Path, carphone_mp4: Path) -> Path:
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(bikes_mp4.read_bytes()[: bikes_mp4.stat().st_size * 2 // 5])
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("this is not a video")
    config = tmp_path / "job.hjson"
    config.write_text(
        "{source: {\"tidal.sources.VideoFrames\": {paths: ["
        f"\"{carphone_mp4}\", \"{truncated}\", \"{not_video}\"], width: 64}}}}\n"
        "processor: {\"tidal.processors.DominantColors\": {k: 3}}\n"
        "engine: {local: {workers: 2}}}\n"
    )
    return config


def test_map_with_bad_files_goes_on_and_exits_3(tmp_path: Path, job_with_bad_input: Path) -> None:
    home = tmp_path / "home"
    first = run(home, "map", str(job_with_bad_input), "--quiet")
    assert first.returncode == 3, first.stderr
    assert "failed" in first.stderr and "--retry-failed" in first.stderr

    shown = run(home, "jobs", "show", str(job_with_bad_input), "--json")
    detail = json.loads(shown.stdout)
    assert detail["done"] >= 120  # carphone whole, plus what the truncated file gave
    errors = " ".join(f["error"] for f in detail["failures"])
    assert "notes.mp4" in errors and "truncated.mp4" in errors

    listing = run(home, "jobs", "ls")
    assert detail["id"] in listing.stdout

    again = run(home, "map", str(job_with_bad_input), "--quiet")
    assert again.returncode == 3
    assert "0 processed in this run" in again.stderr


@pytest.mark.slow
def test_exports_and_summary(tmp_path: Path, carphone_mp4: Path) -> None:
    config = tmp_path / "job.json"
    config.write_text(json.dumps({
        "source": {"tidal.sources.VideoFrames": {"paths": str(carphone_mp4), "width": 64, "every_nth": 4}},
        "processor": {"tidal.processors.DominantColors": {"k": 3}},
        "engine": {"inline": {}},
    }))
    home = tmp_path / "home"
    assert run(home, "map", str(config), "-q").returncode == 0

    parquet = tmp_path / "colors.parquet"
    assert run(home, "results", "export", str(config), "--format", "parquet", "-o", str(parquet)).returncode == 0
    table = pq.read_table(parquet).to_pylist()
    assert len(table) == 30
    assert [row["frame_index"] for row in table] == list(range(0, 120, 4))
    assert all(len(row["colors"]) == 3 and abs(sum(row["shares"]) - 1) < 1e-6 for row in table)
    assert {"key", "path", "frame_index", "time", "colors", "shares"} <= set(table[0])

    jsonl = tmp_path / "colors.jsonl"
    run(home, "results", "export", str(config), "--format", "jsonl", "-o", str(jsonl))
    assert [json.loads(line) for line in jsonl.read_text().splitlines()] == table

    csv_file = tmp_path / "colors.csv"
    run(home, "results", "export", str(config), "-f", "csv", "-o", str(csv_file))
    with csv_file.open() as stream:
        rows = list(csv.DictReader(stream))
    assert json.loads(rows[0]["colors"]) == table[0]["colors"]

    summary = run(home, "results", "summary", str(config), "--by", "video", "--format", "json")
    records = json.loads(summary.stdout)
    share = next(r for r in records if r["field"] == "shares[0]")
    assert share["group"] == str(carphone_mp4) and share["count"] == 30
    assert share["min"] <= share["p50"] <= share["max"] and share["mean"] > 1 / 3
    only_shares = run(home, "results", "summary", str(config), "--fields", "shares*", "-f", "json")
    assert {r["field"] for r in json.loads(only_shares.stdout)} == {"shares[0]", "shares[1]", "shares[2]"}
    table = run(home, "results", "summary", str(config), "--by", "video")
    assert "carphone_pristine.mp4" in table.stdout and "colors[0][0]" in table.stdout


def test_config_errors_exit_2_with_the_path(tmp_path: Path, carphone_mp4: Path) -> None:
    config = tmp_path / "job.hjson"
    config.write_text(f'{{source: {{"tidal.sources.VideoFrames": {{paths: "{carphone_mp4}"}}}}\n'
                      'processor: {"tidal.processors.DominantColors": {k: "5"}}}')
    result = run(tmp_path / "home", "map", str(config))
    assert result.returncode == 2
    assert 'processor["tidal.processors.DominantColors"].k: expected int' in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    check = run(tmp_path / "home", "config", "check", str(config))
    assert check.returncode == 2 and "expected int" in check.stderr
    config.write_text(f'{{source: {{"tidal.sources.VideoFrames": {{paths: "{carphone_mp4}"}}}}\n'
                      'processor: {"tidal.processors.DominantColors": {k: 0}}}')
    value_error = run(tmp_path / "home", "map", str(config))
    assert value_error.returncode == 2
    assert value_error.stderr.startswith(f'error: {config}: processor["tidal.processors.DominantColors"]: ')


def test_empty_glob_and_unwritable_home(tmp_path: Path, carphone_mp4: Path) -> None:
    config = tmp_path / "job.hjson"
    config.write_text('{source: {"tidal.sources.VideoFrames": {paths: "nowhere/*.mp4"}}\n'
                      'processor: {"tidal.processors.DominantColors": {}}}')
    result = run(tmp_path / "home", "map", str(config), cwd=tmp_path)
    assert result.returncode == 2 and "nowhere/*.mp4" in result.stderr

    good = tmp_path / "good.hjson"
    good.write_text(f'{{source: {{"tidal.sources.VideoFrames": {{paths: "{carphone_mp4}"}}}}\n'
                    'processor: {"tidal.processors.DominantColors": {}}}')
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run(blocker / "home", "map", str(good))
    assert result.returncode == 2
    assert "TIDAL_HOME" in result.stderr and "writable" in result.stderr


def test_config_show_prints_canonical_form(tmp_path: Path, carphone_mp4: Path) -> None:
    config = tmp_path / "job.yaml"
    config.write_text(f"source:\n  tidal.sources.VideoFrames: {{paths: '{carphone_mp4}'}}\n"
                      "processor:\n  _target_: tidal.processors.DominantColors\n")
    shown = json.loads(run(tmp_path, "config", "show", str(config)).stdout)
    assert shown["processor"] == {"_target_": "tidal.processors.DominantColors", "k": 5,
                                  "method": "fast", "seed": 0, "_version_": 2}  # its results_version
    check = run(tmp_path, "config", "check", str(config))
    assert check.returncode == 0 and shown["job_id"] in check.stdout


def test_show_of_a_config_that_never_ran_says_how_to_run_it(tmp_path: Path, carphone_mp4: Path) -> None:
    config = tmp_path / "job.hjson"
    config.write_text(f'{{source: {{"tidal.sources.VideoFrames": {{paths: "{carphone_mp4}"}}}}\n'
                      'processor: {"tidal.processors.DominantColors": {}}}')
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"source": {"tidal.sources.Range": {"n": 3}},
                                 "processor": {"tidal.processors.NoOp": {}}, "engine": {"inline": {}}}))
    assert run(tmp_path / "home", "map", str(other), "-q").returncode == 0
    shown = run(tmp_path / "home", "jobs", "show", str(config))
    assert shown.returncode == 2
    assert "has not run in this TIDAL_HOME yet" in shown.stderr and f"tidal map {config}" in shown.stderr
