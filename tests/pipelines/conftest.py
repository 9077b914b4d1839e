"""The ``project`` fixture: a user's package, data files and a pipeline file (see shapes_project)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from shapes_project import PACKAGE, PIPELINE


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with the ``shapes`` package, two data files and ``pipeline.hjson``; TIDAL_HOME inside."""
    package = tmp_path / "shapes"
    package.mkdir()
    for name, text in PACKAGE.items():
        (package / name).write_text(textwrap.dedent(text))
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("2 2\n2 3\n4 4\n")
    (data / "b.txt").write_text("1 1\n5 2\n")
    (tmp_path / "pipeline.hjson").write_text(PIPELINE)
    for name in [name for name in sys.modules if name == "shapes" or name.startswith("shapes.")]:
        monkeypatch.delitem(sys.modules, name)  # another test's copy of the package (the inline engine imports it here)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TIDAL_HOME", str(tmp_path / ".tidal"))
    return tmp_path

