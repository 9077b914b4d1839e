"""Errors over HTTP: every name of ``tidal.errors.HTTP_ERRORS``, answered by a real server, is
raised again by ``HTTPStore`` as the very same class (so ``except RunNotFound`` works the same
against a local store and a team server)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from liveserver import LiveServer, serving
from tidal.errors import HTTP_ERRORS, RunNotFound, TidalError, TokenRefused
from tidal.tracking.httpstore import API_PREFIX, HTTPStore
from tidal.tracking.server.app import create_app
from tidal.tracking.store import Store


class RefusingStore(Store):
    """A store whose list of projects fails with ``error``: what a real store raises on purpose
    (a missing run, a database that is down...), chosen by the test."""

    def __init__(self) -> None:
        self.error: Exception = RuntimeError("no error chosen yet")

    def projects(self) -> list[str]:
        raise self.error


@pytest.fixture(scope="module")
def refusing() -> Iterator[tuple[RefusingStore, LiveServer]]:
    store = RefusingStore()
    with serving(create_app(store)) as live:
        yield store, live


def _client_raises(live: LiveServer) -> TidalError:
    client = HTTPStore(live.url, retries=1)
    try:
        client.projects()
    except TidalError as error:
        return error
    finally:
        client.close()
    raise AssertionError("the client raised nothing")


@pytest.mark.parametrize("name", sorted(HTTP_ERRORS))
def test_every_registered_error_round_trips(refusing: tuple[RefusingStore, LiveServer], name: str) -> None:
    store, live = refusing
    error_class = HTTP_ERRORS[name]
    store.error = error_class(f"refused on purpose ({name})")
    answer = httpx.get(f"{live.url}{API_PREFIX}/projects")
    assert answer.status_code == error_class.http_status
    assert answer.json() == {"error": f"refused on purpose ({name})", "type": name}
    raised = _client_raises(live)
    assert type(raised) is error_class
    if error_class is not TokenRefused:  # the client says how to set TIDAL_TOKEN instead
        assert str(raised) == f"refused on purpose ({name})"


def test_an_unregistered_subclass_travels_as_its_registered_ancestor(
        refusing: tuple[RefusingStore, LiveServer]) -> None:
    class ModelMissing(RunNotFound):
        pass

    store, live = refusing
    store.error = ModelMissing("no model 'x'")
    assert type(_client_raises(live)) is RunNotFound


def test_a_503_is_retried_and_then_raised_as_the_servers_error(refusing: tuple[RefusingStore, LiveServer]) -> None:
    store, live = refusing
    store.error = HTTP_ERRORS["ArtifactStoreError"]("the bucket 'runs' does not exist")
    answer = httpx.get(f"{live.url}{API_PREFIX}/projects")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    client = HTTPStore(live.url, retries=2, backoff=0.01)
    with pytest.raises(HTTP_ERRORS["ArtifactStoreError"], match="bucket 'runs'"):
        client.projects()
    client.close()


def test_a_bug_is_a_500_naming_no_tidal_class(refusing: tuple[RefusingStore, LiveServer]) -> None:
    store, live = refusing
    store.error = KeyError("oops")
    answer = httpx.get(f"{live.url}{API_PREFIX}/projects")
    body: dict[str, Any] = answer.json()
    assert answer.status_code == 500 and body["type"] == "InternalError" and "KeyError" in body["error"]
