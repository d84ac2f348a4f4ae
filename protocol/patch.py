"""JSON Merge Patch (RFC 7386): how inputs change states and how deltas are computed.

Both functions run on the tick's hot path, once per player per tick, so they are
copy-on-write: a result shares every subtree the patch did not touch with its source.
That makes an old state a free immutable snapshot (keep a reference, never copy), and
lets ``diff`` skip an unchanged subtree with one ``is`` test instead of walking it.
Nothing here mutates a dict it did not create; callers must not mutate states either.
"""

from __future__ import annotations

from math import copysign
from typing import Any

__all__ = ["apply_patch", "diff"]

_MISSING: Any = object()


def apply_patch(target: Any, patch: Any) -> Any:
    """Return ``target`` with the merge patch ``patch`` applied (RFC 7386 section 2).

    A non-dict patch replaces the target outright (and is returned itself, unchanged);
    a dict patch onto a non-dict target starts from ``{}``; ``None`` values delete keys,
    including inside objects the patch creates, where they would otherwise be stored.
    """
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        return _create(patch)
    return _merge(target, patch)


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Copy ``target`` only on its first real change, so a no-op patch returns it as is:
    setting a value equal to the one held is no change either (states compare by identity
    to decide whether a room has anything to publish, see ``tickrelay.server.state``)."""
    result: dict[str, Any] | None = None
    for key, value in patch.items():
        old = target.get(key, _MISSING)
        if value is None:
            if old is _MISSING:
                continue
            if result is None:
                result = target.copy()
            del result[key]
            continue
        if isinstance(value, dict):
            new = _merge(old, value) if isinstance(old, dict) else _create(value)
        elif type(old) is type(value) and old == value and _same(old, value):
            # The value it already has (as the wire sees it): no change, no copy. The type
            # and == checks come first: a value that changed (the usual case) costs no call.
            continue
        else:
            new = value
        if new is old:
            continue
        if result is None:
            result = target.copy()
        result[key] = new
    return target if result is None else result


def _create(patch: dict[str, Any]) -> dict[str, Any]:
    """Apply ``patch`` to ``{}``: the patch minus its nulls, at every level."""
    result: dict[str, Any] = {}
    for key, value in patch.items():
        if value is None:
            continue
        result[key] = _create(value) if isinstance(value, dict) else value
    return result


def diff(source: Any, target: Any) -> Any:
    """Return the smallest merge patch turning ``source`` into ``target``.

    ``target`` must be null-free (true of every state built by ``apply_patch``): a merge
    patch cannot store ``None``. Values compare strictly (``1``, ``1.0`` and ``True``
    differ, as do ``0.0`` and ``-0.0``), because Python's ``==`` would hide changes that
    a client sees on the wire. When either side is not a dict the patch is ``target``.
    """
    if not isinstance(source, dict) or not isinstance(target, dict):
        return target
    if source is target:
        return {}
    return _diff(source, target)


def _diff(source: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {key: None for key in source if key not in target}
    for key, new in target.items():
        old = source.get(key, _MISSING)
        if old is new:
            continue
        if isinstance(new, dict) and isinstance(old, dict):
            nested = _diff(old, new)
            if nested:
                patch[key] = nested
        elif old is _MISSING or not _same(old, new):
            patch[key] = new
    return patch


def _same(a: Any, b: Any) -> bool:
    """Equality as the wire sees it: same JSON/MessagePack encoding, not Python's ``==``."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is float:
        return a == b and (a != 0.0 or copysign(1.0, a) == copysign(1.0, b))
    if kind is list or kind is tuple:
        return len(a) == len(b) and all(map(_same, a, b))
    if kind is dict:
        return len(a) == len(b) and all(
            key in b and _same(value, b[key]) for key, value in a.items()
        )
    return bool(a == b)
