"""422 answers that name what was wrong without echoing what was sent.

FastAPI's default 422 puts each offending value (``input``) in the answer: a client that
posts a large body gets it back, which doubles the cost of the request and turns the server
into an amplifier. Small inputs stay, because they make the error readable.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

MAX_ECHOED_INPUT = 128  # bytes of JSON; above this the input is left out


def _small(value: Any) -> bool:
    try:
        encoded = json.dumps(jsonable_encoder(value), separators=(",", ":"))
    except (TypeError, ValueError):
        return False
    return len(encoded) <= MAX_ECHOED_INPUT


def _without_large_input(error: dict[str, Any]) -> dict[str, Any]:
    if "input" in error and not _small(error["input"]):
        error = {key: value for key, value in error.items() if key != "input"}
    return error


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_without_large_input(dict(error)) for error in exc.errors()]
    return JSONResponse(status_code=422, content={"detail": jsonable_encoder(errors)})
