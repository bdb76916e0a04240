"""The state of one time window (``count/sum/avg/min/max(...) [by k] within T op v``).

Rules:
    1. Time: the caller passes each event's time ``t`` on the rule's clock, which is the
       latest ``at`` seen (an ``at`` earlier than that counts as no time elapsed), so times
       never decrease.
    2. An *entry* is an event that matched the window's ``where`` (and has the key field, and
       for ``sum``/``avg``/``min``/``max`` a finite number in the field). At an event at ``t``:
       first every entry older than ``t - T`` leaves (an entry at exactly ``t - T`` stays: the
       window is ``[t - T, t]``), then the event enters if it is an entry, then the aggregate
       over the entries of the event's key is compared with ``v``. An event without the key
       field gives false.
    3. Aggregates: ``count`` of the entries, ``sum`` of their values (0 when empty); ``avg``,
       ``min``, ``max`` of their values, and false when there are none. ``sum`` is exact:
       the sum of the values rounded once to float64 (so it does not depend on the order of
       additions and removals); ``avg`` is that sum divided by the count. A sum beyond the
       float range is +-inf.
    4. Bound: at most ``max_entries`` entries, over all keys. An entry entering a full window
       first evicts the oldest entry (``statistics()["evicted"]`` counts them); a window that
       evicts reads as a shorter window until the flood passes.
    5. One event at a time (:meth:`step`) and a batch (:meth:`run`) give the same results and
       leave the same state. :meth:`run` computes the whole batch with numpy when it can prove
       no entry would be evicted; otherwise it steps through the batch. Its ``sum``/``avg``
       first use prefix sums and decide with them only where an error bound shows the
       decision cannot change, and sum exactly (rule 3) where it could.
"""

from __future__ import annotations

import math
import operator
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import numpy as np

from vsm.rules._ast import Aggregate, Operator
from vsm.rules._batch import Bools, Floats, Ints
from vsm.rules._keys import NO_KEY, Carried, Grouping, KeyMap, Need, Spans, carried_of

__all__ = ["DECIDE", "WindowState", "compare", "exact_sum"]

_SCALE: Final = 1 << 1074
"""Every finite float64 is an integer multiple of 2**-1074: scaled by this, sums are exact."""
_EPS: Final = 2.0**-53
_TINY: Final = 2.0**-1000


