"""Add-wins observed-remove set.

Rules:
    1. ``add`` tags the element with a fresh dot and covers the element's older dots.
    2. ``remove`` covers the element's dots and adds none: only the adds it has *observed* are
       removed, so an add concurrent with a remove wins.
    3. No tombstones: a removed element leaves only dots in the causal context.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Generic, TypeVar

from vsm.crdt._data import check_tag, key_to_plain, require
from vsm.crdt._dotmap import DotMap
from vsm.errors import MalformedDataError

__all__ = ["ORSet"]

E = TypeVar("E", bound=Hashable)


class ORSet(DotMap[E, None], Generic[E]):
    """An add-wins set of keys (str, int, bytes or tuples of those)."""

    __slots__ = ()
    TAG = "orset"

    def elements(self) -> frozenset[E]:
        """The elements present now."""
        return frozenset(self._entries)

    def add(self, replica: str, element: E) -> ORSet[E]:
        """Add ``element`` on behalf of ``replica`` in place; return the delta."""
        key_to_plain(element)  # refuse what cannot be serialised, before any change
        dot = self._context.next_dot(replica)
        delta = self._delta(element, {dot: None}, list(self._entries.get(element, ())))
        self.apply(delta)
        return delta

    def remove(self, element: E) -> ORSet[E]:
        """Remove ``element`` (the adds observed so far) in place; return the delta."""
        delta = self._delta(element, {}, list(self._entries.get(element, ())))
        self.apply(delta)
        return delta

    def to_data(self) -> dict[str, Any]:
        """Return the set as sorted plain data."""
        return {
            "type": self.TAG,
            "entries": self._entries_to_data(lambda _: ()),
            "context": self._context.to_data(),
        }

    @classmethod
    def from_data(cls, data: object) -> ORSet[Any]:
        """Rebuild a set from :meth:`to_data` output.

        Raises:
            MalformedDataError: ``data`` is not a valid set.
        """
        fields = require(data, "ORSet", ("type", "entries", "context"))
        check_tag(fields, "ORSet", cls.TAG)

        def payload(rest: list[Any], path: str) -> None:
            if rest:
                raise MalformedDataError("ORSet", path, "a dot is [replica, n]", rest)

        return cls._from_rows("ORSet", fields["entries"], fields["context"], payload)

    def __repr__(self) -> str:
        shown = sorted(map(repr, self._entries))
        return f"ORSet({{{', '.join(shown[:8])}{', ...' if len(shown) > 8 else ''}}})"
