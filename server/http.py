"""The HTTP API (contract section 10): health, rooms, matchmaking, operator actions."""

from __future__ import annotations

import hmac
import json
import os
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tickrelay.server import logic as logic_registry
from tickrelay.server.endpoint import ROOM_ID
from tickrelay.server.exposition import render
from tickrelay.server.registry import OwnerSilent, RoomExists, RoomFailed
from tickrelay.server.roomquota import CreationRefused, client_address
from tickrelay.server.services import Services
from tickrelay.server.worker import worker_index

router = APIRouter()

META_LIMIT = 4096
ROOMS_PAGE = 100
ROOMS_PAGE_MAX = 1000
META_DEPTH = 4
"""Levels of nesting ``meta`` may have, itself included: serialising a deeply nested value
fails, so one room with such a ``meta`` would break ``GET /rooms`` for every caller."""


def services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(services)]


def _nests_within(value: Any, levels: int) -> bool:
    """Whether ``value`` holds at most ``levels`` levels of objects and arrays; it looks no
    deeper than one level past the bound, so a hostile value cannot exhaust the stack."""
    if isinstance(value, dict):
        children: Any = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return True
    return levels > 0 and all(_nests_within(child, levels - 1) for child in children)


def _check_meta(meta: dict[str, Any]) -> dict[str, Any]:
    if not _nests_within(meta, META_DEPTH):
        raise ValueError(f"meta must nest at most {META_DEPTH} levels deep")
    encoded = json.dumps(meta, separators=(",", ":"), ensure_ascii=False).encode()
    if len(encoded) > META_LIMIT:
        raise ValueError(f"meta must encode to at most {META_LIMIT} bytes")
    return meta


def _check_logic(name: str | None) -> str | None:
    if name is not None and logic_registry.get(name) is None:
        raise ValueError(f"unknown logic {name!r}; registered: {logic_registry.names()}")
    return name


class CreateRoom(BaseModel):
    """Room options; strict, so ``"tick_rate": true`` or ``"10"`` is a 422, not a guess."""

    model_config = ConfigDict(strict=True)

    # Anchored: pydantic's pattern is a search, so the bare pattern let "a/b" through.
    id: str | None = Field(None, pattern=rf"^{ROOM_ID.pattern}$")
    tick_rate: int | None = Field(None, ge=1, le=128)
    max_players: int | None = Field(None, ge=1, le=1024)
    max_spectators: int | None = Field(None, ge=0, le=10000)
    private: bool = False
    logic: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    _meta = field_validator("meta")(_check_meta)
    _logic = field_validator("logic")(_check_logic)


class Matchmake(BaseModel):
    model_config = ConfigDict(strict=True)

    logic: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    _meta = field_validator("meta")(_check_meta)
    _logic = field_validator("logic")(_check_logic)


class Kick(BaseModel):
    pid: str


def _is_admin(request: Request, svc: Services) -> bool:
    expected = svc.settings.admin_token
    header = request.headers.get("authorization", "")
    if not expected or header[:7].lower() != "bearer ":
        return False
    return hmac.compare_digest(header[7:].strip().encode(), expected.encode())


def _refused(exc: CreationRefused) -> HTTPException:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return HTTPException(exc.status, exc.reason, headers=headers)


def require_admin(request: Request, svc: ServicesDep) -> None:
    if not _is_admin(request, svc):
        raise HTTPException(401, "admin token required", headers={"WWW-Authenticate": "Bearer"})


@router.get("/healthz")
async def healthz() -> dict[str, Any]:
    """Names the process that answered: behind one port, several workers may."""
    return {"status": "ok", "pid": os.getpid(), "worker": worker_index()}


@router.get("/readyz")
async def readyz(svc: ServicesDep, response: Response) -> dict[str, str]:
    if svc.draining:
        response.status_code = 503
        return {"status": "draining"}
    if not svc.registry.healthy:
        response.status_code = 503
        return {"status": "backplane down"}
    return {"status": "ready"}


