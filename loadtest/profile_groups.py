"""Where a server's time goes: a py-spy profile summed into a few named groups.

A flame graph of a relay at saturation has hundreds of thin towers; what limits it is the
sum over a few kinds of work (syscalls, the WebSocket library, the ASGI stack, the GC,
our own decode, tick and fan-out). This reads py-spy's raw (collapsed-stack) output and
prints those sums, so docs/PERFORMANCE.md can quote figures anyone can reproduce:

    py-spy record --native -r 100 -f raw -o server.txt --pid <server pid> --duration 15
    python -m tickrelay.loadtest.profile_groups server.txt
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence

_SYSCALLS = (
    (re.compile(r"^(__)?(libc_)?(write|writev|send|sendmsg)$"), "socket writes (syscall)"),
    (re.compile(r"^(__)?(libc_)?(read|readv|recv|recvmsg)$"), "socket reads (syscall)"),
    (re.compile(r"epoll"), "epoll wait"),
)

# Library folders as py-spy names them (the path after site-packages or the stdlib).
_LIBRARIES = {
    "websockets": "websockets (frame parsing, protocol)",
    "msgpack": "msgpack encode/decode",
    "json": "json",
    "asyncio": "asyncio (tasks, futures, loop glue)",
    "starlette": "Starlette/FastAPI (ASGI websocket)",
    "fastapi": "Starlette/FastAPI (ASGI websocket)",
    "uvicorn": "uvicorn (ASGI protocol)",
}

_TICK_PREFIXES = ("Room", "RoomState", "TickLoop", "RelayLogic", "encoded_size", "TickStats")
_FANOUT_PREFIXES = (
    "Outbox",
    "Connection.push",
    "TransportHandle.write",
    "Wire",
    "StateFrame",
    "frame ",
)


def _tickrelay_group(path: str, frame: str) -> str:
    if path.startswith("protocol/"):
        return (
            "tickrelay: merge patch"
            if path == "protocol/patch.py"
            else ("tickrelay: decode + validate")
        )
    if path == "server/framing.py":
        return "tickrelay: frame reader"
    if frame.startswith(_FANOUT_PREFIXES):
        return "tickrelay: fan-out (outbox, pre-framed writes)"
    if frame.startswith(_TICK_PREFIXES):
        return "tickrelay: tick (apply, publish)"
    return "tickrelay: receive path (transport, connection)"


def group_of(frames: Sequence[str]) -> str:
    """The group of one sample, from its stack (outermost frame first)."""
    leaf = frames[-1].split(" (")[0]
    for pattern, name in _SYSCALLS:
        if pattern.search(leaf):
            return name
    if any("gc_collect" in frame for frame in frames):
        return "cyclic GC"
    for frame in reversed(frames):
        found = re.search(r"\(([^():]+\.py)", frame)
        if found is None:
            continue
        path = found.group(1)
        top = path.split("/")[0]
        if top in _LIBRARIES:
            return _LIBRARIES[top]
        if top in ("protocol", "server"):
            return _tickrelay_group(path, frame)
        if top == "loadtest":
            return "baseline app code"
        return f"other Python ({path})"
    return f"native ({leaf})"


def group_samples(lines: Iterable[str]) -> tuple[Counter[str], int]:
    """Samples per group, and the total, from py-spy's raw format (`stack count`)."""
    groups: Counter[str] = Counter()
    total = 0
    for line in lines:
        line = line.strip()
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        groups[group_of(stack.split(";"))] += n
    return groups, total


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", help="py-spy output recorded with -f raw")
    parser.add_argument("--top", type=int, default=14, help="groups to print")
    args = parser.parse_args(argv)
    with open(args.profile) as f:
        groups, total = group_samples(f)
    if not total:
        print("no samples", file=sys.stderr)
        return 1
    print(f"{total} samples")
    for name, n in groups.most_common(args.top):
        print(f"{100 * n / total:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
