"""Pure helpers (no I/O): the join URL and the reconnect backoff schedule.

Kept apart from the connection code so they can be unit-tested without sockets.
"""

from __future__ import annotations

import random
import urllib.parse
from collections.abc import Iterator

__all__ = ["backoff_delays", "build_url"]

_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}


def build_url(
    base_url: str,
    room_id: str,
    *,
    token: str | None = None,
    resume: str | None = None,
    spectate: bool = False,
) -> str:
    """Return the WebSocket URL of a room: ``{base}/ws/rooms/{room_id}?token=..&resume=..``.

    * ``room_id`` is percent-encoded with no safe characters, so ``"a/b"`` becomes
      ``a%2Fb``: the server then sees one path segment and can answer with close ``4000``
      as the contract requires, which lets tests send invalid ids on purpose.
    * ``http``/``https`` base URLs are accepted and mapped to ``ws``/``wss`` because
      callers often share one base URL with the HTTP API.
    * A path prefix in ``base_url`` (a reverse proxy mount) is kept; query parameters
      already in ``base_url`` are kept too, ours come after them.
    * Parameters that are None/False are left out rather than sent empty, because the
      server treats a present-but-invalid value as an error (``spectate=`` -> ``4000``).
    """
    parts = urllib.parse.urlsplit(base_url)
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise ValueError(f"unsupported URL scheme in {base_url!r} (want ws, wss, http, https)")
    if not parts.netloc:
        raise ValueError(f"no host in {base_url!r}")
    path = parts.path.rstrip("/") + "/ws/rooms/" + urllib.parse.quote(room_id, safe="")
    query: list[tuple[str, str]] = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if token is not None:
        query.append(("token", token))
    if resume is not None:
        query.append(("resume", resume))
    if spectate:
        query.append(("spectate", "1"))
    encoded = urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, encoded, ""))


def backoff_delays(
    base: float,
    maximum: float,
    attempts: int,
    rng: random.Random | None = None,
) -> Iterator[float]:
    """Yield ``attempts`` delays (seconds) before successive reconnect attempts.

    Exponential with "equal jitter": attempt ``n`` (0-based) waits a random time in
    ``[cap/2, cap]`` where ``cap = min(maximum, base * 2**n)``. The jitter spreads a
    crowd of clients dropped by the same worker restart (``1012``) so they do not hit
    the surviving workers in lockstep; keeping half of the cap guarantees a minimum pause
    so a client never spins on a server that refuses at once (``1013``).
    """
    if base <= 0 or maximum <= 0:
        raise ValueError("backoff base and maximum must be positive")
    if maximum < base:
        raise ValueError("backoff maximum must be >= base")
    rand = rng if rng is not None else random.Random()
    cap = base
    for _ in range(attempts):
        yield cap / 2 + rand.uniform(0, cap / 2)
        cap = min(maximum, cap * 2)
