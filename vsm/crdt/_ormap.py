"""Add-wins observed-remove map whose values are CRDTs.

Each key holds one or more *contributions* ``{dot: value}``; the key's value is the join of its
contributions. An update by a replica joins the new value into the current one, stores the
result under a fresh dot and covers the key's older dots, so in the common case a key holds one
contribution. Concurrent updates leave one contribution each until the next update folds them.

Rules:
    1. Keys are add-wins: an update concurrent with a remove keeps the key, with the value of
       the update (and of whatever the remover had not observed).
    2. A remove drops exactly the contributions it observed: no reset anomaly, no tombstones.
    3. Values are CRDT states that are never mutated once stored: ``update`` builds a new one
       and ``get`` returns a copy.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Any, Generic, Protocol, Self, TypeVar

from vsm.crdt._data import check_tag, key_to_plain, require
from vsm.crdt._dotmap import DotMap
from vsm.errors import MalformedDataError

__all__ = ["Mergeable", "ORMap"]

K = TypeVar("K", bound=Hashable)


class Mergeable(Protocol):
    """What an ORMap value must offer: a join, a copy and plain data."""

    def merge(self, other: Self, /) -> Self:
        """Return the join of two states."""
        ...

    def copy(self) -> Self:
        """Return an independent copy."""
        ...

    def to_data(self) -> Any:
        """Return the state as plain data."""
        ...


V = TypeVar("V", bound=Mergeable)


class ORMap(DotMap[K, V], Generic[K, V]):
    """An add-wins map from keys (str, int, bytes, tuples) to CRDT values."""

    __slots__ = ()
    TAG = "ormap"

    def get(self, key: K) -> V | None:
        """The value of ``key`` (a copy), or ``None`` when absent."""
        value = self._value(key)
        return None if value is None else value.copy()

    def _value(self, key: K) -> V | None:
        held = self._entries.get(key)
        if not held:
            return None
        values = iter(held.values())
        value = next(values)
        for other in values:
            value = value.merge(other)
        return value

    def keys(self) -> frozenset[K]:
        """The keys present now."""
        return frozenset(self._entries)

    def items(self) -> Iterator[tuple[K, V]]:
        """``(key, value)`` for every present key (values are copies)."""
        for key in self._entries:
            value = self._value(key)
            assert value is not None
            yield key, value.copy()

    def update(self, replica: str, key: K, value: V) -> ORMap[K, V]:
        """Join ``value`` into ``key`` on behalf of ``replica`` in place; return the delta."""
        key_to_plain(key)  # refuse what cannot be serialised, before any change
        current = self._value(key)
        joined = value.copy() if current is None else current.merge(value)
        dot = self._context.next_dot(replica)
        delta = self._delta(key, {dot: joined}, list(self._entries.get(key, ())))
        self.apply(delta)
        return delta

    def remove(self, key: K) -> ORMap[K, V]:
        """Remove ``key`` (the contributions observed so far) in place; return the delta."""
        delta = self._delta(key, {}, list(self._entries.get(key, ())))
        self.apply(delta)
        return delta

    def to_data(self) -> dict[str, Any]:
        """Return the map as sorted plain data."""
        return {
            "type": self.TAG,
            "entries": self._entries_to_data(lambda value: (value.to_data(),)),
            "context": self._context.to_data(),
        }

    @classmethod
    def from_data(
        cls, data: object, value_from_data: Callable[[Any], Any] | None = None
    ) -> ORMap[Any, Any]:
        """Rebuild a map from :meth:`to_data` output.

        Args:
            data: The plain data.
            value_from_data: Decodes one value; by default the CRDT named by the value's
                ``type`` tag is rebuilt with :func:`vsm.crdt.from_data`.

        Raises:
            MalformedDataError: ``data`` is not a valid map.
        """
        fields = require(data, "ORMap", ("type", "entries", "context"))
        check_tag(fields, "ORMap", cls.TAG)
        if value_from_data is None:
            from vsm.crdt._codec import from_data  # late: the codec imports ORMap

            value_from_data = from_data
        decode = value_from_data

        def payload(rest: list[Any], path: str) -> Any:
            if len(rest) != 1:
                raise MalformedDataError("ORMap", path, "a dot is [replica, n, value]", rest)
            return decode(rest[0])

        return cls._from_rows("ORMap", fields["entries"], fields["context"], payload)

    def __repr__(self) -> str:
        return f"ORMap(<{len(self._entries)} keys>)"
