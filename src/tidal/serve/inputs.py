"""Requests into items: JSON validated by the processor's input type (and its ``preprocess``),
uploads (and the files the front fetched for URLs) decoded into frames, images or clips.

Runs in the model worker (it imports NumPy, PyAV and Pillow when media arrives). What cannot
be decoded is a 4xx with a message for the HTTP client: what was wrong with the upload and
what the service takes, never a batch job's advice or a decoder's error codes.
"""

from __future__ import annotations

import re
from typing import Any

from tidal.errors import ConfigError, DecodeError, RequestError
from tidal.serve.hooks import declared_input_type, hook
from tidal.serve.protocol import WorkerSettings

IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
VIDEO_FORMATS = "mp4, mov, webm, mkv, avi"


class Inputs:
    """Turns requests into items: JSON validated by the processor's input type, uploads and
    fetched URLs decoded (images with Pillow, videos with PyAV, frame by frame or as clips)."""

    def __init__(self, processor: Any, settings: WorkerSettings) -> None:
        self.processor = processor
        self.preprocess = hook(processor, "preprocess")
        self.input_type = declared_input_type(processor)
        self.adapter = _type_adapter(self.input_type) if self.input_type is not None else None
        media = settings.media
        self.video = media.get("video") or getattr(processor, "video_input", None) or "frames"
        if self.video not in ("frames", "clip"):
            raise ConfigError(f"{type(processor).__name__}.video_input must be 'frames' or 'clip', not {self.video!r}")
        self.media = media
        self.takes_json = self.input_type is not None or bool(getattr(processor, "json_input", self.video != "clip"))

    def schema(self) -> dict[str, Any] | None:
        """The JSON schema of JSON requests (refs point into OpenAPI's components)."""
        if self.adapter is None:
            return None
        try:
            return self.adapter.json_schema(ref_template="#/components/schemas/{model}")  # type: ignore[no-any-return]
        except Exception:  # a type pydantic validates but cannot describe: docs without a schema
            return None

    def fields(self) -> list[str]:
        schema = self.schema() or {}
        return list(schema.get("properties", {}))

    def prepare(self, request_id: str, kind: str, data: Any) -> tuple[list[Any], dict[str, Any]]:
        """The request's items, and what the default response adds to the results."""
        if kind == "json":
            return self._json(request_id, data), {}
        if kind != "upload":
            raise RequestError(400, f"unknown request kind {kind!r}")
        items: list[Any] = []
        times: list[float] = []
        for name, content_type, content in data:
            decoded, file_times = self._decode(f"{request_id}/{len(items)}", name, content_type, content)
            items.extend(decoded)
            times.extend(file_times)
        return items, ({"times": times} if times else {})

    def _json(self, request_id: str, data: Any) -> list[Any]:
        from tidal.sources.base import Item

        if not self.takes_json:  # the front refuses these first; a second look costs nothing
            raise RequestError(422, "this service takes uploaded media, not JSON values")
        value = data
        if self.adapter is not None:
            value = self._validate(data)
        if self.preprocess is None:
            return [Item(request_id, value)]
        produced = self.preprocess(value)
        if not isinstance(produced, (list, tuple)):
            raise TypeError(f"preprocess() returned {type(produced).__name__}; return a list of items")
        return [entry if isinstance(entry, Item) else Item(f"{request_id}/{index}", entry)
                for index, entry in enumerate(produced)]

    def _validate(self, data: Any) -> Any:
        from pydantic import ValidationError

        assert self.adapter is not None
        try:
            return self.adapter.validate_python(data)
        except ValidationError as error:
            problems = error.errors(include_url=False, include_context=False, include_input=False)
            where = "; ".join(f"{'.'.join(map(str, problem['loc'])) or 'body'}: {problem['msg']}"
                              for problem in problems)
            name = getattr(self.input_type, "__name__", str(self.input_type))
            detail = [{"loc": list(p["loc"]), "msg": p["msg"], "type": p["type"]} for p in problems]
            raise RequestError(422, f"the request does not match {name}: {where}", detail) from None

    def _decode(self, key: str, name: str, content_type: str, content: bytes) -> tuple[list[Any], list[float]]:
        from tidal.sources.base import Item

        if not content:
            raise RequestError(400, f"the upload {name!r} is empty (0 bytes); send the file's content, "
                               "e.g. curl -F video=@clip.mp4 URL")
        image = _is_image(name, content_type, content)
        if image and self.video == "clip":
            raise RequestError(415, f"the upload {name!r} is an image; this service takes whole videos "
                               f"({VIDEO_FORMATS}...): upload one, e.g. curl -F video=@clip.mp4 URL")
        try:
            if image:
                return [Item(key, self._image(content, name), {"file": name})], []
            clip = self._clip(content, name)
        except DecodeError as error:
            raise RequestError(422, undecodable(name, "image" if image else "video", error)) from None
        if self.video == "clip":
            return [Item(key, clip, {"file": name, "frames": len(clip), "fps": clip.fps})], []
        times = [float(t) for t in clip.times]
        items = [Item(f"{key}/{index}", frame, {"file": name, "frame_index": index, "time": times[index]})
                 for index, frame in enumerate(clip.frames)]
        return items, times

    def _image(self, content: bytes, name: str) -> Any:
        from tidal.sources.images import decode_image

        return decode_image(content, f"the upload {name!r}", self.media.get("width"), self.media.get("height"), 0)

    def _clip(self, content: bytes, name: str) -> Any:
        from tidal.sources.clips import decode_clip

        width, height = self.media.get("width"), self.media.get("height")
        if self.video == "clip" and width is None and height is None:
            width = 112  # decode_clip's default: a whole video must fit in memory
        return decode_clip(content, width, height, self.media.get("fps"), self.media.get("max_frames"))


def _is_image(name: str, content_type: str, content: bytes) -> bool:
    from tidal.sources.images import IMAGE_EXTENSIONS

    if content.startswith(IMAGE_SIGNATURES) or (content[:4] == b"RIFF" and content[8:12] == b"WEBP"):
        return True  # what the bytes are wins over what the client called them
    if content_type.startswith(("image/", "video/")):
        return content_type.startswith("image/")
    return name.rsplit(".", 1)[-1].lower() in IMAGE_EXTENSIONS


def undecodable(name: str, what: str, error: DecodeError) -> str:
    """Why the upload ``name`` (an ``image`` or a ``video``) cannot be decoded, for an HTTP
    client: the decoder's own words without its error codes, and what the service takes."""
    cause = error.__cause__
    takes = f"send a {what} file ({'JPEG, PNG, WebP, BMP, TIFF' if what == 'image' else VIDEO_FORMATS})"
    if cause is None:  # tidal's own finding (truncated, no frame, no video stream): its words say it
        return f"the upload {name!r} cannot be decoded: {_plain(str(error))}"
    if what == "video" or type(cause).__name__ == "UnidentifiedImageError":
        return f"the upload {name!r} is not a {what} this service can decode ({_plain(str(cause))}); {takes}"
    return f"the upload {name!r} is a damaged {what} ({_plain(str(cause))}); {takes}, whole"


def _plain(text: str) -> str:
    """A decoder's message without errno codes and placeholder names."""
    text = re.sub(r"\[Errno -?\d+\] ", "", text).replace(": '<none>'", "")
    return text[:1].lower() + text[1:]


def _type_adapter(input_type: Any) -> Any:
    from pydantic import TypeAdapter

    try:
        return TypeAdapter(input_type)
    except Exception as error:
        raise ConfigError(f"cannot validate JSON requests as {input_type!r}: {error}; declare a pydantic model "
                          "as the processor's input_model") from None
