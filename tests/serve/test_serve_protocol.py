"""The front↔worker protocol: typed messages as tagged tuples, and what is refused."""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from servehelpers import HERE

from tidal.errors import ProtocolError
from tidal.serve.config import parse_service
from tidal.serve.local import worker_settings
from tidal.serve.protocol import (
    HEADER,
    KINDS,
    Accepted,
    Channel,
    Failed,
    Ready,
    Setup,
    Status,
    decode,
    encode,
    read_builtins,
)
from tidal.serve.worker import PROTOCOL_EXIT_CODE


def test_messages_travel_as_tagged_tuples_and_come_back_typed() -> None:
    for message in [Accepted("r1", 3), Failed("r2", 422, b'{"error":"x"}', None), Ready(12, 0.1, 0.2)]:
        wire = encode(message)
        assert wire[0] == message.tag and isinstance(wire, tuple)
        assert read_builtins(pickle.dumps(wire)) == message
    assert len(KINDS) == len({kind.tag for kind in KINDS.values()})  # one tag per kind


def test_an_unknown_kind_or_a_wrong_shape_is_an_error() -> None:
    with pytest.raises(ProtocolError, match="unknown message kind 'results'"):
        decode(("results", "r1", b"{}"))
    with pytest.raises(ProtocolError, match="'accepted' message has 2 field"):
        decode(("accepted", "r1"))
    with pytest.raises(ProtocolError, match="tagged tuple"):
        decode(["accepted", "r1", 2])


def test_the_front_refuses_any_class_from_a_worker() -> None:
    with pytest.raises(ProtocolError, match="only builtins may cross"):
        read_builtins(pickle.dumps(("status", Path("x"))))


def test_a_worker_sent_an_unknown_kind_exits_loudly() -> None:
    config = parse_service({"processor": {"serveprocessors.Echo": {}}, "imports": ["serveprocessors"]}, "test", HERE)
    front, child = socket.socketpair()
    command = [sys.executable, "-c", "from tidal.serve.worker import main; main()", str(child.fileno()),
               str(os.getpid())]
    with subprocess.Popen(command, pass_fds=(child.fileno(),), stderr=subprocess.PIPE, text=True) as worker:
        child.close()
        channel = Channel(front, builtins_only=True)
        channel.send(Setup(worker_settings(config, 4)))
        while isinstance(message := channel.receive(), Status):
            pass
        assert isinstance(message, Ready)
        data = pickle.dumps(("reticulate", "r1"))
        front.sendall(HEADER.pack(len(data)) + data)
        assert worker.wait(30) == PROTOCOL_EXIT_CODE
        assert worker.stderr is not None
        assert "unknown message kind 'reticulate'" in worker.stderr.read()
    front.close()
