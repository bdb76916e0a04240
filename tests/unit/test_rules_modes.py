"""One event at a time and columnar batches give the same answers, and the documented ones.

The documented meaning is a naive reference model here: each event's result computed from the
whole history by definition (docs/rules.md, "Semantics"), with exact sums by fractions. The
compiled rules must agree with it one event at a time and in batches cut anywhere (state
carries over), and the two modes must agree with each other even when the bounds evict.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import cache
from typing import Any

import numpy as np
from hypothesis import given, note
from hypothesis import strategies as st

from tests.strategies_rules import conditions, cuts, rows, split
from vsm.rules import (
    AllWithin,
    And,
    Audit,
    Batch,
    Compare,
    Condition,
    Exists,
    In,
    Missing,
    Not,
    Or,
    Rule,
    RuleSet,
    Then,
    Window,
    columns_of,
    compile_rule,
    format_condition,
)

ABSENT = object()


def _see(value: Any) -> Any:
    """A field value as the docs say rules see it."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return ABSENT
    if isinstance(value, float):
        return ABSENT if math.isnan(value) else value
    return ABSENT


def _kind(value: Any) -> str:
    return "bool" if isinstance(value, bool) else type(value).__name__


def _equal(value: Any, literal: Any) -> bool:
    return value is not ABSENT and _kind(value) == _kind(literal) and value == literal


def _key(value: Any) -> Any:
    return (_kind(value), value)


def reference(condition: Condition, events: list[dict[str, Any]]) -> list[bool]:
    """Each event's result, from the whole history, by the documented semantics."""
    seen = [{k: _see(v) for k, v in e.items()} for e in events]
    times: list[float] = []
    for e in events:
        times.append(e["at"] if not times else max(times[-1], e["at"]))

    def get(i: int, name: str) -> Any:
        return seen[i].get(name, ABSENT)

    def key(i: int, by: str | None) -> Any:
        if by is None:
            return "all"
        value = get(i, by)
        return ABSENT if value is ABSENT else _key(value)

    def recent(i: int, seconds: float, by: str | None, upto: int) -> list[int]:
        k = key(i, by)
        if k is ABSENT:
            return []
        low = times[i] - seconds
        return [j for j in range(upto) if times[j] >= low and key(j, by) == k]

    @cache
    def holds(node: Condition, i: int) -> bool:
        match node:
            case Compare(field=field, op=op, value=literal):
                value = get(i, field)
                if op == "==":
                    return _equal(value, literal)
                if op == "!=":
                    return value is not ABSENT and not _equal(value, literal)
                if _kind(value) != _kind(literal):
                    return False
                return {">": value > literal, ">=": value >= literal, "<": value < literal,
                        "<=": value <= literal}[op]  # fmt: skip
            case In(field=field, values=values, negated=negated):
                value = get(i, field)
                hit = any(_equal(value, v) for v in values)
                return value is not ABSENT and (not hit if negated else hit)
            case Exists(field=field):
                return get(i, field) is not ABSENT
            case Missing(field=field):
                return get(i, field) is ABSENT
            case And(operands=operands):
                return all(holds(c, i) for c in operands)
            case Or(operands=operands):
                return any(holds(c, i) for c in operands)
            case Not(operand=operand):
                return not holds(operand, i)
            case Window(func=func, field=field, where=where, by=by, seconds=seconds):
                if key(i, by) is ABSENT:
                    return False
                chosen = [j for j in recent(i, seconds, by, i + 1)
                          if where is None or holds(where, j)]  # fmt: skip
                if func == "count":
                    return _compare(node.op, float(len(chosen)), node.value)
                values = [get(j, field) for j in chosen]
                values = [v for v in values if type(v) is float and math.isfinite(v)]
                if func == "sum":
                    return _compare(node.op, _exact(values), node.value)
                if not values:
                    return False
                aggregate = (
                    _exact(values) / len(values) if func == "avg"
                    else min(values) if func == "min" else max(values)
                )  # fmt: skip
                return _compare(node.op, aggregate, node.value)
            case Then(first=first, second=second, by=by, seconds=seconds):
                return holds(second, i) and any(holds(first, j) for j in recent(i, seconds, by, i))
            case AllWithin(operands=operands, by=by, seconds=seconds):
                window = recent(i, seconds, by, i + 1)
                return all(any(holds(c, j) for j in window) for c in operands)
        raise AssertionError(node)

    return [holds(condition, i) for i in range(len(events))]


def _exact(values: list[float]) -> float:
    total = sum(map(Fraction, values), Fraction(0))
    try:
        return float(total)
    except OverflowError:
        return math.inf if total > 0 else -math.inf


def _compare(op: str, left: float, right: float) -> bool:
    return {">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right,
            "==": left == right, "!=": left != right}[op]  # fmt: skip


