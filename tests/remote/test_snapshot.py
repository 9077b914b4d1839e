"""The code snapshot, the resources check and the request, without a cluster."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from tidal.errors import UsageError
from tidal.remote.resources import Resources, shortfall
from tidal.remote.snapshot import extract, take_snapshot
from tidal.remote.spec import RemoteSpec, read_requirements


def make_project(folder: Path) -> Path:
    (folder / "data").mkdir(parents=True)
    (folder / "train.py").write_text("print('train')\n")
    (folder / "lib").mkdir()
    (folder / "lib" / "model.py").write_text("DEPTH = 50\n")
    (folder / "data" / "big.bin").write_bytes(b"\0" * 300_000)
    (folder / "notes.log").write_text("ignored\n")
    (folder / ".gitignore").write_text("data/\n*.log\n")
    return folder


@pytest.mark.parametrize("with_git", [True, False], ids=["git", "plain-folder"])
def test_a_snapshot_leaves_out_what_gitignore_names(tmp_path: Path, with_git: bool) -> None:
    folder = make_project(tmp_path / "project")
    if with_git:
        subprocess.run(["git", "init", "-q", str(folder)], check=True)
    snapshot = take_snapshot(folder, max_bytes=100_000)
    assert snapshot.files == [".gitignore", "lib/model.py", "train.py"]
    archive = snapshot.write_zip(tmp_path / "code.zip")
    assert sorted(zipfile.ZipFile(archive).namelist()) == snapshot.files
    assert snapshot.write_zip(tmp_path / "again.zip").read_bytes() == archive.read_bytes()  # deterministic
    assert (extract(archive, tmp_path / "out") / "lib" / "model.py").read_text() == "DEPTH = 50\n"


def test_a_working_directory_over_the_limit_is_refused_naming_its_largest_files(tmp_path: Path) -> None:
    folder = make_project(tmp_path / "project")
    (folder / "weights.pt").write_bytes(b"\1" * 200_000)
    with pytest.raises(UsageError, match=r"holds 195\.\d KiB to send, over the limit of 97\.7 KiB; the largest files: "
                                         r"weights\.pt \(195\.3 KiB\).*--max-size"):
        take_snapshot(folder, max_bytes=100_000)


def test_a_zip_reaching_outside_its_folder_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as evil:
        evil.writestr("../escaped.py", "print('no')")
    with pytest.raises(UsageError, match="outside its folder"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.py").exists()


def test_the_reason_a_run_waits_names_what_is_missing() -> None:
    assert shortfall(Resources(cpus=1, gpus=1), Resources(cpus=8, gpus=0)) == "needs 1 GPU, cluster has 0 free"
    assert shortfall(Resources(cpus=4, gpus=0.25), Resources(cpus=2, gpus=0.5)) == "needs 4 CPUs, cluster has 2 free"
    assert shortfall(Resources(cpus=1, gpus=0.5), Resources(cpus=1, gpus=0.5)) is None
    with pytest.raises(UsageError, match="gpus = -1: a resource cannot be negative"):
        Resources(gpus=-1)


def test_the_request_becomes_a_ray_runtime_env(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# pinned\nnumpy==2.2.6  # arrays\n\n--extra-index-url https://example.org/simple\n")
    spec = RemoteSpec("train.py", ["--lr", "0.01 x"], gpus=1, requirements=read_requirements(requirements),
                      installer="uv", env={"A": "1"})
    assert spec.entrypoint() == "python train.py --lr '0.01 x'"
    assert spec.runtime_env("/tmp/code", {"TIDAL_RUN_ID": "r1"}) == {
        "working_dir": "/tmp/code", "env_vars": {"PYTHONUNBUFFERED": "1", "A": "1", "TIDAL_RUN_ID": "r1"},
        "uv": {"packages": ["numpy==2.2.6", "--extra-index-url https://example.org/simple"]}}
    assert RemoteSpec.from_json(spec.to_json()) == spec
    with pytest.raises(UsageError, match="Ray cannot install packages into a container image"):
        RemoteSpec("train.py", image="detectron2:v3", requirements=["torch"])
    with pytest.raises(UsageError, match="cannot read the requirements file"):
        read_requirements(tmp_path / "missing.txt")
