"""Console capture at the file-descriptor level: whatever writes to stdout or stderr is recorded
(``logging`` set up before ``init``, subprocesses, ``os.write``) and still shown; off with a flag."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tidal.tracking.store import Store
from tidal.tracking.stores import open_store

SCRIPT = """
    import logging, os, subprocess, sys, tidal
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")  # holds sys.stderr now
    run = tidal.init(project="console"{options})
    logging.info("from logging")
    subprocess.run([sys.executable, "-c", "print('from a child')"], check=True)
    os.write(1, b"from os.write\\n")
    print("from print")
    print("isatty", sys.stdout.isatty())
"""


def run_script(folder: Path, options: str = "", *, stdout: int | None = None,
               **env: str) -> subprocess.CompletedProcess[str]:
    script = folder / "train.py"
    script.write_text(textwrap.dedent(SCRIPT.format(options=options)))
    variables = os.environ | {"TIDAL_HOME": str(folder / "home")} | env
    variables.pop("TIDAL_TRACKING_URI", None)
    pipes = {"stdout": stdout} if stdout is not None else {"stdout": subprocess.PIPE}
    return subprocess.run([sys.executable, str(script)], cwd=folder, env=variables, stderr=subprocess.PIPE,
                          text=True, timeout=120, **pipes)  # type: ignore[call-overload, no-any-return]


def recorded(folder: Path) -> dict[str, str]:
    store: Store = open_store(None, home=folder / "home")
    [run] = store.list_runs()
    text: dict[str, str] = {"stdout": "", "stderr": ""}
    for log in store.logs(str(run["id"]), limit=10_000):
        text[log["stream"]] += log["text"]
    return text


def test_everything_written_to_the_descriptors_is_recorded_and_still_shown(tmp_path: Path) -> None:
    done = run_script(tmp_path)
    assert done.returncode == 0, done.stderr
    for line in ("from a child", "from os.write", "from print", "isatty False"):
        assert line in done.stdout
    assert "INFO from logging" in done.stderr
    logs = recorded(tmp_path)
    for line in ("from a child\n", "from os.write\n", "from print\n"):
        assert line in logs["stdout"]
    assert "INFO from logging\n" in logs["stderr"]


def test_a_terminal_stays_a_terminal(tmp_path: Path) -> None:
    leader, follower = os.openpty()
    try:
        done = run_script(tmp_path, stdout=follower)
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: nothing left
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
    assert done.returncode == 0, done.stderr
    assert b"from print" in shown and b"isatty True" in shown
    logs = recorded(tmp_path)
    assert "from a child\n" in logs["stdout"] and "isatty True\n" in logs["stdout"]


@pytest.mark.parametrize(("options", "env"), [(", capture_output=False", {}), ("", {"TIDAL_CAPTURE": "off"})])
def test_capture_is_off_with_a_flag(tmp_path: Path, options: str, env: dict[str, str]) -> None:
    done = run_script(tmp_path, options, **env)
    assert done.returncode == 0, done.stderr
    assert "from print" in done.stdout
    assert recorded(tmp_path) == {"stdout": "", "stderr": ""}


def test_python_level_capture_records_only_python_streams(tmp_path: Path) -> None:
    done = run_script(tmp_path, TIDAL_CAPTURE="python")
    assert done.returncode == 0, done.stderr
    logs = recorded(tmp_path)
    assert "from print\n" in logs["stdout"] and "from os.write" not in logs["stdout"]


def test_an_unknown_capture_mode_is_a_config_error(tmp_path: Path) -> None:
    done = run_script(tmp_path, TIDAL_CAPTURE="everything")
    assert done.returncode == 1
    assert "TIDAL_CAPTURE='everything' is not a capture mode; use one of fd, python, off" in done.stderr
