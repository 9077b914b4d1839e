"""The public API: what ``tidal.__all__`` promises exists, and ``import tidal`` stays light."""

from __future__ import annotations

import subprocess
import sys

import tidal


def test_every_exported_name_exists() -> None:
    assert sorted(tidal.__all__) == sorted(set(tidal.__all__))
    for name in tidal.__all__:
        assert getattr(tidal, name) is not None, name


def test_import_tidal_does_not_load_heavy_dependencies() -> None:
    code = ("import sys, tidal\n"
            "heavy = [m for m in ('numpy', 'av', 'sqlalchemy', 'alembic', 'pyarrow', 'PIL', 'rich')"
            " if m in sys.modules]\n"
            "print(','.join(heavy))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == ""