DECIDE: Final[dict[str, Callable[[Any, Any], Any]]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
"""Each operator as a function: on floats for one event, elementwise on arrays for a batch."""


def compare(op: str, left: float, right: float) -> bool:
    """``left op right``."""
    return bool(DECIDE[op](left, right))


def _decide(op: str, values: Floats, target: float) -> Bools:
    return np.asarray(DECIDE[op](values, target), dtype=np.bool_)


def _scaled(value: float) -> int:
    numerator, denominator = value.as_integer_ratio()
    return numerator * (_SCALE // denominator)


def _unscaled(total: int) -> float:
    try:
        return total / _SCALE  # int / int rounds correctly, once
    except OverflowError:
        return math.inf if total > 0 else -math.inf


def exact_sum(values: list[float]) -> float:
    """The sum of ``values`` rounded once to float64 (+-inf beyond range)."""
    return _unscaled(sum(map(_scaled, values)))


class _Group:
    """The entries of one key: their count, exact sum, and a monotonic deque for min/max."""

    __slots__ = ("count", "extremes", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0
        self.extremes: deque[tuple[int, float]] = deque()


class WindowState:
    """One window's entries (rules 2-5).

    Args:
        func: The aggregate.
        seconds: The window's length ``T``.
        op: How the aggregate compares with ``value``.
        value: The number it is compared with.
        max_entries: Most entries kept (rule 4).
    """

    __slots__ = (
        "_arrays",
        "_entries",
        "_groups",
        "_seq",
        "evicted",
        "func",
        "max_entries",
        "op",
        "seconds",
        "value",
    )

    def __init__(
        self, func: Aggregate, seconds: float, op: Operator, value: float, max_entries: int
    ) -> None:
        self.func = func
        self.seconds = seconds
        self.op = op
        self.value = value
        self.max_entries = max_entries
        self.evicted = 0
        # The state lives in one of two forms, converted on demand: deques for step(), arrays
        # (times, keys, values, in arrival order) for run().
        self._entries: deque[tuple[float, object, float, int]] | None = deque()
        self._groups: dict[object, _Group] = {}
        self._arrays: tuple[Floats, Carried, Floats] | None = None
        self._seq = 0

    def __len__(self) -> int:
        if self._entries is not None:
            return len(self._entries)
        assert self._arrays is not None
        return len(self._arrays[0])

    # ---------------------------------------------------------------- one event

    def step(self, t: float, key: object, enters: bool, value: float) -> bool:
        """Process one event at ``t`` (rule 2); ``key`` is :data:`NO_KEY` when it has none."""
        entries = self._deques()
        low = t - self.seconds
        while entries and entries[0][0] < low:
            self._leave()
        if key is NO_KEY:
            return False
        if enters:
            if len(entries) >= self.max_entries:
                self._leave()
                self.evicted += 1
            self._enter(t, key, value)
        group = self._groups.get(key)
        return self._decide(group)

    def _decide(self, group: _Group | None) -> bool:
        func = self.func
        if func == "count":
            return compare(self.op, float(group.count if group else 0), self.value)
        if func == "sum":
            return compare(self.op, _unscaled(group.total) if group else 0.0, self.value)
        if group is None:
            return False
        if func == "avg":
            return compare(self.op, _unscaled(group.total) / group.count, self.value)
        return compare(self.op, group.extremes[0][1], self.value)

    def _enter(self, t: float, key: object, value: float) -> None:
        assert self._entries is not None
        seq = self._seq
        self._seq += 1
        self._entries.append((t, key, value, seq))
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group()
        group.count += 1
        func = self.func
        if func in ("sum", "avg"):
            group.total += _scaled(value)
        elif func in ("min", "max"):
            extremes = group.extremes
            if func == "max":
                while extremes and extremes[-1][1] <= value:
                    extremes.pop()
            else:
                while extremes and extremes[-1][1] >= value:
                    extremes.pop()
            extremes.append((seq, value))

    def _leave(self) -> None:
        assert self._entries is not None
        _, key, value, seq = self._entries.popleft()
        group = self._groups[key]
        group.count -= 1
        if group.count == 0:
            del self._groups[key]
        elif self.func in ("sum", "avg"):
            group.total -= _scaled(value)
        elif group.extremes and group.extremes[0][0] == seq:
            group.extremes.popleft()

    def _deques(self) -> deque[tuple[float, object, float, int]]:
        if self._entries is None:
            assert self._arrays is not None
            times, (ids, table), values = self._arrays
            self._arrays = None
            self._entries = deque()
            self._groups = {}
            keys = [table[i] for i in ids.tolist()]
            for t, key, value in zip(times.tolist(), keys, values.tolist(), strict=True):
                self._enter(t, key, value)
        return self._entries

    def _as_arrays(self) -> tuple[Floats, Carried, Floats]:
        if self._arrays is None:
            assert self._entries is not None
            entries = self._entries
            self._arrays = (
                np.array([e[0] for e in entries], dtype=np.float64),
                carried_of(e[1] for e in entries),
                np.array([e[2] for e in entries], dtype=np.float64),
            )
            self._entries = None
            self._groups = {}
        return self._arrays

    # ---------------------------------------------------------------- a batch

    def run(
        self, t: Floats, keys: KeyMap, grouping: Grouping | None, enters: Bools, values: Floats
    ) -> Bools:
        """Process a batch: ``t`` per event, their keys (id -1: none), who enters, values.

        ``grouping`` is the events grouped by key (``None`` without ``by``).

        Returns the window's result at each event, as :meth:`step` would give one by one.
        """
        n = len(t)
        if n == 0:
            return np.zeros(0, np.bool_)
        c_times, c_keys, c_values = self._as_arrays()
        c = len(c_times)
        c_ids = keys.ids_of(c_keys)
        enters = enters & (keys.ids >= 0)
        placed = np.flatnonzero(enters)
        times = np.concatenate([c_times, t[placed]])
        ids = np.concatenate([c_ids, keys.ids[placed]])
        vals = np.concatenate([c_values, values[placed]])
        need: Need = "count" if self.func == "count" else "range"
        spans = Spans(grouping, keys, ids, times, c, enters, t - self.seconds, need)
        # Fewer entries than the bound in all: no window can be full, no need to look closer.
        if len(times) > self.max_entries and spans.most_live() > self.max_entries:
            return self._step_through(t, keys, enters, values)
        result = spans.scatter(self._aggregate(spans, vals))
        start = spans.expired()
        self._arrays = (times[start:], keys.carry(ids[start:]), vals[start:])
        self._entries = None
        self._groups = {}
        return result

    def _step_through(self, t: Floats, keys: KeyMap, enters: Bools, values: Floats) -> Bools:
        out = np.zeros(len(t), np.bool_)
        lookup = keys.values
        for i, (ti, kid, ent, value) in enumerate(
            zip(t.tolist(), keys.ids.tolist(), enters.tolist(), values.tolist(), strict=True)
        ):
            out[i] = self.step(ti, lookup[kid] if kid >= 0 else NO_KEY, ent, value)
        return out

    def _aggregate(self, spans: Spans, vals: Floats) -> Bools:
        """Each event's result from its key's entries in its window (sorted-event space)."""
        has_key = spans.has_key
        order, a, b = spans.order, spans.a, spans.b
        count = spans.count.astype(np.float64)
        func = self.func
        if func == "count":
            return has_key & _decide(self.op, count, self.value)
        sorted_vals = vals[order]
        nonempty = has_key & (b > a)
        if func in ("min", "max"):
            extreme = _range_extreme(sorted_vals, a, b, nonempty, func)
            return nonempty & _decide(self.op, extreme, self.value)
        totals = self._sums(sorted_vals, a, b, count, nonempty, func)
        if func == "sum":
            return has_key & _decide(self.op, totals, self.value)
        return nonempty & _decide(self.op, totals, self.value)

    def _sums(
        self, sorted_vals: Floats, a: Ints, b: Ints, count: Floats, nonempty: Bools, func: str
    ) -> Floats:
        """Sums (or averages) of each event's entries, exact where the decision is close."""
        # Overflow to inf (or inf - inf) only makes an estimate unsure: it is then summed exactly.
        with np.errstate(over="ignore", invalid="ignore"):
            approx, sure = self._estimate(sorted_vals, a, b, count, nonempty, func)
        close = np.flatnonzero(nonempty & ~sure)
        if len(close):
            approx = approx.copy()
            for i in close.tolist():
                total = exact_sum(sorted_vals[a[i] : b[i]].tolist())
                approx[i] = total / count[i] if func == "avg" else total
        return approx

    def _estimate(
        self, sorted_vals: Floats, a: Ints, b: Ints, count: Floats, nonempty: Bools, func: str
    ) -> tuple[Floats, Bools]:
        """Sums (or averages) from prefix sums, and where an error bound shows them decisive."""
        prefix = np.concatenate([[0.0], np.cumsum(sorted_vals)])
        approx = np.where(b > a, prefix[b] - prefix[a], 0.0)  # an empty window sums to 0
        magnitude = float(np.abs(sorted_vals).sum())
        # Averages are judged on their own scale: the sum's error shrinks by the count.
        divisor = np.where(nonempty, count, 1.0) if func == "avg" else np.ones_like(count)
        approx = approx / divisor
        if magnitude < 2.0**53 and bool(np.all(sorted_vals == np.round(sorted_vals))):
            # Integers below 2**53: every partial sum is exact, so approx is the exact sum.
            return approx, np.ones(len(approx), np.bool_)
        # Each prefix sum is off by at most (e + 4) * eps * (sum of |values| before it); bound
        # that by the total, once, rather than per event.
        drift = 2.0 * (len(sorted_vals) + 4) * _EPS * 2.0 * magnitude
        bound = (drift + _EPS * np.abs(approx * divisor)) / divisor
        margin = 4.0 * (bound + _EPS * (np.abs(approx) + abs(self.value))) + _TINY
        sure: Bools = np.abs(approx - self.value) > margin
        return approx, sure

    def statistics(self) -> dict[str, int]:
        """Entries held, the bound, and evictions so far."""
        return {"entries": len(self), "max_entries": self.max_entries, "evicted": self.evicted}


def _range_extreme(values: Floats, a: Ints, b: Ints, nonempty: Bools, func: str) -> Floats:
    """The min or max of ``values[a:b]`` per query, by a sparse table (exact; any where empty).

    Row ``j`` of the table holds the extreme of each run of ``2**j`` values; a query of length
    ``m`` reads two runs of ``2**floor(log2(m))`` that cover it.
    """
    e = len(values)
    if e == 0:
        return np.zeros(len(a), np.float64)
    pick = np.maximum if func == "max" else np.minimum
    rows = int(e).bit_length()
    table = np.empty((rows, e), np.float64)
    table[0] = values
    for j in range(1, rows):
        width = 1 << (j - 1)
        table[j, : e - width] = pick(table[j - 1, : e - width], table[j - 1, width:])
        table[j, e - width :] = table[j - 1, e - width :]  # unread; keeps the row defined
    lengths = np.where(nonempty, b - a, 1)
    level = np.frexp(lengths.astype(np.float64))[1].astype(np.int64) - 1  # floor(log2(m))
    low = np.where(nonempty, a, 0)
    high = np.where(nonempty, b - (1 << level), 0)
    extreme: Floats = pick(table[level, low], table[level, high])
    return extreme
