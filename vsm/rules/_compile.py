"""Compiling a rule once into an evaluator with two modes: one event at a time, or a batch.

Rules:
    1. ``AllWithin(a, b, ...)`` compiles as ``count(a) within T >= 1 and count(b) within T >=
       1 ...`` (same ``by``): "each seen in the last T seconds", one meaning in both modes.
    2. Windows and sequences are *stateful*: their result at an event depends on the events
       before. They are found once (innermost first; equal nodes share one state) and, at each
       event, every one is updated *before* the condition is read, so no ``and``/``or``
       short-circuit can skip an update and both modes see the same history.
    3. A rule with a stateful part needs a finite number in ``at``; an event without one raises
       :class:`EventFieldError` before any state changes (in a batch: before the batch). Its
       clock is the latest ``at`` seen; an earlier ``at`` counts as no time elapsed.
    4. One event (:meth:`CompiledRule.evaluate`) and a batch (:meth:`CompiledRule.evaluate_batch`)
       give the same answers, and a batch leaves the same state as its events one by one, so
       batches may be cut anywhere.
    5. Counters: ``input`` (events offered), ``matched``, ``filtered`` (= input - matched).
    6. Bound: each window keeps at most ``max_entries`` entries and each sequence at most
       ``max_entries`` keys, evicting the oldest (see ``_window`` and ``_sequence``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from vsm.rules._ast import AllWithin, And, Condition, Not, Or, Then, Window
from vsm.rules._batch import Batch, Bools, Events, Floats, Ints, as_batch
from vsm.rules._errors import EventFieldError
from vsm.rules._fields import key_of, row_of
from vsm.rules._keys import ALL, NO_KEY, Grouping, KeyMap
from vsm.rules._parse import MAX_DEPTH
from vsm.rules._rule import Rule
from vsm.rules._sequence import SequenceState
from vsm.rules._stateless import Source, vector
from vsm.rules._window import WindowState

__all__ = ["CompiledRule", "compile_rule", "desugar", "fields_read", "is_stateful"]


_TIMES = ("at", "running max")
"""Where a batch's running maximum of ``at`` is kept in the memo (one per batch, any rule)."""

_NO_SLOTS: list[bool] = []
"""The stateful results of a rule without windows or sequences (never written)."""

Row = dict[str, Any]
Slots = list[bool]
Function = Callable[[Row, Slots], bool]


def desugar(node: Condition) -> Condition:
    """``node`` with every ``AllWithin`` rewritten as a conjunction of count windows (rule 1)."""
    match node:
        case AllWithin(operands=operands, by=by, seconds=seconds):
            windows = tuple(
                Window("count", None, desugar(c), by, seconds, ">=", 1.0) for c in operands
            )
            return windows[0] if len(windows) == 1 else And(windows)
        case And(operands=operands):
            return And(tuple(desugar(c) for c in operands))
        case Or(operands=operands):
            return Or(tuple(desugar(c) for c in operands))
        case Not(operand=operand):
            return Not(desugar(operand))
        case Window(where=where) if where is not None:
            return Window(
                node.func, node.field, desugar(where), node.by, node.seconds, node.op, node.value
            )
        case Then(first=first, second=second):
            return Then(desugar(first), desugar(second), node.by, node.seconds)
    return node


def _children(node: Condition) -> tuple[Condition, ...]:
    match node:
        case And(operands=operands) | Or(operands=operands) | AllWithin(operands=operands):
            return operands
        case Not(operand=operand):
            return (operand,)
        case Window(where=where):
            return () if where is None else (where,)
        case Then(first=first, second=second):
            return (first, second)
    return ()


def is_stateful(node: Condition) -> bool:
    """Whether ``node`` holds a window, a sequence or a trailing ``within``."""
    return isinstance(node, Window | Then | AllWithin) or any(map(is_stateful, _children(node)))


def fields_read(node: Condition) -> set[str]:
    """The fields ``node`` reads (``at`` included when it is stateful)."""
    names = {n for n in (getattr(node, a, None) for a in ("field", "by")) if isinstance(n, str)}
    for child in _children(node):
        names |= fields_read(child)
    if is_stateful(node):
        names.add("at")
    return names


def _depth(node: Condition) -> int:
    return 1 + max(map(_depth, _children(node)), default=0)


