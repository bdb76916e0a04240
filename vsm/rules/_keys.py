"""Keys of windows and sequences (``by field``) in a batch: one int id per distinct key.

Rules:
    1. A key is the normalised value of the ``by`` field (see :mod:`vsm.rules._fields`, rule
       4); an event without the field has no key (id -1, :data:`NO_KEY` one at a time). A
       window or sequence without ``by`` gives every event the one key :data:`ALL`.
    2. Ids are local to a batch; the state a window or sequence carries between batches keeps
       key *values* (:data:`Carried`: ids into a table of the distinct keys), mapped to ids
       again (:meth:`KeyMap.ids_of`) at the next batch, looking up each distinct key once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from vsm.rules._batch import Bools, Column, Floats, Ints
from vsm.rules._fields import key_of

__all__ = ["ALL", "NO_KEY", "Carried", "Grouping", "KeyMap", "Need", "Spans", "carried_of"]


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


NO_KEY: Final = _Sentinel("NO_KEY")
"""The key of an event that lacks the ``by`` field."""

ALL: Final = _Sentinel("ALL")
"""The one key of a window or sequence without ``by``."""


class KeyMap:
    """The key ids of a batch's events, and the key value of each id.

    Attributes:
        ids: Per event, the id of its key, or -1.
        values: Per id, the key value.
    """

    __slots__ = ("_index", "ids", "single", "values")

    def __init__(self, ids: Ints, values: list[object], single: bool = False) -> None:
        self.ids = ids
        self.values = values
        self.single = single
        self._index: dict[object, int] | None = None

    @classmethod
    def unkeyed(cls, n: int) -> KeyMap:
        """Every event has the key :data:`ALL`."""
        return cls(np.zeros(n, np.int64), [ALL], single=True)

    @classmethod
    def of_column(cls, column: Column | None, n: int) -> KeyMap:
        """The keys of a field's values (the field may be absent from the whole batch)."""
        ids = np.full(n, -1, np.int64)
        values: list[object] = []
        if column is None:
            return cls(ids, values)
        if column.codes is not None:
            ids = column.codes.astype(np.int64)
            values = [key_of(v) for v in column.levels]
        if column.numbers is not None:
            valid = ~np.isnan(column.numbers)
            distinct, inverse = np.unique(column.numbers[valid], return_inverse=True)
            ids[valid] = len(values) + inverse.reshape(-1)
            values += distinct.tolist()
        return cls(ids, values)

    def ids_of(self, carried: Carried) -> Ints:
        """The ids, in this batch, of keys carried from an earlier one (new ids for new keys).

        Only the distinct keys are looked up; the entries follow by one table lookup.
        """
        ids, table = carried
        if len(ids) == 0:
            return np.zeros(0, np.int64)
        index = self._index
        if index is None:
            index = self._index = {v: i for i, v in enumerate(self.values)}
        remap = np.empty(len(table), np.int64)
        for i, key in enumerate(table):
            found = index.get(key)
            if found is None:
                found = index[key] = len(self.values)
                self.values.append(key)
            remap[i] = found
        return remap[ids]

    def carry(self, ids: Ints) -> Carried:
        """Entries' keys (ids of this batch) as state to carry: ids into a table of values."""
        used, inverse = np.unique(ids, return_inverse=True)
        return inverse.reshape(-1).astype(np.int64), [self.values[i] for i in used.tolist()]


Carried = tuple[Ints, list[object]]
"""Keys carried between batches: per entry an id into a table of key values."""


def carried_of(keys: Iterable[object]) -> Carried:
    """Entries' key values as carried state."""
    index: dict[object, int] = {}
    ids = [index.setdefault(key, len(index)) for key in keys]
    return np.array(ids, dtype=np.int64), list(index)


def _stable_order(ids: Ints, count: int) -> Ints:
    """Indices that sort ``ids`` (>= -1) stably; a radix sort while ids fit in 16 bits."""
    if count < 2**16 - 2:
        return np.argsort((ids + 1).astype(np.uint16), kind="stable")
    return np.argsort(ids, kind="stable")


class Grouping:
    """A batch's events sorted by key (stably, so by time within a key), once per key field.

    Group ``g`` holds the events of key id ``g - 1``; group 0 those without a key.

    Attributes:
        keys: The events' keys.
        order: The permutation that sorts the events by group.
        groups: Each sorted event's group.
        sizes: Events per group.
        composite: ``groups * (n + 1) + order``: sorted, for searches by (group, event).
    """

    __slots__ = ("_starts", "composite", "groups", "keys", "order", "sizes")

    def __init__(self, keys: KeyMap) -> None:
        n = len(keys.ids)
        self.keys = keys
        self.order = _stable_order(keys.ids, len(keys.values) + 1)
        self.groups = keys.ids[self.order] + 1
        self.sizes = np.bincount(self.groups, minlength=len(keys.values) + 1)
        self.composite = self.groups * (n + 1) + self.order
        self._starts = np.minimum(np.cumsum(self.sizes) - self.sizes, max(n - 1, 0))

    def spread(self, per_key: Ints) -> Ints:
        """Per sorted event, the value of its key in ``per_key`` (0 for events without one)."""
        per_group = np.concatenate([[0], per_key[: len(self.sizes) - 1]])
        spread: Ints = np.repeat(per_group, self.sizes)
        return spread

    def within(self, counts: Ints) -> Ints:
        """Running sums of ``counts`` (per sorted event) that restart at each group."""
        running = np.cumsum(counts)
        before = running[self._starts] - counts[self._starts]
        restarted: Ints = running - np.repeat(before, self.sizes)
        return restarted


