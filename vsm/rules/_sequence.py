"""The state of one sequence (``first then second [by k] within T``).

Rules:
    1. Time is the rule's clock, as for windows (times never decrease).
    2. At an event at ``t`` with key ``k``: it matches when it satisfies ``second`` and an
       *earlier* event with key ``k`` satisfied ``first`` at some time ``>= t - T`` (exactly
       ``T`` seconds before still counts). Then, if it satisfies ``first``, it becomes the
       latest ``first`` of ``k``; so an event satisfying both sides pairs with an earlier
       ``first``, never with itself. An event without the key field is false and recorded
       nowhere.
    3. Matching does not consume: every ``second`` within ``T`` of the latest ``first`` of its
       key matches. Only the latest ``first`` per key matters, so the state is one time per key.
    4. Bound: at most ``max_keys`` keys. Keys whose latest ``first`` is older than ``t - T``
       are dropped at every event (they can never match again); recording a new key when
       ``max_keys`` remain evicts the key with the oldest ``first`` (``statistics()["evicted"]``
       counts them).
    5. One event at a time (:meth:`step`) and a batch (:meth:`run`) give the same results;
       :meth:`run` uses numpy when it can prove no key would be evicted, and steps through
       the batch otherwise.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from vsm.rules._batch import Bools, Floats
from vsm.rules._keys import NO_KEY, Carried, Grouping, KeyMap, Spans, carried_of

__all__ = ["SequenceState"]


class SequenceState:
    """One sequence's latest ``first`` per key (rules 2-5).

    Args:
        seconds: How long after a ``first`` a ``second`` may come.
        max_keys: Most keys kept (rule 4).
    """

    __slots__ = ("_arrays", "_latest", "evicted", "max_keys", "seconds")

    def __init__(self, seconds: float, max_keys: int) -> None:
        self.seconds = seconds
        self.max_keys = max_keys
        self.evicted = 0
        # Two forms, converted on demand: an ordered dict for step(), arrays (keys, times in
        # time order) for run().
        self._latest: OrderedDict[object, float] | None = OrderedDict()
        self._arrays: tuple[Carried, Floats] | None = None

    def __len__(self) -> int:
        if self._latest is not None:
            return len(self._latest)
        assert self._arrays is not None
        return len(self._arrays[1])

    def step(self, t: float, key: object, first: bool, second: bool) -> bool:
        """Process one event at ``t`` (rule 2); ``key`` is :data:`NO_KEY` when it has none."""
        latest = self._dict()
        low = t - self.seconds
        while latest and next(iter(latest.values())) < low:
            latest.popitem(last=False)  # expired: can never match again (rule 4)
        if key is NO_KEY:
            return False
        matched = False
        if second:
            seen = latest.get(key)
            matched = seen is not None and seen >= low
        if first:
            if key in latest:
                latest.move_to_end(key)
            elif len(latest) >= self.max_keys:
                latest.popitem(last=False)
                self.evicted += 1
            latest[key] = t
        return matched

    def _dict(self) -> OrderedDict[object, float]:
        if self._latest is None:
            assert self._arrays is not None
            (ids, table), times = self._arrays
            keys = [table[i] for i in ids.tolist()]
            self._latest = OrderedDict(zip(keys, times.tolist(), strict=True))
            self._arrays = None
        return self._latest

    def _as_arrays(self) -> tuple[Carried, Floats]:
        if self._arrays is None:
            assert self._latest is not None
            times = np.array(list(self._latest.values()), dtype=np.float64)
            self._arrays = (carried_of(self._latest), times)
            self._latest = None
        return self._arrays

    def run(
        self, t: Floats, keys: KeyMap, grouping: Grouping | None, first: Bools, second: Bools
    ) -> Bools:
        """Process a batch: ``t`` per event, their keys (id -1: none), who is first, second.

        ``grouping`` is the events grouped by key (``None`` without ``by``).

        Returns each event's result, as :meth:`step` would give one by one.
        """
        n = len(t)
        if n == 0:
            return np.zeros(0, np.bool_)
        c_keys, c_times = self._as_arrays()
        c = len(c_times)
        has_key = keys.ids >= 0
        first = first & has_key
        placed = np.flatnonzero(first)
        times = np.concatenate([c_times, t[placed]])
        ids = np.concatenate([keys.ids_of(c_keys), keys.ids[placed]])
        low = t - self.seconds
        spans = Spans(grouping, keys, ids, times, c, first, low, "latest")
        # Entries (not keys) bound the keys: fewer than the bound in all, none is evicted.
        if len(times) > self.max_keys and spans.most_live(first) > self.max_keys:
            return self._step_through(t, keys, first, second)
        if len(times) == 0:
            return np.zeros(n, np.bool_)
        order, sorted_ids = spans.order, spans.sorted_ids
        # In sorted-event space: the latest entry of the event's key before it, if any.
        last = spans.b - spans.gather(first) - 1
        safe = np.clip(last, 0, len(times) - 1)
        same = (last >= 0) & (sorted_ids[safe] == spans.gather(keys.ids))
        found = spans.has_key & same & (times[order][safe] >= spans.gather(low))
        result: Bools = second & spans.scatter(found)
        # The new state: each key's latest first, in time order, dropping the expired.
        ends = np.flatnonzero(np.append(sorted_ids[1:] != sorted_ids[:-1], True))
        latest = np.sort(order[ends])
        latest = latest[times[latest] >= low[-1]]
        self._arrays = (keys.carry(ids[latest]), times[latest])
        self._latest = None
        return result

    def _step_through(self, t: Floats, keys: KeyMap, first: Bools, second: Bools) -> Bools:
        out = np.zeros(len(t), np.bool_)
        lookup = keys.values
        for i, (ti, kid, one, two) in enumerate(
            zip(t.tolist(), keys.ids.tolist(), first.tolist(), second.tolist(), strict=True)
        ):
            out[i] = self.step(ti, lookup[kid] if kid >= 0 else NO_KEY, one, two)
        return out

    def statistics(self) -> dict[str, int]:
        """Keys held, the bound, and evictions so far."""
        return {"keys": len(self), "max_keys": self.max_keys, "evicted": self.evicted}