class _Stateful:
    """A window or sequence of the rule: its state and how to feed it."""

    __slots__ = ("by", "field", "first", "node", "second", "state", "where")

    def __init__(self, node: Window | Then, source: Source, slot: int, max_entries: int) -> None:
        self.node = node
        self.by = node.by
        self.first: Function | None = None
        self.second: Function | None = None
        self.where: Function | None = None
        self.field: str | None = None
        self.state: WindowState | SequenceState
        if isinstance(node, Window):
            self.field = node.field
            if node.where is not None:
                self.where = source.function(node.where, f"where_{slot}")
            self.state = WindowState(node.func, node.seconds, node.op, node.value, max_entries)
        else:
            self.first = source.function(node.first, f"first_{slot}")
            self.second = source.function(node.second, f"second_{slot}")
            self.state = SequenceState(node.seconds, max_entries)

    def step(self, t: float, row: Row, slots: Slots) -> bool:
        if self.by is None:
            key: object = ALL
        else:
            value = row.get(self.by, NO_KEY)
            key = NO_KEY if value is NO_KEY else key_of(value)
        state = self.state
        if isinstance(state, SequenceState):
            assert self.first is not None
            assert self.second is not None
            return state.step(t, key, self.first(row, slots), self.second(row, slots))
        enters = self.where is None or self.where(row, slots)
        number = 0.0
        if self.field is not None:
            found = row.get(self.field)
            enters = enters and type(found) is float and math.isfinite(found)
            number = found if enters else 0.0  # type: ignore[assignment]  # a float
        return state.step(t, key, enters, number)

    def run(
        self, batch: Batch, t: Floats, vec: Callable[[Condition], Bools], shared: dict[Any, Any]
    ) -> Bools:
        n = batch.n
        if self.by is None:
            keys, grouping = KeyMap.unkeyed(n), None
        else:
            # The keys of one field, grouped, serve every window and sequence by that field.
            found = shared.get(("by", self.by))
            if found is None:
                keys = KeyMap.of_column(batch.columns.get(self.by), n)
                found = shared[("by", self.by)] = (keys, Grouping(keys))
            keys, grouping = found
        node, state = self.node, self.state
        if isinstance(node, Then):
            assert isinstance(state, SequenceState)
            return state.run(t, keys, grouping, vec(node.first), vec(node.second))
        assert isinstance(state, WindowState)
        enters = np.ones(n, np.bool_) if node.where is None else vec(node.where)
        values = np.zeros(n, np.float64)
        if node.field is not None:
            column = batch.columns.get(node.field)
            if column is None or column.numbers is None:
                enters = np.zeros(n, np.bool_)
            else:
                enters = enters & np.isfinite(column.numbers)
                values = column.numbers  # read only where an event enters: finite there
        return state.run(t, keys, grouping, enters, values)


