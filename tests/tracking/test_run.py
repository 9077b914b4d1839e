"""The Run API as a user's script uses it: real processes, a real git repository, kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from liveserver import wait_for
from tidal.errors import RunNotFound, UsageError
from tidal.tracking.run import start_run
from tidal.tracking.store import Store
from tidal.tracking.stores import open_store


def run_script(folder: Path, home: Path, body: str) -> subprocess.CompletedProcess[str]:
    script = folder / "train.py"
    script.write_text("import tidal.tracking.run as tracking\n" + textwrap.dedent(body))
    env = os.environ | {"TIDAL_HOME": str(home)}
    env.pop("TIDAL_TRACKING_URI", None)
    return subprocess.run([sys.executable, str(script), "--lr", "0.1"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120)


def only_run(home: Path) -> tuple[Store, dict[str, object]]:
    store = open_store(None, home=home)
    [run] = store.list_runs()
    return store, store.get_run(str(run["id"]))


def git_repo(folder: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)
    git("init", "-q", "-b", "main")
    (folder / "model.py").write_text("depth = 50\n")
    git("add", "model.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    git("remote", "add", "origin", "https://user:ghp_secret0123@github.com/org/repo.git")
    (folder / "model.py").write_text("depth = 101\n")


def test_a_script_records_everything(tmp_path: Path) -> None:
    git_repo(tmp_path)
    done = run_script(tmp_path, tmp_path / "home", """
        run = tracking.init(project="detectron2", name="inference", config={"model": "R50"})
        run.log_params({"score_threshold": 0.5})
        for step in range(3):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_metric("loss", float("nan"), step=3)
        print("inference done")
    """)
    assert done.returncode == 0, done.stderr
    assert "inference done" in done.stdout  # still printed to the console
    store, run = only_run(tmp_path / "home")
    assert run["status"] == "completed" and run["ended_at"]
    assert run["config"] == {"model": "R50"} and run["params"] == {"score_threshold": 0.5}
    assert run["argv"][1:] == ["--lr", "0.1"]
    git = run["git"]
    assert isinstance(git, dict) and git["branch"] == "main" and git["dirty"]
    assert "+depth = 101" in git["diff"]
    assert git["remote"] == "https://github.com/org/repo.git"  # no credentials in the store
    environment = run["environment"]
    assert isinstance(environment, dict) and any(p.startswith("numpy==") for p in environment["packages"])
    points = store.metrics(str(run["id"]))["loss"]
    assert [p[1] for p in points[:3]] == [1.0, 0.5, 1 / 3] and np.isnan(points[3][1])
    assert "inference done" in "".join(log["text"] for log in store.logs(str(run["id"])))


def test_an_uncaught_exception_fails_the_run_with_its_traceback(tmp_path: Path) -> None:
    done = run_script(tmp_path, tmp_path / "home", """
        run = tracking.init(project="p")
        raise RuntimeError("CUDA out of memory")
    """)
    assert done.returncode == 1
    _, run = only_run(tmp_path / "home")
    assert run["status"] == "failed"
    assert "RuntimeError: CUDA out of memory" in str(run["error"])


@pytest.mark.slow
def test_kill_9_loses_at_most_about_a_second_and_the_run_is_lost(tmp_path: Path) -> None:
    script = tmp_path / "loop.py"
    script.write_text(textwrap.dedent("""
        import pathlib, sys, time, tidal.tracking.run as tracking
        run = tracking.init(project="p", capture_output=False)
        step = 0
        while True:
            run.log_metric("step_time", time.time(), step=step)
            step += 1
            if step == 100:
                pathlib.Path(sys.argv[1]).touch()  # a second of logging behind it
            time.sleep(0.01)
    """))
    env = os.environ | {"TIDAL_HOME": str(tmp_path / "home")}
    logging = tmp_path / "logging"
    process = subprocess.Popen([sys.executable, str(script), str(logging)], env=env)
    wait_for(lambda: logging.exists() or process.poll() is not None, 120, "the script never started logging")
    assert process.poll() is None, "the script died before it was killed"
    time.sleep(2.0)
    killed_at = time.time()
    process.send_signal(signal.SIGKILL)
    process.wait()
    store, run = only_run(tmp_path / "home")
    assert run["status"] == "lost"
    last_logged = max(value for _, value, _ in store.metrics(str(run["id"]))["step_time"])
    assert killed_at - last_logged < 1.5


def test_bad_input_is_refused_at_the_call(tmp_path: Path) -> None:
    store = open_store(None, home=tmp_path)
    with start_run(project="p", store=store) as run:
        with pytest.raises(UsageError, match="'accuracy': 'high' is not a number"):
            run.log_metric("accuracy", "high")  # type: ignore[arg-type]
        with pytest.raises(UsageError, match="is not an image"):
            run.log_image("raw", {"not": "an image"})
        with pytest.raises(UsageError, match="does not exist"):
            run.log_artifact(tmp_path / "missing.pkl")
        run.log_metric("ok", 1.0)
    assert store.metrics(run.id)["ok"][0][1] == 1.0
    assert store.get_run(run.id)["status"] == "completed"


def test_images_artifacts_tags_and_nested_runs(tmp_path: Path) -> None:
    from PIL import Image

    store = open_store(None, home=tmp_path)
    weights = tmp_path / "model_final.pkl"
    weights.write_bytes(b"w" * 5000)
    picture = tmp_path / "raw.png"
    Image.new("RGB", (20, 10), "red").save(picture)
    with start_run(project="p", name="pipeline", store=store) as outer:
        with start_run(project="p", name="step", store=store) as inner:
            inner.log_image("raw", picture, step=1)
            inner.log_image("inferred", np.zeros((10, 20, 3), dtype=np.uint8), step=1)
            inner.log_artifact(weights)
            inner.set_tags(["baseline"])
        with pytest.raises(ValueError), start_run(project="p", name="broken", store=store):
            raise ValueError("bad step")
    assert store.get_run(inner.id)["parent_id"] == outer.id
    images = store.images(inner.id)
    assert [(i["key"], i["step"], i["width"], i["height"]) for i in images] == [
        ("raw", 1, 20, 10), ("inferred", 1, 20, 10)]
    artifact = next(a for a in store.artifacts(inner.id) if a["name"] == "model_final.pkl")
    assert artifact["size"] == 5000
    assert store.get_run(inner.id)["tags"] == {"baseline": ""}
    [broken] = [r for r in store.list_runs(project="p") if r["name"] == "broken"]
    assert broken["status"] == "failed" and "ValueError: bad step" in broken["error"]


def test_resume_continues_a_preempted_run_with_the_same_id(tmp_path: Path) -> None:
    first = run_script(tmp_path, tmp_path / "home", """
        import os
        run = tracking.init(project="long", capture_output=False)
        for step in range(5):
            run.log_metric("loss", step, step=step)
        run.flush()
        print(run.id)
        os._exit(0)  # preempted: no chance to finish
    """)
    run_id = first.stdout.strip()
    second = run_script(tmp_path, tmp_path / "home", f"""
        run = tracking.init(resume={run_id!r})
        assert run.id == {run_id!r} and run.project == "long"
        for step in range(run.last_step + 1, 10):
            run.log_metric("loss", step, step=step)
    """)
    assert second.returncode == 0, second.stderr
    store, run = only_run(tmp_path / "home")
    assert run["id"] == run_id and run["status"] == "completed" and run["error"] is None
    assert [step for step, _, _ in store.metrics(run_id)["loss"]] == list(range(10))


def test_resuming_an_unknown_run_says_how_to_find_one(tmp_path: Path) -> None:
    store = open_store(None, home=tmp_path)
    with pytest.raises(RunNotFound, match=r"no run 'abc123' to resume .* `tidal runs ls`"), \
            start_run(store=store, resume="abc123"):
        pass
    with pytest.raises(UsageError, match=r"run id '\.\./x' is not valid"), start_run(store=store, resume="../x"):
        pass
