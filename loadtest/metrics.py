"""Reading the server's own tick-lag figure from `GET /metrics` or `/stats`, when it has one.

tickrelay's `/metrics` has tick lag as a histogram over the process's life; its `/stats`
has the p99 of the last 4096 ticks (`{"tick": {"lag_p99_ms": ...}}`), which the bench reads.
The parser accepts the shapes other servers may have and says "n/a" (None) for anything
else: Prometheus text (`..._tick_lag_seconds{quantile="0.99"} 0.004`, or `_ms`), or JSON with a
key path holding both "tick_lag" and "p99" (`{"tick_lag_ms": {"p99": 4.1}}`).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any

_PROM = re.compile(
    r"^(?P<name>[A-Za-z_:]?[\w:]*tick_lag[\w:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>[-+0-9.eE]+)",
    re.MULTILINE,
)


def _scale(name: str) -> float:
    """Multiplier to milliseconds from a metric or key name's unit suffix."""
    low = name.lower()
    if "ms" in low.split("_") or low.endswith("ms") or "millis" in low:
        return 1.0
    if "seconds" in low or low.endswith("_s"):
        return 1000.0
    return 1.0


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, dict):
        out: list[tuple[str, Any]] = []
        for k, v in obj.items():
            out.extend(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return [(prefix, obj)]


def parse_tick_lag_p99(body: str) -> float | None:
    """Tick-lag p99 in milliseconds from a /metrics body, or None when not found."""
    text = body.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return None
        for path, value in _flatten(data):
            low = path.lower().replace(".", "_")  # tickrelay's /stats: tick.lag_p99_ms
            if "tick_lag" in low and "p99" in low and isinstance(value, int | float):
                return round(float(value) * _scale(path.replace(".", "_")), 3)
        return None
    for m in _PROM.finditer(text):
        name, labels = m.group("name"), m.group("labels") or ""
        if 'quantile="0.99"' in labels or "p99" in name:
            return round(float(m.group("value")) * _scale(name), 3)
    return None


def fetch_tick_lag_p99(host: str, port: int, path: str = "/metrics") -> float | None:
    """GET the metrics page (1 s timeout); None when missing, failing or without tick lag."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=1.0) as resp:
            if resp.status != 200:
                return None
            return parse_tick_lag_p99(resp.read(1 << 20).decode("utf-8", "replace"))
    except (urllib.error.URLError, OSError, ValueError):
        return None
