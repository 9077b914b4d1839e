"""Fixtures of the server tests: live servers over SQLite (one per module) and PostgreSQL."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from liveserver import TOKEN, LiveServer, sqlite_store, start_server
from tidal.tracking.server.app import create_app

# the shared Store suite (tests/tracking/store_suite.py), which the HTTP store must pass too
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@pytest.fixture
def serve() -> Iterator[Callable[..., LiveServer]]:
    """``serve(app, ...)`` starts a server that is stopped after the test."""
    started: list[LiveServer] = []

    def start(app: Any, **options: Any) -> LiveServer:
        started.append(start_server(app, **options))
        return started[-1]

    yield start
    for live in started:
        live.stop()


@pytest.fixture
def project() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def sqlite_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-home")


@pytest.fixture(scope="module")
def sqlite_server(sqlite_home: Path) -> Iterator[LiveServer]:
    """One server per test module, with a token and small limits (1 MiB requests, 8 MiB uploads)."""
    store = sqlite_store(sqlite_home)
    live = start_server(create_app(store, token=TOKEN, max_request_bytes=2**20,
                                   max_upload_bytes=8 * 2**20))
    yield live
    live.stop()
    store.close()
