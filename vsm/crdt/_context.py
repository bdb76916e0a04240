"""Dots and causal contexts: the causal bookkeeping of the add-wins CRDTs.

A *dot* ``(replica, n)`` names the n-th event a replica created. A *causal context* is the set
of dots a state has seen, kept compact as a version vector (every dot ``(r, 1..vv[r])``) plus a
*cloud* of dots beyond it with gaps. It holds no per-element tombstones: an element removed is an
element whose dots are in the context but in no entry.

Rules:
    1. After :meth:`CausalContext.compact` the representation is canonical: a cloud dot
       ``(r, n)`` always has ``n > vv[r] + 1``, and no replica maps to 0 or an empty set. Equal
       sets of dots therefore compare and serialise equal.
    2. :meth:`next_dot` never reissues a dot the context has seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from vsm.errors import MalformedDataError

__all__ = ["CausalContext", "Dot"]

Dot = tuple[str, int]
"""``(replica, n)``: the n-th event created by ``replica`` (n starts at 1)."""


class CausalContext:
    """The set of dots a state has seen.

    Args:
        vv: The compact part: replica -> highest contiguous counter.
        cloud: Dots beyond the compact part, by replica.
    """

    __slots__ = ("_cloud", "_vv")

    def __init__(
        self, vv: dict[str, int] | None = None, cloud: dict[str, set[int]] | None = None
    ) -> None:
        self._vv: dict[str, int] = dict(vv) if vv else {}
        self._cloud: dict[str, set[int]] = {r: set(s) for r, s in cloud.items()} if cloud else {}
        if self._cloud:
            self.compact()

    @classmethod
    def of(cls, dots: Iterable[Dot]) -> CausalContext:
        """Build a context that holds exactly ``dots``."""
        ctx = cls()
        cloud = ctx._cloud
        for replica, n in dots:
            cloud.setdefault(replica, set()).add(n)
        ctx.compact()
        return ctx

    def contains(self, dot: Dot) -> bool:
        """Whether the context has seen ``dot``."""
        replica, n = dot
        if n <= self._vv.get(replica, 0):
            return True
        extra = self._cloud.get(replica)
        return extra is not None and n in extra

    __contains__ = contains

    def max_counter(self, replica: str) -> int:
        """The highest counter seen from ``replica`` (0 if none)."""
        top = self._vv.get(replica, 0)
        extra = self._cloud.get(replica)
        return max(top, max(extra)) if extra else top

    def next_dot(self, replica: str) -> Dot:
        """A dot for a new event of ``replica``, never seen by this context."""
        return (replica, self.max_counter(replica) + 1)

    def add(self, dot: Dot) -> None:
        """Record ``dot`` in place."""
        replica, n = dot
        top = self._vv.get(replica, 0)
        if n == top + 1 and replica not in self._cloud:
            self._vv[replica] = n
        elif n > top:
            self._cloud.setdefault(replica, set()).add(n)
            self._compact_one(replica)

    def update(self, other: CausalContext) -> None:
        """Union ``other`` into this context, in place (cost grows with ``other``)."""
        vv, cloud = self._vv, self._cloud
        for replica, n in other._vv.items():
            if n > vv.get(replica, 0):
                vv[replica] = n
        for replica, extra in other._cloud.items():
            mine = cloud.get(replica)
            if mine is None:
                cloud[replica] = set(extra)
            else:
                mine |= extra
        for replica in other._vv.keys() | other._cloud.keys():
            if replica in cloud:
                self._compact_one(replica)

    def union(self, other: CausalContext) -> CausalContext:
        """Return the union of two contexts; neither input changes."""
        out = self.copy()
        out.update(other)
        return out

    def compact(self) -> None:
        """Fold cloud dots that extend the version vector into it (rule 1)."""
        for replica in list(self._cloud):
            self._compact_one(replica)

    def _compact_one(self, replica: str) -> None:
        extra = self._cloud.get(replica)
        if extra is None:
            return
        top = self._vv.get(replica, 0)
        if top:
            extra.difference_update([n for n in extra if n <= top])
        while top + 1 in extra:
            top += 1
            extra.discard(top)
        if top:
            self._vv[replica] = top
        if not extra:
            del self._cloud[replica]

    def restricted(self, replicas: Iterable[str]) -> CausalContext:
        """Return the part of this context whose dots belong to ``replicas``."""
        keep = set(replicas)
        return CausalContext(
            {r: n for r, n in self._vv.items() if r in keep},
            {r: s for r, s in self._cloud.items() if r in keep},
        )

    def replicas(self) -> set[str]:
        """The replicas with at least one dot in this context."""
        return set(self._vv) | set(self._cloud)

    def dots(self) -> Iterator[Dot]:
        """Every dot in the context (the compact part expanded: use on small contexts)."""
        for replica, top in self._vv.items():
            for n in range(1, top + 1):
                yield (replica, n)
        for replica, extra in self._cloud.items():
            for n in extra:
                yield (replica, n)

    def dot_count(self) -> int:
        """How many dots the context holds."""
        return sum(self._vv.values()) + sum(len(s) for s in self._cloud.values())

    def copy(self) -> CausalContext:
        """Return an independent copy."""
        out = CausalContext()
        out._vv = dict(self._vv)
        out._cloud = {r: set(s) for r, s in self._cloud.items()}
        return out

    def to_data(self) -> dict[str, Any]:
        """Return the context as sorted plain data."""
        return {
            "vv": [[r, self._vv[r]] for r in sorted(self._vv)],
            "cloud": [[r, sorted(self._cloud[r])] for r in sorted(self._cloud)],
        }

    @classmethod
    def from_data(cls, data: object, what: str = "CausalContext") -> CausalContext:
        """Rebuild a context from :meth:`to_data` output.

        Raises:
            MalformedDataError: ``data`` is not a valid context.
        """
        if not isinstance(data, dict) or set(data) != {"vv", "cloud"}:
            raise MalformedDataError(
                what, "context", "expected {'vv': [...], 'cloud': [...]}", data
            )
        vv: dict[str, int] = {}
        for item in _pairs(data["vv"], what, "context.vv"):
            replica, n = item
            if type(n) is not int or not 1 <= n < 2**64:
                raise MalformedDataError(
                    what, f"context.vv[{replica!r}]", "expected an int in [1, 2**64)", n
                )
            vv[replica] = n
        cloud: dict[str, set[int]] = {}
        for item in _pairs(data["cloud"], what, "context.cloud"):
            replica, counters = item
            if not isinstance(counters, list) or not all(
                type(n) is int and 1 <= n < 2**64 for n in counters
            ):
                raise MalformedDataError(
                    what, f"context.cloud[{replica!r}]", "expected a list of ints >= 1", counters
                )
            cloud[replica] = set(counters)
        return cls(vv, cloud)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CausalContext):
            return NotImplemented
        return self._vv == other._vv and self._cloud == other._cloud

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CausalContext(vv={self._vv!r}, cloud={self._cloud!r})"


def _pairs(data: object, what: str, path: str) -> Iterator[tuple[str, Any]]:
    if not isinstance(data, list):
        raise MalformedDataError(what, path, "expected a list of [replica, value] pairs", data)
    seen: set[str] = set()
    for item in data:
        if not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], str):
            raise MalformedDataError(what, path, "expected a [replica, value] pair", item)
        if not item[0] or item[0] in seen:
            raise MalformedDataError(what, path, "replica ids must be non-empty and unique", item)
        seen.add(item[0])
        yield item[0], item[1]