Need = Literal["count", "range", "latest"]


class Spans:
    """Where each event's window lies among the entries, grouped by key.

    Entries (carried ones first, then the batch's, in arrival order) are sorted by (key,
    arrival): ``order`` is that permutation and ``sorted_ids`` their keys.

    The rest is in *sorted-event space* (events in the order of ``event_order``, ``None``
    when there is one key and the events keep their order). For the ``s``-th sorted event,
    ``has_key[s]`` says whether it has a key, and (meaningless where it has not), as ``need``
    asks: ``count[s]`` entries of its key are in its window (``"count"``); they are
    ``order[a[s]:b[s]]`` (``"range"``); the latest entry of its key up to and including it is
    ``order[b[s] - 1]`` (``"latest"``, when ``b[s] - 1`` is in its group).

    Cost: O(n + e) numpy work, with one binary search per entry (not per event).

    Args:
        grouping: The events grouped by key (or ``None`` for one key).
        keys: The events' keys.
        entry_ids: Each entry's key id, carried entries first.
        entry_times: Each entry's time (non-decreasing).
        carried: How many entries were carried from before the batch.
        enters: Per event, whether it became an entry (only events with a key do).
        low_times: Per event, the oldest time still in its window (non-decreasing).
        need: What to compute.
    """

    __slots__ = (
        "_carried",
        "_enters",
        "_leaves",
        "_times",
        "a",
        "b",
        "count",
        "event_order",
        "has_key",
        "order",
        "sorted_ids",
    )

    def __init__(
        self,
        grouping: Grouping | None,
        keys: KeyMap,
        entry_ids: Ints,
        entry_times: Floats,
        carried: int,
        enters: Bools,
        low_times: Floats,
        need: Need,
    ) -> None:
        n, e = len(keys.ids), len(entry_ids)
        self._carried, self._enters, self._times = carried, enters, entry_times
        # Entry j leaves the window at the first event whose low time passes it.
        self._leaves = leaves = np.searchsorted(low_times, entry_times, side="right")
        self.a = self.b = self.count = np.zeros(0, np.int64)
        if grouping is None:
            self.event_order = None
            self.has_key = keys.ids >= 0
            self.order = np.arange(e)
            self.sorted_ids = entry_ids
            self.b = carried + np.cumsum(enters)
            if need != "latest":
                self.a = np.cumsum(np.bincount(leaves, minlength=n + 1))[:n]
                self.count = self.b - self.a
            return
        count = len(keys.values) + 1
        self.event_order = grouping.order
        self.has_key = grouping.groups > 0
        self.order = _stable_order(entry_ids, count)
        self.sorted_ids = entry_ids[self.order]
        sizes = np.bincount(entry_ids, minlength=count)
        carried_of = grouping.spread(np.bincount(entry_ids[:carried], minlength=count))
        entering = enters[grouping.order].astype(np.int64)
        first = grouping.spread(np.cumsum(sizes) - sizes)
        if need == "latest":
            self.b = first + carried_of + grouping.within(entering)
            return
        # Entries of a key leave in arrival order: find, per entry, the first event of its key
        # that no longer sees it, and count those leavings per event within the group.
        needles = (self.sorted_ids + 1) * (n + 1) + leaves[self.order]
        gone = np.searchsorted(grouping.composite, needles)
        seen = gone < n
        seen &= grouping.groups[np.where(seen, gone, 0)] == self.sorted_ids + 1
        leaving = np.bincount(gone[seen], minlength=n)
        if need == "count":
            self.count = carried_of + grouping.within(entering - leaving)
            return
        self.a = first + grouping.within(leaving)
        self.b = first + carried_of + grouping.within(entering)
        self.count = self.b - self.a

    def most_live(self, at: Bools | None = None) -> int:
        """The most entries, over all keys, in any event's window (its own entry included).

        Only the events of ``at`` are looked at, when it is given.
        """
        n = len(self._enters)
        high = self._carried + np.cumsum(self._enters)
        live = high - np.cumsum(np.bincount(self._leaves, minlength=n + 1))[:n]
        if at is not None:
            live = live[at]
        return int(live.max()) if len(live) else 0

    def expired(self) -> int:
        """How many entries are out of the last event's window (the state keeps the rest)."""
        n = len(self._enters)
        return int(np.count_nonzero(self._leaves <= n - 1))

    def scatter(self, sorted_result: Bools) -> Bools:
        """A result in sorted-event space, back in the events' order."""
        if self.event_order is None:
            return sorted_result
        out = np.empty(len(sorted_result), np.bool_)
        out[self.event_order] = sorted_result
        return out

    def gather(self, per_event: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """A per-event array in sorted-event space."""
        return per_event if self.event_order is None else per_event[self.event_order]
