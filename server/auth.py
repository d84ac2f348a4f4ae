"""JWT checks for joining rooms (contract section 7): HS256 only, ``sub`` and ``exp`` required."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from tickrelay.protocol import CloseCode
from tickrelay.server.refusal import JoinRefusal


class AuthError(JoinRefusal):
    """A refused join; ``code`` is 4001 (who are you?) or 4003 (not this room)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified token says the player is."""

    pid: str
    rooms: tuple[str, ...] | None
    spectate_only: bool


def verify(token: str | None, secret: str, leeway: float) -> Identity:
    """Decode and check a token; raises AuthError(4001) for anything but a valid HS256 JWT."""
    if not token:
        raise AuthError(CloseCode.UNAUTHORIZED, "token required")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            leeway=leeway,
            options={"require": ["sub", "exp"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError(CloseCode.UNAUTHORIZED, "token expired") from None
    except jwt.PyJWTError as exc:
        raise AuthError(CloseCode.UNAUTHORIZED, f"invalid token: {exc}"[:120]) from None
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 128:
        raise AuthError(CloseCode.UNAUTHORIZED, "invalid token: bad sub")
    rooms = claims.get("rooms")
    if rooms is not None and (
        not isinstance(rooms, list) or not all(isinstance(r, str) for r in rooms)
    ):
        raise AuthError(CloseCode.UNAUTHORIZED, "invalid token: rooms must be a list of ids")
    return Identity(
        pid=sub,
        rooms=tuple(rooms) if rooms is not None else None,
        spectate_only=bool(claims.get("spectate_only", False)),
    )


def check_room(identity: Identity, room_id: str) -> None:
    if identity.rooms is not None and room_id not in identity.rooms:
        raise AuthError(CloseCode.FORBIDDEN, "token does not allow this room")


def mint(
    secret: str,
    sub: str,
    *,
    rooms: list[str] | None = None,
    ttl: float = 3600.0,
    spectate_only: bool = False,
) -> str:
    """A dev token, for ``tickrelay token``, tests and the load tester."""
    claims: dict[str, object] = {"sub": sub, "exp": int(time.time() + ttl)}
    if rooms:
        claims["rooms"] = list(rooms)
    if spectate_only:
        claims["spectate_only"] = True
    return jwt.encode(claims, secret, algorithm="HS256")
