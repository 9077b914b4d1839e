"""The requests a service takes, as one schema: published in OpenAPI, checked in the front.

A JSON body is one of: ``{"url": "<URL>"}`` (when the service fetches URLs and its input has
no ``url`` field of its own), or a value of the processor's declared input (its
``input_model``, or ``preprocess``'s type hint). A processor that declares no input takes any
JSON as is, unless it takes no JSON at all (whole-video processors, or ``json_input = False``):
then only the URL form is accepted.

The front validates JSON against this schema (JSON Schema, with ``jsonschema``) before a
worker is involved, so a wrong request never starts a model worker, and answers 422 naming
each field that is wrong and what the endpoint accepts.

Example::

    requests = RequestSchema(info, AllowList(["s3://uploads"]))
    kind, value = requests.read({"url": "s3://uploads/a.mp4"})      # ("url", "s3://uploads/a.mp4")
    requests.read({"foo": 1})                                       # RequestError 422
"""

from __future__ import annotations

from typing import Any

from tidal.errors import RequestError
from tidal.serve.allowlist import AllowList
from tidal.serve.hooks import ProcessorInfo

JSON_TYPE = "application/json"
URL_SCHEMA: dict[str, Any] = {
    "type": "object", "title": "URL", "properties": {"url": {"type": "string", "example": "s3://uploads/clip.mp4"}},
    "required": ["url"], "additionalProperties": False,
    "description": "fetch an image or video from a URL under the service's allow_urls"}
UPLOAD_HINT = "curl -F video=@clip.mp4 URL, or its bytes with content-type video/mp4"


class RequestSchema:
    """What JSON bodies a service takes, and the check that refuses the others."""

    def __init__(self, info: ProcessorInfo, allow: AllowList) -> None:
        self.info = info
        self.allow = allow
        schema = dict(info.input_schema or {})
        self.definitions: dict[str, Any] = schema.pop("$defs", {})
        self.input_schema = schema if info.takes_json else None
        self.urls = "url" not in info.input_fields  # a url field of the input is data, not a URL to fetch
        self.validator = self._validator(schema) if info.takes_json and schema else None
        self.media = "videos" if info.video == "clip" else "images or videos"

    def read(self, data: Any) -> tuple[str, Any]:
        """``("url", url)`` for a URL to fetch (allowed), ``("json", data)`` for the processor;
        RequestError (403, 422) for what the service does not take."""
        url_form = isinstance(data, dict) and "url" in data and (set(data) == {"url"} or not self.info.takes_json)
        if self.urls and url_form:
            return "url", self._url(data)
        if not self.info.takes_json:
            raise RequestError(422, f"this service takes {self.media}, not JSON values: upload one ({UPLOAD_HINT})"
                               f"{self._url_hint()}")
        if self.validator is not None:
            self._validate(data)
        return "json", data

    def _url(self, data: dict[str, Any]) -> str:
        url = data["url"]
        if set(data) != {"url"}:
            extra = ", ".join(sorted(repr(key) for key in data if key != "url"))
            raise RequestError(422, f"a URL request is {{\"url\": \"<URL>\"}} alone; remove {extra}")
        if not isinstance(url, str):
            raise RequestError(422, f"url must be a string naming a file {self.allow.describe()}, "
                               f"not {type(url).__name__} {url!r}", [{"loc": ["url"], "msg": "not a string"}])
        if self.allow.entry_for(url) is None:
            raise RequestError(403, f"{url} is not allowed: this service fetches URLs only {self.allow.describe()}; "
                               "upload the file instead, or ask for its prefix in the service's http.allow_urls")
        return url

    def _url_hint(self) -> str:
        if self.urls and self.allow.prefixes:
            return f', or send {{"url": "<URL>"}} naming one {self.allow.describe()}'
        return " (this service fetches no URLs)"

    def _validator(self, schema: dict[str, Any]) -> Any:
        from jsonschema import Draft202012Validator

        # refs point into OpenAPI's components (the ref template of hooks.describe)
        return Draft202012Validator({**schema, "components": {"schemas": self.definitions}})

    def _validate(self, data: Any) -> None:
        assert self.validator is not None
        errors = sorted(self.validator.iter_errors(data), key=lambda error: list(map(str, error.absolute_path)))
        if not errors:
            return
        detail = [{"loc": list(error.absolute_path), "msg": error.message, "type": error.validator}
                  for error in errors[:20]]
        where = "; ".join(f"{'.'.join(map(str, item['loc'])) or 'body'}: {item['msg']}" for item in detail)
        name = self.input_schema.get("title", "the input model") if self.input_schema else "the input model"
        raise RequestError(422, f"the request does not match {name}: {where}", detail)

    def openapi_body(self) -> dict[str, Any]:
        """The ``requestBody`` of ``POST /v1/predict`` in OpenAPI."""
        forms: list[dict[str, Any]] = []
        if self.input_schema is not None:
            forms.append(self.input_schema or {"description": "any JSON value, given to the processor as one item"})
        if self.urls and self.allow.prefixes:
            forms.append(URL_SCHEMA)
        binary = {"type": "string", "format": "binary"}
        content: dict[str, Any] = {}
        if forms:
            content[JSON_TYPE] = {"schema": forms[0] if len(forms) == 1 else {"anyOf": forms}}
        content["multipart/form-data"] = {"schema": {"type": "object", "properties": {"file": binary}}}
        content["video/*"] = {"schema": binary}
        if self.info.video != "clip":
            content["image/*"] = {"schema": binary}
        return {"requestBody": {"required": True, "content": content}}
