"""The dot map: the shared machinery of the add-wins ORSet and ORMap.

A dot map is ``key -> {dot: payload}`` plus a :class:`CausalContext`. A key is present while at
least one of its dots survives. The join of two dot maps keeps a dot when both sides hold it, or
when one side holds it and the other has never seen it; everything the other side has seen and
dropped stays dropped. That rule alone gives add-wins semantics, needs no tombstones, and is a
lattice join (commutative, associative, idempotent) because a dot names exactly one event, so
both sides agree on the payload of a shared dot.

Rules:
    1. Every dot in an entry is also in the context.
    2. A dot belongs to exactly one key.
    3. Inner ``{dot: payload}`` dicts are never mutated once built, so states share them freely:
       a merge copies the outer dict and rebuilds only the keys whose dots change.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Any, Generic, Self, TypeVar

from vsm.crdt._context import CausalContext, Dot
from vsm.crdt._data import key_from_plain, key_to_plain, sort_by_bytes
from vsm.errors import MalformedDataError

__all__ = ["DotMap"]

K = TypeVar("K", bound=Hashable)
X = TypeVar("X")

Entries = dict[K, dict[Dot, X]]


class DotMap(Generic[K, X]):
    """Base of :class:`~vsm.crdt.ORSet` and :class:`~vsm.crdt.ORMap`; not used directly."""

    __slots__ = ("_context", "_entries", "_index")

    def __init__(self) -> None:
        self._entries: dict[K, dict[Dot, X]] = {}
        self._context = CausalContext()
        self._index: dict[Dot, K] | None = None

    @classmethod
    def _make(cls, entries: dict[K, dict[Dot, X]], context: CausalContext) -> Self:
        obj = cls.__new__(cls)
        obj._entries = entries
        obj._context = context
        obj._index = None
        return obj

    @property
    def context(self) -> CausalContext:
        """A copy of the causal context (the dots this state has seen)."""
        return self._context.copy()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[K]:
        return iter(self._entries)

    def copy(self) -> Self:
        """Return an independent copy (inner entries are shared; they are never mutated)."""
        return self._make(dict(self._entries), self._context.copy())

    # ------------------------------------------------------------------ join

    def merge(self, other: Self) -> Self:
        """Return the join of two states; neither input changes."""
        return self._make(
            _join(self._entries, self._context, other._entries, other._context),
            self._context.union(other._context),
        )

    def apply(self, delta: Self) -> None:
        """Merge ``delta`` into this state in place (cost grows with the delta, not the state).

        The result equals ``self.merge(delta)``.
        """
        entries, ctx, index = self._entries, self._context, self._dot_index()
        dctx, dentries = delta._context, delta._entries
        for dot in self._removed_by(delta):
            key = index[dot]
            rest = {d: x for d, x in entries[key].items() if d != dot}
            if rest:
                entries[key] = rest
            else:
                del entries[key]
            del index[dot]
        for key, held in dentries.items():
            current = entries.get(key)
            added = {
                d: x
                for d, x in held.items()
                if (current is None or d not in current) and not ctx.contains(d)
            }
            if added:
                entries[key] = {**current, **added} if current else added
                for dot in added:
                    index[dot] = key
        ctx.update(dctx)

    def _removed_by(self, delta: Self) -> list[Dot]:
        """The dots this state holds that merging ``delta`` would remove.

        They are the dots ``delta`` has seen but does not hold under the same key. The walk
        goes over whichever is smaller, the delta's context or this state's dots.
        """
        index, dctx, dentries = self._dot_index(), delta._context, delta._entries
        if dctx.dot_count() <= len(index):
            seen = [d for d in dctx.dots() if d in index]
        else:
            seen = [d for d in index if dctx.contains(d)]
        removed = []
        for dot in seen:
            held = dentries.get(index[dot])
            if held is None or dot not in held:
                removed.append(dot)
        return removed

    def _dot_index(self) -> dict[Dot, K]:
        if self._index is None:
            self._index = {d: k for k, held in self._entries.items() for d in held}
        return self._index

    def _delta(self, key: K, held: dict[Dot, X], covered: list[Dot]) -> Self:
        """Build a delta that sets ``key`` to ``held`` and has seen ``covered``."""
        entries: dict[K, dict[Dot, X]] = {key: held} if held else {}
        return self._make(entries, CausalContext.of([*covered, *held]))

    # ------------------------------------------------------------------ data

    def _entries_to_data(self, payload: Callable[[X], Any]) -> list[Any]:
        rows = []
        for key in sort_by_bytes(self._entries, key_to_plain):
            held = self._entries[key]
            rows.append(
                [key_to_plain(key), [[r, n, *payload(held[(r, n)])] for r, n in sorted(held)]]
            )
        return rows

    @classmethod
    def _from_rows(
        cls,
        what: str,
        rows: object,
        context_data: object,
        payload: Callable[[list[Any], str], X],
    ) -> Self:
        context = CausalContext.from_data(context_data, what)
        if not isinstance(rows, list):
            raise MalformedDataError(what, "entries", "expected a list of [key, dots] rows", rows)
        entries: dict[Any, dict[Dot, X]] = {}
        owner: dict[Dot, Any] = {}
        for i, row in enumerate(rows):
            path = f"entries[{i}]"
            if not isinstance(row, list) or len(row) != 2 or not isinstance(row[1], list):
                raise MalformedDataError(what, path, "expected [key, [dot, ...]]", row)
            key = key_from_plain(row[0], what, path)
            if key in entries:
                raise MalformedDataError(what, path, "duplicate key", row[0])
            if not row[1]:
                raise MalformedDataError(what, path, "a present key holds at least one dot", row)
            held: dict[Dot, X] = {}
            for item in row[1]:
                if (
                    not isinstance(item, list)
                    or len(item) < 2
                    or not isinstance(item[0], str)
                    or not item[0]
                    or type(item[1]) is not int
                    or item[1] < 1
                ):
                    raise MalformedDataError(what, path, "expected a [replica, n, ...] dot", item)
                dot = (item[0], item[1])
                if dot in owner:
                    raise MalformedDataError(what, path, "a dot belongs to one key only", item)
                if not context.contains(dot):
                    raise MalformedDataError(what, path, "dot missing from the context", item)
                owner[dot] = key
                held[dot] = payload(item[2:], path)
            entries[key] = held
        return cls._make(entries, context)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, DotMap)
        return self._entries == other._entries and self._context == other._context

    __hash__ = None  # type: ignore[assignment]  # mutable


def _join(
    ea: dict[K, dict[Dot, X]],
    ca: CausalContext,
    eb: dict[K, dict[Dot, X]],
    cb: CausalContext,
) -> dict[K, dict[Dot, X]]:
    """The entries of the join of ``(ea, ca)`` and ``(eb, cb)``; the inputs are not mutated.

    Most keys hold one contribution, so that case is handled inline (this loop is the cost of
    a merge); several contributions take the general path.
    """
    out = dict(ea)
    a_has, b_has = ca.contains, cb.contains
    a_vv, a_cloud, b_vv, b_cloud = ca._vv, ca._cloud, cb._vv, cb._cloud
    for key, held_b in eb.items():
        held_a = ea.get(key)
        if held_a is held_b:
            continue
        if len(held_b) == 1 and (held_a is None or len(held_a) == 1):
            ((rb, nb),) = held_b
            b_new = not (
                nb <= a_vv.get(rb, 0) or ((cloud := a_cloud.get(rb)) is not None and nb in cloud)
            )
            if held_a is None:
                if b_new:
                    out[key] = held_b
                continue
            ((ra, na),) = held_a
            if ra == rb and na == nb:
                continue  # the same contribution
            a_kept = not (
                na <= b_vv.get(ra, 0) or ((cloud := b_cloud.get(ra)) is not None and na in cloud)
            )
            if a_kept and b_new:
                out[key] = {**held_a, **held_b}
            elif b_new:
                out[key] = held_b
            elif not a_kept:
                del out[key]
            continue
        if held_a is None:
            kept = _unseen(held_b, a_has)
            if kept:
                out[key] = kept
            continue
        merged = {d: x for d, x in held_a.items() if d in held_b or not b_has(d)}
        for d, x in held_b.items():
            if d not in held_a and not a_has(d):
                merged[d] = x
        if merged:
            out[key] = merged
        else:
            del out[key]
    for key in ea.keys() - eb.keys():
        held_a = ea[key]
        if len(held_a) == 1:
            ((ra, na),) = held_a
            if na <= b_vv.get(ra, 0) or ((cloud := b_cloud.get(ra)) is not None and na in cloud):
                del out[key]
            continue
        kept = _unseen(held_a, b_has)
        if kept is not held_a:
            if kept:
                out[key] = kept
            else:
                del out[key]
    return out


def _unseen(held: dict[Dot, X], seen: Callable[[Dot], bool]) -> dict[Dot, X]:
    """The dots of ``held`` that ``seen`` has not seen; ``held`` itself when that is all."""
    if len(held) == 1:
        for d in held:
            return {} if seen(d) else held
    kept = {d: x for d, x in held.items() if not seen(d)}
    return held if len(kept) == len(held) else kept
