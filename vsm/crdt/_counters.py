"""Grow-only and positive-negative counters.

Rules:
    1. A :class:`GCounter` keeps one non-decreasing total per replica; merge takes the maximum
       per replica, and the value is the sum.
    2. A :class:`PNCounter` is two GCounters, increments and decrements; value = P - N.
    3. A replica only ever raises its own total (the mutators take the replica id).
"""

from __future__ import annotations

from typing import Any

from vsm.crdt._data import check_tag, require
from vsm.errors import MalformedDataError

__all__ = ["GCounter", "PNCounter"]


class GCounter:
    """A grow-only counter.

    Args:
        totals: replica -> that replica's total (every total >= 0).
    """

    __slots__ = ("_totals",)
    TAG = "gcounter"

    def __init__(self, totals: dict[str, int] | None = None) -> None:
        self._totals: dict[str, int] = {r: n for r, n in (totals or {}).items() if n}

    @property
    def value(self) -> int:
        """The count: the sum of every replica's total."""
        return sum(self._totals.values())

    def totals(self) -> dict[str, int]:
        """A copy of the per-replica totals."""
        return dict(self._totals)

    def increment(self, replica: str, by: int = 1) -> GCounter:
        """Add ``by`` (>= 0) on behalf of ``replica`` in place; return the delta."""
        if by < 0:
            raise ValueError(f"a GCounter only grows; got increment {by}")
        if not replica:
            raise ValueError("replica id must be a non-empty string")
        delta = GCounter({replica: self._totals.get(replica, 0) + by})
        self.apply(delta)
        return delta

    def merge(self, other: GCounter) -> GCounter:
        """Return the join of two counters; neither input changes."""
        out = self.copy()
        out.apply(other)
        return out

    def apply(self, delta: GCounter) -> None:
        """Merge ``delta`` into this counter in place."""
        totals = self._totals
        for replica, n in delta._totals.items():
            if n > totals.get(replica, 0):
                totals[replica] = n

    def copy(self) -> GCounter:
        """Return an independent copy."""
        out = GCounter()
        out._totals = dict(self._totals)
        return out

    def to_data(self) -> dict[str, Any]:
        """Return the counter as sorted plain data."""
        return {"type": self.TAG, "totals": [[r, self._totals[r]] for r in sorted(self._totals)]}

    @classmethod
    def from_data(cls, data: object) -> GCounter:
        """Rebuild a counter from :meth:`to_data` output.

        Raises:
            MalformedDataError: ``data`` is not a valid counter.
        """
        fields = require(data, "GCounter", ("type", "totals"))
        check_tag(fields, "GCounter", cls.TAG)
        return cls(_totals_from_data(fields["totals"], "GCounter"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GCounter):
            return NotImplemented
        return self._totals == other._totals

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"GCounter({self._totals!r})"


class PNCounter:
    """A counter that can go up and down.

    Args:
        p: The increments.
        n: The decrements.
    """

    __slots__ = ("_n", "_p")
    TAG = "pncounter"

    def __init__(self, p: GCounter | None = None, n: GCounter | None = None) -> None:
        self._p = p.copy() if p else GCounter()
        self._n = n.copy() if n else GCounter()

    @property
    def value(self) -> int:
        """The count: increments minus decrements."""
        return self._p.value - self._n.value

    def increment(self, replica: str, by: int = 1) -> PNCounter:
        """Add ``by`` (>= 0) on behalf of ``replica`` in place; return the delta."""
        delta = PNCounter()
        delta._p = self._p.increment(replica, by)
        return delta

    def decrement(self, replica: str, by: int = 1) -> PNCounter:
        """Subtract ``by`` (>= 0) on behalf of ``replica`` in place; return the delta."""
        delta = PNCounter()
        delta._n = self._n.increment(replica, by)
        return delta

    def merge(self, other: PNCounter) -> PNCounter:
        """Return the join of two counters; neither input changes."""
        out = self.copy()
        out.apply(other)
        return out

    def apply(self, delta: PNCounter) -> None:
        """Merge ``delta`` into this counter in place."""
        self._p.apply(delta._p)
        self._n.apply(delta._n)

    def copy(self) -> PNCounter:
        """Return an independent copy."""
        return PNCounter(self._p, self._n)

    def to_data(self) -> dict[str, Any]:
        """Return the counter as sorted plain data."""
        return {
            "type": self.TAG,
            "p": self._p.to_data()["totals"],
            "n": self._n.to_data()["totals"],
        }

    @classmethod
    def from_data(cls, data: object) -> PNCounter:
        """Rebuild a counter from :meth:`to_data` output.

        Raises:
            MalformedDataError: ``data`` is not a valid counter.
        """
        fields = require(data, "PNCounter", ("type", "p", "n"))
        check_tag(fields, "PNCounter", cls.TAG)
        return cls(
            GCounter(_totals_from_data(fields["p"], "PNCounter")),
            GCounter(_totals_from_data(fields["n"], "PNCounter")),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PNCounter):
            return NotImplemented
        return self._p == other._p and self._n == other._n

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"PNCounter(+{self._p.value}, -{self._n.value})"


def _totals_from_data(data: object, what: str) -> dict[str, int]:
    if not isinstance(data, list):
        raise MalformedDataError(what, "totals", "expected a list of [replica, total]", data)
    totals: dict[str, int] = {}
    for item in data:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], str)
            or not item[0]
            or type(item[1]) is not int
            or not 1 <= item[1] < 2**64
            or item[0] in totals
        ):
            raise MalformedDataError(
                what, "totals", "expected a unique [replica, int in [1, 2**64)] pair", item
            )
        totals[item[0]] = item[1]
    return totals