def _one_by_one(condition: Condition, events: list[dict[str, Any]], bound: int) -> list[bool]:
    compiled = compile_rule(Rule("r", condition, Audit("path")), max_entries=bound)
    return [compiled.evaluate(e) for e in events]


def _in_batches(
    condition: Condition, events: list[dict[str, Any]], offsets: list[int], bound: int
) -> list[bool]:
    compiled = compile_rule(Rule("r", condition, Audit("path")), max_entries=bound)
    out: list[bool] = []
    for part in split(events, offsets):
        out += compiled.mask(columns_of(part)).tolist()
    return out


@given(conditions(), st.data())
def test_both_modes_give_the_documented_answers(condition, data):
    """Single events, batches cut anywhere, and the reference model agree, event by event."""
    events = data.draw(rows())
    offsets = data.draw(cuts(len(events)))
    note(format_condition(condition))
    expected = reference(condition, events)
    assert _one_by_one(condition, events, 10_000) == expected
    assert _in_batches(condition, events, offsets, 10_000) == expected


@given(conditions(), st.integers(1, 3), st.data())
def test_both_modes_agree_when_the_bounds_evict(condition, bound, data):
    """With tiny bounds, windows and sequences evict; both modes still give the same answers."""
    events = data.draw(rows(max_size=40))
    offsets = data.draw(cuts(len(events)))
    note(format_condition(condition))
    assert _one_by_one(condition, events, bound) == _in_batches(condition, events, offsets, bound)


@given(st.lists(conditions(), min_size=1, max_size=4), st.data())
def test_a_rule_set_gives_the_same_matches_in_both_modes(listed, data):
    """A set's matches (rule, version, seq, response) and counters agree in the two modes."""
    events = data.draw(rows())
    offsets = data.draw(cuts(len(events)))
    made = [Rule(f"r{i}", c, Audit("path")) for i, c in enumerate(listed)]
    one, many = RuleSet(made), RuleSet(made)
    singles = [(m.rule, m.seq, m.version) for e in events for m in one.evaluate(e)]
    batched = []
    for part in split(events, offsets):
        batched += [(m.rule, m.seq, m.version) for m in many.evaluate_batch(part)]
    assert singles == batched
    assert one.statistics() == many.statistics()


@given(conditions(stateful=False), st.data())
def test_batches_built_from_arrays_read_like_rows(condition, data):
    """Batch.from_arrays over typed arrays gives the answers of columns_of over the rows."""
    n = data.draw(st.integers(0, 12))
    numbers = data.draw(
        st.lists(st.sampled_from([0.0, 0.5, 1.0, -1.0, math.nan]), min_size=n, max_size=n)
    )
    strings = data.draw(st.lists(st.sampled_from(["x", "y", ""]), min_size=n, max_size=n))
    flags = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    mixed = data.draw(
        st.lists(st.sampled_from([1.0, "x", None, True, math.nan]), min_size=n, max_size=n)
    )
    arrays = {
        "v": np.array(numbers),
        "kind": np.array(strings, dtype=str),
        "w": np.array(flags, dtype=bool),
    }
    objects = np.empty(n, dtype=object)
    objects[:] = mixed
    arrays["user"] = objects
    events = [{name: arrays[name][i].item() if name != "user" else mixed[i] for name in arrays}
              for i in range(n)]  # fmt: skip
    compiled = compile_rule(Rule("r", condition, Audit("path")))
    from_arrays = compiled.mask(Batch.from_arrays(arrays, n)).tolist()
    assert from_arrays == compiled.mask(columns_of(events)).tolist()
    assert from_arrays == reference(condition, [{"at": 0.0, **e} for e in events])


HARD_VALUES = st.sampled_from([1e16, -1e16, 1.0, 0.1, 0.2, 0.3, 3.0, -0.1, 1e308, -1e308, 5e-324])
"""Values that make running float sums drift, overflow, or sit on a threshold."""


@given(
    st.sampled_from(["sum", "avg"]),
    st.sampled_from([None, "user"]),
    st.sampled_from([">", ">=", "<", "<=", "==", "!="]),
    st.sampled_from([0.0, 0.3, 1.0, 0.30000000000000004, 1e16, 2.0]),
    st.lists(
        st.tuples(st.sampled_from([0.0, 0.0, 0.5, 2.0]), HARD_VALUES, st.sampled_from("ab")),
        max_size=40,
    ),
    st.data(),
)
def test_sums_decide_exactly_in_both_modes(func, by, op, threshold, steps, data):
    """Sums and averages near a threshold, with drift and overflow, decide as exact sums do."""
    condition = Window(func, "v", None, by, 3.0, op, threshold)
    events, at = [], 0.0
    for gap, value, user in steps:
        at += gap
        events.append({"at": at, "v": value, "user": user})
    offsets = data.draw(cuts(len(events)))
    expected = reference(condition, events)
    assert _one_by_one(condition, events, 10_000) == expected
    assert _in_batches(condition, events, offsets, 10_000) == expected
