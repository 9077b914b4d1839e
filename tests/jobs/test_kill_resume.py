"""kill -9 at random moments, resume, and compare with an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobrows import job_rows
from tidal.config.job import load_config
from tidal.engines.inline import InlineEngine
from tidal.jobs.runner import run_job


def write_job(folder: Path, videos: list[Path]) -> Path:
    config = {
        "source": {"tidal.sources.VideoFrames": {"paths": [str(v) for v in videos], "width": 96,
                                                 "segment_frames": 40}},
        "processor": {"tidal.processors.DominantColors": {"k": 4}},
        "engine": {"local": {"workers": 2}},
    }
    path = folder / "job.json"
    path.write_text(json.dumps(config))
    return path


def tidal(config: Path, home: Path, *args: str) -> subprocess.Popen[bytes]:
    env = os.environ | {"TIDAL_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "tidal", "map", str(config), "--quiet", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def done_count(home: Path) -> int:
    database = home / "tidal.db"
    if not database.exists():
        return 0
    with sqlite3.connect(database, timeout=10) as db:
        try:
            return int(db.execute("SELECT COUNT(*) FROM items WHERE status = 'done'").fetchone()[0])
        except sqlite3.OperationalError:  # the schema is not there yet
            return 0


def exported(home: Path, job_id: str) -> list[dict[str, object]]:
    return job_rows(home, job_id)


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_and_duplicates_nothing(
    tmp_path: Path, bikes_mp4: Path, carphone_mp4: Path
) -> None:
    config = write_job(tmp_path, [bikes_mp4, carphone_mp4])
    [job] = load_config(config)
    reference = run_job(job, state_home=tmp_path / "reference", engine=InlineEngine())
    assert reference.exit_code == 0
    expected = exported(tmp_path / "reference", job.job_id)
    assert len(expected) == 250 + 120

    home = tmp_path / "killed"
    chooser = random.Random(20261121)
    partial_states = []
    for _ in range(4):
        process = tidal(config, home)
        before = done_count(home)
        deadline = time.monotonic() + 60
        while done_count(home) <= before and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(chooser.uniform(0.0, 0.05))  # the whole job takes well under a second on a quiet machine
        process.send_signal(signal.SIGKILL)
        process.communicate()
        partial_states.append(done_count(home))
    assert any(0 < count < len(expected) for count in partial_states), partial_states

    final = tidal(config, home)
    _, stderr = final.communicate(timeout=120)
    assert final.returncode == 0, stderr.decode()
    got = exported(home, job.job_id)
    assert len({row["key"] for row in got}) == len(got)  # no duplicates
    assert got == expected  # same keys, same values, same order


def slow_job(folder: Path, items: int = 400) -> Path:
    (folder / "slowmod.py").write_text(
        "import time\ndef slow(i):\n    time.sleep(0.05)\n    return {'i': i}\n")
    config = folder / "slow.json"
    config.write_text(json.dumps({"source": {"tidal.sources.Range": {"n": items, "per_partition": 10}},
                                  "processor": {"slowmod.slow": {}}, "imports": ["slowmod"],
                                  "engine": {"local": {"workers": 1}}}))
    return config


def wait_for_progress(home: Path) -> None:
    deadline = time.monotonic() + 60
    while done_count(home) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.slow
def test_ctrl_c_saves_the_work_and_the_same_command_resumes(tmp_path: Path) -> None:
    config = slow_job(tmp_path, 60)
    first = tidal(config, tmp_path / "home")
    wait_for_progress(tmp_path / "home")
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 130
    assert b"interrupted: results so far are saved" in stderr
    saved = done_count(tmp_path / "home")
    assert 0 < saved < 60
    with sqlite3.connect(tmp_path / "home" / "tidal.db") as db:
        assert db.execute("SELECT status FROM runs").fetchone() == ("interrupted",)
    second = tidal(config, tmp_path / "home")
    _, stderr = second.communicate(timeout=60)
    assert second.returncode == 0
    assert f"{60 - saved} processed in this run".encode() in stderr


def test_a_second_map_of_a_running_job_is_refused(tmp_path: Path) -> None:
    config = slow_job(tmp_path)
    first = tidal(config, tmp_path / "home")
    try:
        wait_for_progress(tmp_path / "home")
        second = tidal(config, tmp_path / "home")
        _, stderr = second.communicate(timeout=60)
        assert second.returncode == 2
        assert b"is already running" in stderr and b"resume" in stderr
    finally:
        first.kill()
        first.communicate()
