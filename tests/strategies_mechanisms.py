"""Hypothesis strategies for the tests of :mod:`vsm.mechanisms`.

Time is drawn as *gaps* between calls, not as instants, so schedules are easy to shrink. A
gap is >= 0 on a monotonic clock; :func:`stepping_gaps` also draws negative gaps, a clock that
steps back. :func:`clock_times` turns gaps into the instants the caller passes, and
:func:`effective_times` into the instants the mechanisms act on (the running maximum).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from hypothesis import strategies as st

from vsm.mechanisms import Health

RATES = st.floats(0.05, 50.0)
"""Tokens per second."""

BURSTS = st.one_of(st.integers(1, 20).map(float), st.floats(1.0, 20.0))
"""Bucket capacities: whole numbers (the common case) and fractions."""

TAKES = st.one_of(st.just(1.0), st.floats(0.1, 4.0))
"""How many tokens one call asks for."""

LOADS = st.one_of(st.sampled_from([0.0, 0.5, 0.8, 1.0, 2.0]), st.floats(0.0, 3.0))
"""Utilisation samples: idle 0, saturated 1, overloaded above."""

UNITS = ("u0", "u1", "u2", "u3")
"""Unit names for the failure detector."""

SEVERITY = {health: i for i, health in enumerate(Health)}
"""Health from best (0) to worst (3), in :class:`Health`'s declaration order."""


def gaps(max_gap: float = 5.0) -> st.SearchStrategy[float]:
    """Seconds between two calls on a monotonic clock: often 0, otherwise up to ``max_gap``."""
    return st.one_of(st.just(0.0), st.floats(0.0, max_gap))


def stepping_gaps(max_gap: float = 5.0) -> st.SearchStrategy[float]:
    """Like :func:`gaps`, but about one in four steps the clock back (a negative gap)."""
    return st.one_of(gaps(max_gap), gaps(max_gap), gaps(max_gap), gaps(max_gap).map(lambda g: -g))


def clock_times(steps: Iterable[float], start: float = 100.0) -> list[float]:
    """The caller's clock readings after each gap, from ``start``."""
    return list(itertools.accumulate(steps, initial=start))[1:]


def effective_times(times: Iterable[float]) -> list[float]:
    """The mechanisms' clock after each reading: the running maximum (the shared clock rule)."""
    return list(itertools.accumulate(times, max))


@st.composite
def thresholds(draw: st.DrawFn) -> tuple[float, float, float]:
    """``(warning_after, zombie_after, dead_after)`` with ``0 < warning < zombie < dead``."""
    warning = draw(st.floats(0.5, 5.0))
    zombie = warning + draw(st.floats(0.5, 5.0))
    dead = zombie + draw(st.floats(0.5, 5.0))
    return warning, zombie, dead
