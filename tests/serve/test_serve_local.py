"""The local backend: worker processes on this machine, through the shared Backend suite."""

from __future__ import annotations

from typing import Any

import pytest
from backend_suite import BackendSuite, MakeBackend
from servehelpers import HERE

from tidal.errors import ProtocolError
from tidal.serve.config import parse_service
from tidal.serve.local import LocalBackend, WorkerProcess, describe_processor
from tidal.serve.protocol import Predict, Stop


def local_backend(processor: dict[str, Any], **http: Any) -> LocalBackend:
    config = parse_service({"processor": processor, "imports": ["serveprocessors"], "http": http}, "test", HERE)
    return LocalBackend(config, describe_processor(config))


class TestLocalBackend(BackendSuite):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        return local_backend


@pytest.mark.parametrize("message", [Stop(), Predict("r1", "json", 1)])
def test_a_message_the_front_never_gets_is_a_protocol_error(message: Any) -> None:
    backend = local_backend({"serveprocessors.Echo": {}})
    with pytest.raises(ProtocolError, match=f"the front got a '{message.tag}' message"):
        backend.handle(WorkerProcess(1), message)
