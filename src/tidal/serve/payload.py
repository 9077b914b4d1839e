"""Reading a predict request's body in the front: JSON, a streamed upload, or an allowed URL.

The body is held to ``max_upload_bytes`` while it streams in (a 413 as soon as it passes,
before the rest arrives), a multipart form is parsed as it streams, and a JSON body is
checked against the service's request schema (:mod:`tidal.serve.schema`: a value of the
processor's input, or an allowed ``{"url": ...}``) here, so a refused request never starts a
worker. Nothing is decoded here: the front never imports NumPy or PyAV.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from tidal.errors import RequestError
from tidal.serve.config import HTTPSettings
from tidal.serve.schema import JSON_TYPE, RequestSchema

DRAIN_LIMIT_BYTES = 16 * 1024 * 1024  # read and drop this much of a refused body, so the client reads the 413


@dataclass
class Payload:
    """A request: ``kind`` ``"json"`` (``data`` a value), ``"url"`` (an allowed URL, which the
    front fetches into an upload before a worker sees it) or ``"upload"`` (``[(name, content
    type, bytes)...]``); ``received`` is when it arrived (``time.monotonic()``), from which its
    ``request_timeout`` counts."""

    kind: str
    data: Any
    received: float = field(default_factory=time.monotonic)


class Problem(RequestError):
    """A request refused before it reaches a worker (bad body, too large, URL not allowed)."""


async def read_payload(request: Request, http: HTTPSettings, requests: RequestSchema, received: float) -> Payload:
    """The request as a Payload; RequestError for a bad request (JSON checked by ``requests``)."""
    limit = http.max_upload_bytes
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        await _drain(request, int(declared))
        raise _too_large(limit)
    if content_type == JSON_TYPE or content_type.endswith("+json"):
        kind, data = requests.read(_json(await _read_body(request, limit)))
        return Payload(kind, data, received)
    if content_type == "multipart/form-data":
        files = await _read_form(request, limit)
        return Payload("upload", _check_files(files), received)
    if content_type.startswith(("image/", "video/")) or content_type == "application/octet-stream":
        return Payload("upload", _check_files([("body", content_type, await _read_body(request, limit))]), received)
    raise Problem(415, f"unsupported content type {content_type or '(none)'!r}; send JSON (application/json), "
                  "a form upload (multipart/form-data, e.g. curl -F video=@clip.mp4) or the raw bytes of an "
                  "image or video (image/*, video/*)")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as error:
        raise Problem(400, f"the body is not valid JSON: {error}") from None
    except RecursionError:
        raise Problem(400, "the JSON body is nested too deeply; send a flatter value") from None


def _check_files(files: list[tuple[str, str, bytes]]) -> list[tuple[str, str, bytes]]:
    if not files:
        raise Problem(400, "the form holds no file; send the image or video as a file field, "
                      "e.g. curl -F video=@clip.mp4 URL")
    for name, _, content in files:
        if not content:
            raise Problem(400, f"the upload {name!r} is empty (0 bytes); send the file's content")
    return files


def _too_large(limit: int) -> Problem:
    return Problem(413, f"the request body is larger than this service's limit of {limit} bytes "
                   f"({limit / 2**20:.1f} MiB); send a smaller file, or raise http.max_upload_bytes")


async def _limited(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The body's chunks as they arrive; a 413 Problem as soon as they pass ``limit`` bytes."""
    size = 0
    stream = request.stream()
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            await _drain_stream(stream)
            raise _too_large(limit)
        yield chunk


async def _read_body(request: Request, limit: int) -> bytes:
    return b"".join([chunk async for chunk in _limited(request, limit)])


async def _drain(request: Request, declared: int) -> None:
    if declared <= DRAIN_LIMIT_BYTES:
        await _drain_stream(request.stream())


async def _drain_stream(stream: AsyncIterator[bytes]) -> None:
    """Read and drop the rest of a refused body (up to a bound) so the client gets the answer
    instead of a reset connection."""
    drained = 0
    async for chunk in stream:
        drained += len(chunk)
        if drained > DRAIN_LIMIT_BYTES:
            return


class _FormFiles:
    """Collects a multipart body's file parts while it streams in."""

    def __init__(self) -> None:
        self.files: list[tuple[str, str, bytes]] = []
        self.header_name = b""
        self.header_value = b""
        self.headers: dict[bytes, bytes] = {}
        self.data = bytearray()

    def callbacks(self) -> dict[str, Any]:
        return {"on_part_begin": self.on_part_begin, "on_part_data": self.on_part_data,
                "on_part_end": self.on_part_end, "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value, "on_header_end": self.on_header_end}

    def on_part_begin(self) -> None:
        self.headers, self.data = {}, bytearray()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self.data += data[start:end]

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.header_name.lower()] = self.header_value
        self.header_name, self.header_value = b"", b""

    def on_part_end(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        if b"filename" in options:  # plain fields are not inputs
            name = options[b"filename"].decode("utf-8", "replace") or options.get(b"name", b"file").decode()
            content_type = self.headers.get(b"content-type", b"").decode("latin-1").lower()
            self.files.append((name, content_type, bytes(self.data)))
        self.data = bytearray()


async def _read_form(request: Request, limit: int) -> list[tuple[str, str, bytes]]:
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, options = parse_options_header(request.headers["content-type"])
    boundary = options.get(b"boundary")
    if not boundary:
        raise Problem(400, "the multipart content type names no boundary; let your HTTP client build the form")
    form = _FormFiles()
    parser = MultipartParser(boundary, form.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in _limited(request, limit):
            parser.write(chunk)
        parser.finalize()
    except FormParserError as error:
        raise Problem(400, f"the multipart body is malformed: {error}") from None
    return form.files
