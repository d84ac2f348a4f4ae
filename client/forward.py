"""A typed attribute of a facade that lives on one of its parts.

``RoomClient`` shows about twenty attributes that belong to its parts (``pid`` to the
dispatcher, ``rtt`` to the pinger, ...). A property each would be a hundred lines saying
the same thing; one descriptor per attribute keeps the facade a list of names and types.
"""

from __future__ import annotations

from typing import Generic, TypeVar, overload

__all__ = ["Forward"]

T = TypeVar("T")


class Forward(Generic[T]):
    """``name = Forward[T]("_part")`` reads ``self._part.name``; assigning it raises unless
    ``writable=True`` (then it assigns ``self._part.name``)."""

    def __init__(self, part: str, *, writable: bool = False) -> None:
        self._part = part
        self._writable = writable
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Forward[T]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...

    def __get__(self, obj: object | None, owner: type | None = None) -> Forward[T] | T:
        if obj is None:
            return self
        value: T = getattr(getattr(obj, self._part), self._name)
        return value

    def __set__(self, obj: object, value: T) -> None:
        if not self._writable:
            raise AttributeError(f"{self._name} is read-only")
        setattr(getattr(obj, self._part), self._name, value)

    def __repr__(self) -> str:
        return f"Forward({self._part}.{self._name})"