class CompiledRule:
    """A rule compiled for evaluation (rules 1-6). Build it with :func:`compile_rule`.

    Attributes:
        rule: The rule compiled.
        stateful: Whether it holds windows or sequences (and so needs ``at``).
        fields: The fields it reads.
        source: The Python source of its one-event form, for the curious.
    """

    __slots__ = (
        "_clock",
        "_condition",
        "_function",
        "_input",
        "_matched",
        "_nodes",
        "_pure",
        "fields",
        "rule",
        "source",
        "stateful",
    )

    def __init__(self, rule: Rule, max_entries: int = 10_000) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries must be an int >= 1, got {max_entries!r}")
        condition = desugar(rule.condition)
        if _depth(condition) > MAX_DEPTH:
            raise ValueError(f"rule {rule.name!r} nests deeper than {MAX_DEPTH}")
        found: dict[Condition, int] = {}
        order: list[Window | Then] = []
        self._pure: dict[Condition, bool] = {}

        def visit(node: Condition) -> bool:
            stateful = False
            for child in _children(node):
                stateful = visit(child) or stateful
            if isinstance(node, Window | Then):
                stateful = True
                if node not in found:
                    found[node] = len(order)
                    order.append(node)
            self._pure[node] = not stateful
            return stateful

        visit(condition)
        source = Source(found)
        self._nodes = [
            _Stateful(node, source, slot, max_entries) for slot, node in enumerate(order)
        ]
        self._function = source.function(condition, "condition")
        self._condition = condition
        self.source = "\n".join(source.namespace["__sources__"])
        self.rule = rule
        self.stateful = bool(order)
        self.fields = frozenset(fields_read(condition))
        self._clock: float | None = None
        self._input = 0
        self._matched = 0

    @property
    def name(self) -> str:
        """The rule's name."""
        return self.rule.name

    @property
    def input(self) -> int:
        """Events offered."""
        return self._input

    @property
    def matched(self) -> int:
        """Events that matched."""
        return self._matched

    @property
    def filtered(self) -> int:
        """Events that did not match (``input - matched``)."""
        return self._input - self._matched

    def evaluate(self, fields: Mapping[str, Any]) -> bool:
        """Whether one event (its fields, as :func:`fields_of` gives them) matches.

        Raises:
            EventFieldError: The rule is stateful and ``at`` is not a finite number (rule 3).
        """
        row = row_of(fields, self.fields)
        if self.stateful:
            check_time(row)
        return self.evaluate_row(row)

    def evaluate_row(self, row: Row) -> bool:
        """:meth:`evaluate` on a row already normalised (and ``at`` already checked)."""
        self._input += 1
        if not self._nodes:
            if self._function(row, _NO_SLOTS):
                self._matched += 1
                return True
            return False
        slots: Slots = []
        at: float = row["at"]
        clock = self._clock
        t = self._clock = at if clock is None or at > clock else clock
        for node in self._nodes:
            slots.append(node.step(t, row, slots))
        if self._function(row, slots):
            self._matched += 1
            return True
        return False

    def evaluate_batch(
        self, events: Events, memo: dict[Any, Any] | None = None, n: int | None = None
    ) -> Ints:
        """The indices, in order, of the batch's events that match.

        Args:
            events: The events: a :class:`Batch` (:func:`columns_of`), arrays by field (see
                :meth:`Batch.from_arrays`), or events or their field dicts.
            memo: Work already done on this batch (masks of stateless conditions, keys grouped
                by field), shared by the rules of a set; ``None`` for none.
            n: How many events, for arrays by field (read from the arrays when ``None``).

        Raises:
            EventFieldError: The rule is stateful and an event's ``at`` is not a finite number;
                nothing has changed (rule 3).
        """
        batch = as_batch(events, n)
        indices = np.flatnonzero(self._run(batch, memo))
        self._input += batch.n
        self._matched += len(indices)
        return indices

    def mask(
        self, events: Events, memo: dict[Any, Any] | None = None, n: int | None = None
    ) -> Bools:
        """Like :meth:`evaluate_batch`, as a bool mask over the batch."""
        batch = as_batch(events, n)
        mask = self._run(batch, memo)
        self._input += batch.n
        self._matched += int(np.count_nonzero(mask))
        return mask

    def _run(self, batch: Batch, memo: dict[Any, Any] | None) -> Bools:
        if batch.n == 0:
            if self.stateful:
                batch_time(batch)
            return np.zeros(0, np.bool_)
        if memo is None:
            memo = {}
        at = None
        if self.stateful:
            at = memo.get(_TIMES)
            if at is None:
                at = memo[_TIMES] = np.maximum.accumulate(batch_time(batch))
        pure = self._pure.__getitem__
        results: dict[Condition, Bools] = {}

        def vec(node: Condition) -> Bools:
            return vector(node, batch, results, memo, pure)

        if at is not None:
            t = at if self._clock is None or self._clock <= at[0] else np.maximum(at, self._clock)
            for node in self._nodes:
                results[node.node] = node.run(batch, t, vec, memo)
            self._clock = float(t[-1])
        return vec(self._condition)

    def statistics(self) -> dict[str, int]:
        """Counters (rule 5), and the entries held and evicted by its windows and sequences."""
        held = sum(len(node.state) for node in self._nodes)
        evicted = sum(node.state.evicted for node in self._nodes)
        return {
            "input": self._input,
            "matched": self._matched,
            "filtered": self.filtered,
            "entries": held,
            "evicted": evicted,
        }

    def __repr__(self) -> str:
        return f"CompiledRule({self.rule.name!r}, input={self._input}, matched={self._matched})"


def compile_rule(rule: Rule, *, max_entries: int = 10_000) -> CompiledRule:
    """Compile ``rule`` once, for either mode of evaluation (rules 1-6).

    Args:
        rule: The rule (``enabled`` is ignored: it is the rule set's business).
        max_entries: Most entries each window, and keys each sequence, keeps.

    Raises:
        ValueError: ``max_entries`` is out of range, or the condition nests too deep.
    """
    return CompiledRule(rule, max_entries)


def check_time(row: Mapping[str, Any]) -> None:
    """Raise :class:`EventFieldError` unless ``row["at"]`` is a finite float (rule 3)."""
    at = row.get("at")
    if type(at) is not float or not math.isfinite(at):
        raise EventFieldError("at", at, "a rule with windows or sequences needs a finite time")


def batch_time(batch: Batch) -> Floats:
    """The batch's ``at`` column as floats, checked finite everywhere (rule 3)."""
    column = batch.columns.get("at")
    at = None if column is None else column.numbers
    if at is None:
        at = np.full(batch.n, np.nan)
    bad = np.flatnonzero(~np.isfinite(at))
    if len(bad):
        i = int(bad[0])
        raise EventFieldError(
            "at",
            batch.row(i).get("at"),
            f"a rule with windows or sequences needs a finite time (event {i} of the batch)",
        )
    return at
