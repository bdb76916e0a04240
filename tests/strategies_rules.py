"""Hypothesis strategies for the tests of :mod:`vsm.rules`.

Two flavours of condition: *wide* ones (any field name, any literal, for the text and JSON
round trips) and *narrow* ones (a few fields and values that events share, so random rules
match random events often enough to test evaluation). Events are field dicts with a
mostly-increasing ``at`` (sometimes stepping back), values of every type rules read (and some
they cannot see: NaN, lists, huge ints), and fields that come and go.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import strategies as st

from vsm.rules import (
    Algedonic,
    AllWithin,
    And,
    Audit,
    Compare,
    Condition,
    EmitEvent,
    Exists,
    In,
    Missing,
    Not,
    Or,
    ProposePatch,
    Response,
    Rule,
    Then,
    Throttle,
    Window,
)

# ---------------------------------------------------------------- wide conditions

WIDE_FIELDS = st.one_of(
    st.sampled_from(["kind", "path", "at", "user", "cpu", "count", "max", "a.b", "and", "a b"]),
    st.text(min_size=1, max_size=6),
)
"""Field names: ordinary, function words, reserved words and anything at all (backquoted)."""

WIDE_LITERALS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**60), 2**60).map(float),
    st.text(max_size=6),
    st.booleans(),
    st.none(),
)
DURATIONS = st.one_of(
    st.sampled_from([0.001, 0.5, 1.0, 30.0, 60.0]),
    st.floats(min_value=1e-6, max_value=1e6, allow_nan=False),
)
OPERATORS = st.sampled_from([">", ">=", "<", "<=", "==", "!="])
AGGREGATES = st.sampled_from(["count", "sum", "avg", "min", "max"])


@st.composite
def _compare(draw: st.DrawFn, fields: Any, literals: Any) -> Compare:
    op = draw(OPERATORS)
    value = draw(literals)
    if op in (">", ">=", "<", "<=") and (value is None or isinstance(value, bool)):
        op = "=="
    return Compare(draw(fields), op, value)


def _leaves(fields: Any, literals: Any) -> st.SearchStrategy[Condition]:
    return st.one_of(
        _compare(fields, literals),
        st.builds(In, fields, st.lists(literals, max_size=3).map(tuple), st.booleans()),
        st.builds(Exists, fields),
        st.builds(Missing, fields),
    )


def _branches(
    inner: st.SearchStrategy[Condition], fields: Any, numbers: Any, durations: Any, stateful: bool
) -> st.SearchStrategy[Condition]:
    several = st.lists(inner, min_size=2, max_size=3).map(tuple)
    options = [st.builds(And, several), st.builds(Or, several), st.builds(Not, inner)]
    if stateful:
        keys = st.none() | fields
        options += [
            st.builds(
                Window,
                st.just("count"),
                st.none(),
                st.none() | inner,
                keys,
                durations,
                OPERATORS,
                numbers,
            ),
            st.builds(
                Window,
                AGGREGATES.filter(lambda f: f != "count"),
                fields,
                st.none() | inner,
                keys,
                durations,
                OPERATORS,
                numbers,
            ),
            st.builds(Then, inner, inner, keys, durations),
            st.builds(
                AllWithin, st.lists(inner, min_size=1, max_size=3).map(tuple), keys, durations
            ),
        ]
    return st.one_of(*options)


def wide_conditions(stateful: bool = True) -> st.SearchStrategy[Condition]:
    """Any condition, with any field names and literals."""
    numbers = st.floats(allow_nan=False, allow_infinity=False)
    return st.recursive(
        _leaves(WIDE_FIELDS, WIDE_LITERALS),
        lambda inner: _branches(inner, WIDE_FIELDS, numbers, DURATIONS, stateful),
        max_leaves=6,
    )


# ---------------------------------------------------------------- narrow conditions and events

FIELDS = ("kind", "user", "v", "w")
"""The fields narrow conditions read and events hold (besides ``at``)."""

VALUES = (0.0, 0.5, 1.0, 2.0, -1.0, 0.1, 0.2, 0.3, "x", "y", "", True, False, None)
"""Shared values: numbers (0.1 + 0.2 != 0.3 included), strings, booleans, null."""

narrow_fields = st.sampled_from(FIELDS)
narrow_literals = st.sampled_from(VALUES)
NARROW_DURATIONS = st.sampled_from([0.5, 1.0, 2.0, 3.0])
NARROW_NUMBERS = st.sampled_from([0.0, 0.3, 0.5, 1.0, 2.0, 3.0])


def conditions(stateful: bool = True, max_leaves: int = 5) -> st.SearchStrategy[Condition]:
    """Conditions over :data:`FIELDS` and :data:`VALUES`, windows and sequences if ``stateful``."""
    return st.recursive(
        _leaves(narrow_fields, narrow_literals),
        lambda inner: _branches(inner, narrow_fields, NARROW_NUMBERS, NARROW_DURATIONS, stateful),
        max_leaves=max_leaves,
    )


EVENT_VALUES = st.one_of(
    st.sampled_from(VALUES),
    st.sampled_from([1, 2, 0, -1, float("nan"), float("inf"), 10**400, [1], {"a": 1}, b"x"]),
)
"""Field values of events: the shared ones, ints, and ones rules cannot see (or must not miss)."""

STEPS = st.sampled_from([0.0, 0.0, 0.25, 0.5, 1.0, 1.0, 2.0, 3.5, -1.0])
"""Time between events: often none, sometimes back (the clock holds)."""


@st.composite
def rows(draw: st.DrawFn, max_size: int = 25) -> list[dict[str, Any]]:
    """Field dicts of a stream of events, with ``at``."""
    out = []
    at = draw(st.sampled_from([0.0, 100.0]))
    for _ in range(draw(st.integers(0, max_size))):
        at += draw(STEPS)
        row: dict[str, Any] = {"at": at}
        for name in FIELDS:
            if draw(st.integers(0, 4)):
                row[name] = draw(EVENT_VALUES)
        out.append(row)
    return out


def cuts(n: int) -> st.SearchStrategy[list[int]]:
    """Where to cut ``n`` events into batches: sorted offsets in ``(0, n)``."""
    if n < 2:
        return st.just([])
    return st.lists(st.integers(1, n - 1), max_size=4, unique=True).map(sorted)


def split(items: list[Any], offsets: list[int]) -> list[list[Any]]:
    """``items`` cut at ``offsets``."""
    bounds = [0, *offsets, len(items)]
    return [items[a:b] for a, b in itertools.pairwise(bounds)]


# ---------------------------------------------------------------- responses and rules

responses: st.SearchStrategy[Response] = st.one_of(
    st.builds(Algedonic, st.floats(0, 1), st.text(max_size=5)),
    st.builds(
        Throttle,
        st.sampled_from(["user", "capability"]),
        st.text(min_size=1, max_size=5),
        st.floats(1e-3, 1e6),
        st.floats(1e-3, 1e6),
    ),
    st.builds(Audit, st.text(min_size=1, max_size=5)),
    st.builds(
        ProposePatch,
        st.fixed_dictionaries(
            {}, optional={"max_depth": st.integers(0, 32), "algedonic_threshold": st.floats(0, 1)}
        ).filter(bool),
    ),
    st.builds(
        EmitEvent,
        st.text(min_size=1, max_size=5),
        st.dictionaries(st.text(max_size=3), st.integers() | st.text(max_size=3), max_size=2),
    ),
)

NAMES = st.text(min_size=1, max_size=8)


def rules(condition: st.SearchStrategy[Condition] | None = None) -> st.SearchStrategy[Rule]:
    """Rules with random names, conditions (wide by default), responses and enabled flags."""
    return st.builds(Rule, NAMES, condition or wide_conditions(), responses, st.booleans())
