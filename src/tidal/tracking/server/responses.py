"""The server's JSON answers: NaN and infinities as strings, errors as ``{"error", "type"}``."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse

from tidal.tracking.httpstore import encode_non_finite  # the wire format, shared with the client


class TidalJSONResponse(JSONResponse):
    """JSON whose non-finite floats travel as strings (Starlette's own refuses them: a 500)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(encode_non_finite(content), allow_nan=False, separators=(",", ":"),
                          default=str).encode("utf-8")


def json_response(content: Any, status_code: int = 200) -> TidalJSONResponse:
    return TidalJSONResponse(content, status_code=status_code)


def error_response(status_code: int, message: str, kind: str,
                   headers: dict[str, str] | None = None) -> TidalJSONResponse:
    """Every error the server answers: ``kind`` is a name of ``tidal.errors.HTTP_ERRORS`` when
    the client should raise that class again."""
    return TidalJSONResponse({"error": message, "type": kind}, status_code=status_code, headers=headers)
