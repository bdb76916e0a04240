"""Last-writer-wins register.

Rules:
    1. The write with the greater :class:`~vsm.crdt.Stamp` wins; stamps order by
       ``(physical_ms, counter, replica)``, so ties between replicas break by replica id.
    2. Two writes with the very same stamp (only possible with a misbehaving writer) are ordered
       by the msgpack bytes of their values, so merge never depends on argument order.
    3. The empty register (no stamp) is the bottom: every write beats it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from vsm.crdt._data import canonical, check_tag, pack, require
from vsm.crdt._hlc import Stamp
from vsm.errors import MalformedDataError

__all__ = ["LWWRegister"]

T = TypeVar("T")


class LWWRegister(Generic[T]):
    """A register whose latest write (by stamp) wins.

    Args:
        value: The value held, or ``None`` for the empty register.
        stamp: The stamp of the write that set ``value`` (``None`` when empty).
    """

    __slots__ = ("_stamp", "_value")
    TAG = "lww"

    def __init__(self, value: T | None = None, stamp: Stamp | None = None) -> None:
        if (stamp is None) != (value is None):
            raise ValueError("an LWWRegister holds both a value and its stamp, or neither")
        self._value = value
        self._stamp = stamp

    @property
    def value(self) -> T | None:
        """The winning value, or ``None`` if nothing was written."""
        return self._value

    @property
    def stamp(self) -> Stamp | None:
        """The stamp of the winning write, or ``None``."""
        return self._stamp

    def set(self, value: T, stamp: Stamp) -> LWWRegister[T]:
        """Write ``value`` at ``stamp`` in place and return the delta (the write itself)."""
        if value is None:
            raise ValueError("cannot write None into an LWWRegister")
        delta = LWWRegister(value, stamp)
        self.apply(delta)
        return delta

    def _beats(self, other: LWWRegister[T]) -> bool:
        """Whether this register's write wins over ``other``'s (rules 1-3)."""
        if other._stamp is None:
            return True
        if self._stamp is None:
            return False
        if self._stamp != other._stamp:
            return self._stamp > other._stamp
        return pack(canonical(self._value)) >= pack(canonical(other._value))

    def merge(self, other: LWWRegister[T]) -> LWWRegister[T]:
        """Return the join of two registers; neither input changes."""
        winner = self if self._beats(other) else other
        return LWWRegister(winner._value, winner._stamp)

    def apply(self, delta: LWWRegister[T]) -> None:
        """Merge ``delta`` into this register in place."""
        if not self._beats(delta):
            self._value, self._stamp = delta._value, delta._stamp

    def copy(self) -> LWWRegister[T]:
        """Return an independent copy (the value itself is shared: keep values immutable)."""
        return LWWRegister(self._value, self._stamp)

    def to_data(self) -> dict[str, Any]:
        """Return the register as plain data."""
        return {
            "type": self.TAG,
            "stamp": None if self._stamp is None else self._stamp.to_data(),
            "value": canonical(self._value),
        }

    @classmethod
    def from_data(
        cls, data: object, decode: Callable[[Any], Any] | None = None
    ) -> LWWRegister[Any]:
        """Rebuild a register from :meth:`to_data` output.

        Args:
            data: The plain data.
            decode: Turns the plain value back into its type (identity when ``None``).

        Raises:
            MalformedDataError: ``data`` is not a valid register.
        """
        fields = require(data, "LWWRegister", ("type", "stamp", "value"))
        check_tag(fields, "LWWRegister", cls.TAG)
        if (fields["stamp"] is None) != (fields["value"] is None):
            raise MalformedDataError("LWWRegister", "", "stamp and value must both be set", data)
        if fields["stamp"] is None:
            return cls()
        stamp = Stamp.from_data(fields["stamp"])
        value = fields["value"] if decode is None else decode(fields["value"])
        return cls(value, stamp)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LWWRegister):
            return NotImplemented
        return self._stamp == other._stamp and self._value == other._value

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"LWWRegister({self._value!r}, {self._stamp!r})"
