"""What a run is given is checked at the call (a clear UsageError there) or made storable there;
the writer thread never holds a record that kills it, and keeps storing what comes after."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tidal.errors import ArtifactNameError, TidalError, UsageError
from tidal.tracking.capture import without_credentials
from tidal.tracking.run import Run, start_run
from tidal.tracking.store import Store
from tidal.tracking.stores import open_store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(None, home=tmp_path)


@pytest.mark.parametrize(("call", "message"), [
    (lambda run: run.log_metric("x", 1.0, step=2**63), "does not fit in 64 bits"),
    (lambda run: run.log_metric("x", 1.0, step=1.5), "not a whole number"),
    (lambda run: run.log_metric("k" * 251, 1.0), "251 characters long"),
    (lambda run: run.log_metric("", 1.0), "non-empty string"),
    (lambda run: run.log_metric("a\x00b", 1.0), "NUL"),
    (lambda run: run.log_metric("x", 10**400), "too large for a 64-bit float"),
    (lambda run: run.log_metric("x", np.ones(3)), "not one number"),
    (lambda run: run.log_metric("x", "0.5"), "is not a number"),
    (lambda run: run.log_params({"k" * 300: 1}), "at most 250"),
    (lambda run: run.log_params({"blob": "x" * 2_000_000}), "log_artifact"),
    (lambda run: run.set_tags({"t" * 251: "v"}), "at most 250"),
    (lambda run: run.log_image("frame", np.zeros((5, 32, 32))), "shape"),
    (lambda run: run.log_image("frame", np.zeros((0, 4))), "shape"),
    (lambda run: run.log_image("frame", np.array([["a"]], dtype=object)), "not an image"),
    (lambda run: run.log_text("x", stream="a-very-long-stream"), "1 to 8 characters"),
])
def test_what_a_store_would_refuse_is_an_error_at_the_call(store: Store, call: object, message: str) -> None:
    with start_run(project="p", store=store) as run:
        with pytest.raises(UsageError, match=message):
            call(run)  # type: ignore[operator]
        run.log_metric("after", 1.0)
    assert store.metrics(run.id)["after"][0][1] == 1.0


def test_steps_are_64_bit_and_numpy_numbers_are_numbers(store: Store) -> None:
    with start_run(project="p", store=store) as run:
        run.log_metric("x", np.float32(0.5), step=np.int64(2**62))
        run.log_metric("x", True, step=3_000_000_000)
        run.log_metric("x", np.array(2.5), step=4.0)
    assert [(step, value) for step, value, _ in store.metrics(run.id)["x"]] == [
        (2**62, 0.5), (3_000_000_000, 1.0), (4, 2.5)]


def test_images_the_writer_used_to_die_on_are_stored(store: Store, tmp_path: Path) -> None:
    buffer = np.zeros((3, 32, 48), np.uint8)  # CHW, as a model gives it
    with start_run(project="p", store=store) as run:
        run.log_image("chw", buffer, step=1)
        buffer[:] = 255  # reused by the caller before the writer encodes it
        run.log_image("grey", np.random.default_rng(0).random((10, 20, 1)), step=2)
        run.log_image("nan", np.array([[np.nan, 1.0], [np.inf, 0.0]]), step=3)
        run.log_image("mask", np.eye(4, dtype=bool), step=4)
        with tempfile.NamedTemporaryFile(suffix=".png", dir=tmp_path) as temporary:
            Image.new("RGB", (7, 5), "blue").save(temporary.name)
            run.log_image("file", temporary.name, step=5)
    found = {image["key"]: image for image in store.images(run.id)}
    assert [(found[key]["width"], found[key]["height"]) for key in ("chw", "grey", "nan", "mask", "file")] == [
        (48, 32), (20, 10), (2, 2), (4, 4), (7, 5)]
    with store.open_artifact(run.id, found["chw"]["artifact"]) as file:
        assert np.asarray(Image.open(file)).max() == 0  # the array as it was at the call


def test_an_artifact_deleted_before_the_writer_copies_it_is_stored(store: Store, tmp_path: Path) -> None:
    with start_run(project="p", store=store) as run:
        with tempfile.NamedTemporaryFile(dir=tmp_path) as temporary:
            temporary.write(b"checkpoint" * 1000)
            temporary.flush()
            run.log_artifact(temporary.name, "model.pt")
        run.log_metric("after", 1.0)
    assert {a["name"]: a["size"] for a in store.artifacts(run.id)} == {"model.pt": 10_000}
    assert store.metrics(run.id)["after"]


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../../x", "a?b"])
def test_an_artifact_name_no_store_takes_is_an_error_at_the_call(store: Store, tmp_path: Path, name: str) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(b"w")
    with start_run(project="p", store=store) as run:
        with pytest.raises(ArtifactNameError, match=r"weights\.bin"):
            run.log_artifact(source, name)
        run.log_artifact(source, "models/./weights.bin")
    assert [a["name"] for a in store.artifacts(run.id)] == ["models/weights.bin"]


def test_nul_characters_and_lone_surrogates_in_text_are_stored_as_replacement_characters(store: Store) -> None:
    with start_run(project="p", store=store) as run:
        run.log_text("a\x00b \udc80\n")
        run.set_tags({"note": "x\x00y"})
        run.log_params({"path": "c\x00d"})
    assert "".join(log["text"] for log in store.logs(run.id)) == "a\ufffdb ?\n"
    stored = store.get_run(run.id)
    assert stored["tags"] == {"note": "x\ufffdy"} and stored["params"] == {"path": "c\ufffdd"}


def test_a_dead_writer_is_reported_by_the_next_call(store: Store) -> None:
    run = Run(store, project="p", capture=False)
    run._died("RuntimeError: a bug")
    with pytest.raises(TidalError, match=r"no longer records anything: its writer stopped \(RuntimeError: a bug"):
        run.log_metric("x", 1.0)
    run.finish()


def test_a_writer_that_meets_an_unexpected_error_reports_it_and_goes_on(
        store: Store, capfd: pytest.CaptureFixture[str]) -> None:
    with start_run(project="p", store=store) as run:
        run._queue.append(("image", "broken", 1, object(), 0.0))  # as if a check had let it through
        run.log_metric("after", 1.0)
    assert store.metrics(run.id)["after"] and store.images(run.id) == []
    assert "could not record the image 'broken'" in capfd.readouterr().err


@pytest.mark.parametrize(("remote", "stored"), [
    ("https://user:ghp_secret@github.com/org/repo.git", "https://github.com/org/repo.git"),
    ("https://oauth2:glpat-x@gitlab.com/a/b", "https://gitlab.com/a/b"),
    ("ssh://git@host:22/org/repo", "ssh://host:22/org/repo"),
    ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
    ("https://github.com/org/repo", "https://github.com/org/repo"),
    (None, None),
])
def test_git_remotes_are_stored_without_credentials(remote: str | None, stored: str | None) -> None:
    assert without_credentials(remote) == stored
