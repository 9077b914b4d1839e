"""The worker of a step's own environment: ``python -m tidal.pipelines.envworker``.

Reads JSON lines on stdin — first the processor's spec, then batches of items — and answers one
JSON line each on stdout: ``{"batch_size": n}`` or ``{"error": ...}`` after the spec, then
``{"outcomes": [[result, error], ...]}`` per batch. End of input tears the processor down. The
processor's own prints go to stderr, so they cannot break the protocol.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, TextIO

from tidal.processors.host import ProcessorHost, ProcessorSpec, encode_json
from tidal.sources.base import Item


def main() -> None:
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr  # user prints must not reach the protocol stream
    spec_line = sys.stdin.readline()
    if not spec_line:
        return
    fields = json.loads(spec_line)["spec"]
    spec = ProcessorSpec(**(fields | _tuples(fields)))
    host = ProcessorHost(spec)
    try:
        host.start()
    except Exception as error:
        _say(protocol, {"error": str(error)})
        return
    _say(protocol, {"batch_size": host.batch_size})
    try:
        for line in sys.stdin:
            items = [Item(item["key"], item["data"], item["meta"]) for item in json.loads(line)["items"]]
            outcomes = host.process(items)
            _say(protocol, {"outcomes": [[outcome.result, outcome.error] for outcome in outcomes]})
    finally:
        host.stop()


def _tuples(spec: dict[str, Any]) -> dict[str, Any]:
    return {"allowed": tuple(spec.get("allowed", ())), "paths": tuple(spec.get("paths", ()))}


def _say(protocol: TextIO, message: dict[str, Any]) -> None:
    try:
        text = encode_json(message)
    except (TypeError, ValueError) as error:  # one result that is not JSON fails its batch's items
        count = len(message.get("outcomes", []))
        text = encode_json({"outcomes": [[None, f"result is not JSON-serialisable: {error}"]] * count})
    protocol.write(text + "\n")
    protocol.flush()


if __name__ == "__main__":
    main()
