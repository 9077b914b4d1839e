"""The public API: what ``tidal.__all__`` promises exists, ``import tidal`` stays light, and every
error is one tree under ``TidalError`` with one registry of the names sent over HTTP."""

from __future__ import annotations

import subprocess
import sys

import tidal
from tidal import errors


def test_every_exported_name_exists() -> None:
    assert sorted(tidal.__all__) == sorted(set(tidal.__all__))
    for name in tidal.__all__:
        assert getattr(tidal, name) is not None, name


def test_import_tidal_does_not_load_heavy_dependencies() -> None:
    code = ("import sys, tidal\n"
            "heavy = [m for m in ('numpy', 'av', 'sqlalchemy', 'alembic', 'pyarrow', 'PIL', 'rich', 'torch')"
            " if m in sys.modules]\n"
            "print(','.join(heavy))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == ""


def test_every_error_is_a_tidal_error_drawn_in_the_hierarchy_and_sendable_over_http() -> None:
    classes = [value for value in vars(errors).values()
               if isinstance(value, type) and issubclass(value, BaseException)]
    assert len(classes) >= 16
    for error in classes:
        assert issubclass(error, errors.TidalError), error
        assert f" {error.__name__} " in errors.__doc__, f"{error.__name__} is not drawn in the docstring"
        assert 400 <= error.http_status < 600
        if error is errors.RequestError:  # tidal serve answers with the request's own status, never by name
            assert errors.http_name(error) == "TidalError"
            continue
        assert errors.error_by_name(errors.http_name(error)) is error
    assert errors.error_by_name("ValidationError") is None  # pydantic's, answered by status


def test_an_error_defined_elsewhere_travels_as_its_nearest_registered_ancestor() -> None:
    class NoSuchModel(errors.RunNotFound):
        pass

    assert errors.http_name(NoSuchModel) == "RunNotFound"
    assert NoSuchModel.http_status == 404
