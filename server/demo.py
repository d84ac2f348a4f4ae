"""``GET /demo``: the tag example playable in a browser, on the shipped JS client.

Three static files, read once at import (they ship in the wheel as package data):
the page, its game script (``examples/web/``) and the JS client module
(``client/js/tickrelay.js``), which a browser game may also import from here.

The page matchmakes into a ``tag`` room, so importing this module registers the tag
logic: the demo works on any server, with or without ``--logic-modules
tickrelay.examples.tag``. (Registering a logic only makes it available to rooms that ask
for it; rooms created on join keep the relay.)
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import Response

import tickrelay.examples.tag  # noqa: F401  (registers the "tag" logic the page plays)

__all__ = ["router"]

#: The page may load scripts and open connections only to its own origin (no CDN: the
#: demo must run where nothing outside the machine can be reached).
CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'"


class Asset:
    """One static file, held in memory with its media type."""

    def __init__(self, package: str, name: str, media_type: str) -> None:
        self.body = files(package).joinpath(name).read_bytes()
        self.media_type = media_type

    def response(self) -> Response:
        headers = {"Cache-Control": "no-cache", "Content-Security-Policy": CSP}
        return Response(self.body, media_type=self.media_type, headers=headers)


PAGE = Asset("tickrelay.examples", "web/demo.html", "text/html; charset=utf-8")
GAME = Asset("tickrelay.examples", "web/tag.js", "text/javascript; charset=utf-8")
CLIENT = Asset("tickrelay.client", "js/tickrelay.js", "text/javascript; charset=utf-8")

router = APIRouter(include_in_schema=False)


@router.get("/demo")
async def demo_page() -> Response:
    return PAGE.response()


@router.get("/demo/tag.js")
async def demo_game() -> Response:
    return GAME.response()


@router.get("/demo/tickrelay.js")
async def js_client() -> Response:
    return CLIENT.response()
