"""422 answers that name what was wrong without echoing what was sent.

FastAPI's default 422 puts each offending value (``input``) in the answer: a client that
posts a large body gets it back, which doubles the cost of the request and turns the server
into an amplifier. Small inputs stay, because they make the error readable. A message
that quotes the input (``unknown logic '...'``) is cut short for the same reason.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

MAX_ECHOED_INPUT = 128  # bytes of JSON; above this the input (or context) is left out
MAX_MESSAGE = 200  # characters of an error's message


def _small(value: Any) -> bool:
    try:
        encoded = json.dumps(jsonable_encoder(value), separators=(",", ":"))
    except (TypeError, ValueError):
        return False
    return len(encoded) <= MAX_ECHOED_INPUT


def _bounded(error: dict[str, Any]) -> dict[str, Any]:
    """The error without large ``input``/``ctx`` values, its message cut short."""
    bounded = {
        key: value for key, value in error.items() if key not in ("input", "ctx") or _small(value)
    }
    message = bounded.get("msg")
    if isinstance(message, str) and len(message) > MAX_MESSAGE:
        bounded["msg"] = message[:MAX_MESSAGE] + "..."
    return bounded


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_bounded(dict(error)) for error in exc.errors()]
    return JSONResponse(status_code=422, content={"detail": jsonable_encoder(errors)})