@router.post("/rooms", status_code=201)
async def create_room(body: CreateRoom, request: Request, svc: ServicesDep) -> dict[str, Any]:
    is_admin = _is_admin(request, svc)
    if svc.settings.admin_token and not is_admin:
        raise HTTPException(401, "admin token required", headers={"WWW-Authenticate": "Bearer"})
    registry = svc.registry
    options = registry.default_options(
        tick_rate=body.tick_rate,
        max_players=body.max_players,
        max_spectators=body.max_spectators,
        private=body.private,
        logic=body.logic,
        meta=body.meta,
    )
    creator = None if is_admin else client_address(request.scope)
    try:
        return await registry.open(body.id, options, creator)
    except RoomExists:
        raise HTTPException(409, f"room {body.id!r} exists") from None
    except CreationRefused as exc:
        raise _refused(exc) from None
    except RoomFailed as exc:
        raise HTTPException(500, str(exc)) from None


@router.get("/rooms")
async def list_rooms(
    svc: ServicesDep,
    request: Request,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=ROOMS_PAGE_MAX)] = ROOMS_PAGE,
    after: Annotated[str | None, Query(max_length=64)] = None,
) -> list[dict[str, Any]]:
    """One page of the public rooms in id order. The body stays the contract's array; while
    more rooms follow, a ``Link: <...>; rel="next"`` header gives the next page's address."""
    rooms = await svc.registry.listing(after, limit + 1)
    if len(rooms) > limit:
        rooms = rooms[:limit]
        following = f"{request.url.path}?limit={limit}&after={rooms[-1]['id']}"
        response.headers["Link"] = f'<{following}>; rel="next"'
    return rooms


@router.get("/rooms/{room_id}")
async def get_room(room_id: str, svc: ServicesDep) -> dict[str, Any]:
    room = await svc.registry.describe(room_id)
    if room is None:
        raise HTTPException(404, "no such room")
    return room


@router.post("/matchmake")
async def matchmake(body: Matchmake, request: Request, svc: ServicesDep) -> dict[str, str]:
    creator = client_address(request.scope)
    try:
        room_id = await svc.registry.find_match(body.logic or "relay", body.meta, creator)
    except RoomFailed as exc:
        raise HTTPException(500, str(exc)) from None
    except CreationRefused as exc:
        raise _refused(exc) from None
    return {"room": room_id, "path": f"/ws/rooms/{room_id}"}


@router.delete("/rooms/{room_id}", status_code=204, dependencies=[Depends(require_admin)])
async def delete_room(room_id: str, svc: ServicesDep) -> Response:
    try:
        deleted = await svc.registry.delete(room_id)
    except OwnerSilent as exc:
        raise HTTPException(504, str(exc)) from None
    if not deleted:
        raise HTTPException(404, "no such room")
    return Response(status_code=204)


@router.post("/rooms/{room_id}/kick", status_code=204, dependencies=[Depends(require_admin)])
async def kick(room_id: str, body: Kick, svc: ServicesDep) -> Response:
    try:
        kicked = await svc.registry.kick(room_id, body.pid)
    except OwnerSilent as exc:
        raise HTTPException(504, str(exc)) from None
    if kicked is None:
        raise HTTPException(404, "no such room")
    if not kicked:
        raise HTTPException(404, "no such player")
    return Response(status_code=204)


@router.get("/rooms/{room_id}/connections", dependencies=[Depends(require_admin)])
async def connections(room_id: str, svc: ServicesDep) -> list[dict[str, Any]]:
    """What the server holds for each member: the figures that prove backpressure works.
    Per process: only the worker that owns the room answers (404 elsewhere)."""
    room = svc.registry.get(room_id)
    if room is None:
        raise HTTPException(404, "no such room")
    return room.describe_members()


@router.get("/metrics")
async def prometheus_metrics(request: Request) -> Response:
    """This process's figures in Prometheus' text format (see ``exposition.py``)."""
    body, content_type = render(request.app.state.prometheus, request.headers.get("accept"))
    return Response(body, headers={"Content-Type": content_type})


@router.get("/stats")
async def stats(svc: ServicesDep) -> dict[str, Any]:
    metrics = svc.metrics
    registry = svc.registry
    return {
        "connections": metrics.connections,
        "connections_total": metrics.connections_total,
        "rooms": len(registry.rooms),
        "players": sum(room.seated for room in registry.rooms.values()),
        "refused": {str(code): n for code, n in metrics.refused.items()},
        "tick": metrics.ticks.summary(),
        "cluster": registry.cluster_stats(),
    }
