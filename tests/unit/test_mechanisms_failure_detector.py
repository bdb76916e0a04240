"""FailureDetector: health by silence, monotone ageing, sweeps that report each change once."""

from __future__ import annotations

import math
import re
from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies_mechanisms import (
    SEVERITY,
    UNITS,
    clock_times,
    effective_times,
    stepping_gaps,
    thresholds,
)
from vsm.mechanisms import FailureDetector, Health


@st.composite
def detector_ops(draw: st.DrawFn) -> list[tuple[str, object]]:
    """Rounds of heartbeats (units in any order), a clock move, often a sweep, rarely a forget."""
    ops: list[tuple[str, object]] = []
    for _ in range(draw(st.integers(1, 8))):
        ops += [("beat", unit) for unit in draw(st.lists(st.sampled_from(UNITS), max_size=4))]
        ops.append(("tick", draw(stepping_gaps(12.0))))
        if draw(st.integers(0, 9)) == 0:
            ops.append(("forget", draw(st.sampled_from(UNITS))))
        if draw(st.booleans()):
            ops.append(("sweep", None))
    return ops


def classify(silence: float, limits: tuple[float, float, float]) -> Health:
    """The health the rules give a silence, by the thresholds."""
    warning, zombie, dead = limits
    passed = sum(silence >= limit for limit in (warning, zombie, dead))
    return list(Health)[passed]


def test_health_follows_the_thresholds():
    """Below warning healthy, below zombie warning, below dead zombie, from dead on dead."""
    detector = FailureDetector(1.0, 2.0, 3.0)
    detector.heartbeat("u", 10.0)
    assert [detector.health("u", 10.0 + s) for s in (0.0, 0.999, 1.0, 2.0, 2.999, 3.0, 1e6)] == [
        Health.HEALTHY,
        Health.HEALTHY,
        Health.WARNING,
        Health.ZOMBIE,
        Health.ZOMBIE,
        Health.DEAD,
        Health.DEAD,
    ]


@given(thresholds(), st.lists(stepping_gaps(6.0), max_size=40))
def test_without_heartbeats_health_never_improves(limits, steps):
    """Asked at any times, a clock stepping back included, a silent unit only gets worse."""
    detector = FailureDetector(*limits)
    detector.heartbeat("u", 0.0)
    times = clock_times(steps, 0.0)
    worst = Health.HEALTHY
    for now, clock in zip(times, effective_times(times), strict=True):
        health = detector.health("u", now)
        assert health is classify(clock, limits)
        assert SEVERITY[health] >= SEVERITY[worst]
        worst = health


@given(thresholds(), detector_ops())
def test_sweeps_report_each_change_once_in_order(limits, ops):
    """Sweeps chain each unit's changes from healthy, end at its health, and repeat nothing."""
    detector = FailureDetector(*limits)
    now, clock = 0.0, -math.inf
    last: dict[str, float] = {}
    reported: dict[str, Health] = {}
    died: set[str] = set()
    for kind, arg in ops:
        if kind == "tick":
            now += arg
            continue
        clock = max(clock, now)
        if kind == "beat":
            if arg not in last:
                reported[arg] = Health.HEALTHY
            elif clock - last[arg] >= limits[2] and reported[arg] is not Health.DEAD:
                died.add(arg)
            last[arg] = clock
            detector.heartbeat(arg, now)
        elif kind == "forget":
            if arg in last:
                detector.forget(arg)
                del last[arg], reported[arg]
                died.discard(arg)
            else:
                with pytest.raises(KeyError, match=arg):
                    detector.forget(arg)
        else:
            changes = detector.sweep(now)
            units = [unit for unit, _, _ in changes]
            assert units == sorted(units)
            by_unit: dict[str, list[tuple[Health, Health]]] = defaultdict(list)
            for unit, old, new in changes:
                by_unit[unit].append((old, new))
            for unit in last:
                steps = by_unit.pop(unit, [])
                current = classify(clock - last[unit], limits)
                health = reported[unit]
                for old, new in steps:
                    assert old is health
                    assert new is not old
                    health = new
                assert health is current
                deaths = [new for _, new in steps].count(Health.DEAD)
                assert deaths <= 1
                assert (unit in died) <= (deaths == 1)
                assert len(steps) <= 2
                reported[unit] = current
            assert not by_unit  # no change reported for an unknown unit
            died.clear()
            assert detector.sweep(now) == []
    assert detector.units() == sorted(last)


@given(
    thresholds(),
    st.permutations(UNITS),
    st.sets(st.sampled_from(UNITS)),
    st.lists(stepping_gaps(6.0), max_size=10),
)
def test_sweep_order_depends_only_on_names(limits, order, refreshed, steps):
    """Units heartbeating in any order yield the same sweeps, sorted by name."""
    plain, shuffled = FailureDetector(*limits), FailureDetector(*limits)
    for detector, units in ((plain, UNITS), (shuffled, order)):
        for unit in units:
            detector.heartbeat(unit, 0.0)
        for unit in units:
            if unit in refreshed:
                detector.heartbeat(unit, limits[0])
    for now in clock_times(steps, limits[0]):
        changes = plain.sweep(now)
        assert changes == shuffled.sweep(now)
        assert changes == sorted(changes, key=lambda change: change[0])


def test_a_dead_unit_that_beats_again_is_reported_back():
    """A unit a sweep saw dead is reported dead -> healthy after its next heartbeat."""
    detector = FailureDetector(1.0, 2.0, 3.0)
    detector.heartbeat("u", 0.0)
    assert detector.sweep(3.0) == [("u", Health.HEALTHY, Health.DEAD)]
    detector.heartbeat("u", 4.0)
    assert detector.health("u", 4.0) is Health.HEALTHY
    assert detector.sweep(4.0) == [("u", Health.DEAD, Health.HEALTHY)]


def test_a_death_no_sweep_saw_is_still_reported():
    """Dead and back between two sweeps is reported as old -> dead, then dead -> healthy."""
    detector = FailureDetector(1.0, 2.0, 3.0)
    detector.heartbeat("a", 0.0)
    detector.heartbeat("b", 0.0)
    assert detector.sweep(1.5) == [
        ("a", Health.HEALTHY, Health.WARNING),
        ("b", Health.HEALTHY, Health.WARNING),
    ]
    detector.heartbeat("b", 2.0)
    detector.heartbeat("a", 10.0)
    detector.heartbeat("b", 10.0)
    assert detector.sweep(10.0) == [
        ("a", Health.WARNING, Health.DEAD),
        ("a", Health.DEAD, Health.HEALTHY),
        ("b", Health.WARNING, Health.DEAD),
        ("b", Health.DEAD, Health.HEALTHY),
    ]


def test_several_states_between_sweeps_are_reported_as_one_change():
    """A unit that went warning, zombie, dead between sweeps is reported healthy -> dead."""
    detector = FailureDetector(1.0, 2.0, 3.0)
    detector.heartbeat("u", 0.0)
    assert detector.sweep(0.5) == []
    assert detector.sweep(7.0) == [("u", Health.HEALTHY, Health.DEAD)]
    assert detector.sweep(8.0) == []


def test_a_clock_step_back_ages_nobody():
    """After a step back nobody ages until the clock catches up; heartbeats count at the max."""
    detector = FailureDetector(1.0, 2.0, 3.0)
    detector.heartbeat("u", 100.0)
    detector.heartbeat("v", 0.0)
    assert detector.health("v", 100.5) is Health.HEALTHY
    assert detector.sweep(50.0) == []
    assert detector.health("u", 101.0) is Health.WARNING


def test_unknown_units_raise_key_error_naming_them():
    """Asking the health of, or forgetting, an untracked unit raise KeyError with its name."""
    detector = FailureDetector(1.0, 2.0, 3.0)
    detector.heartbeat("known", 0.0)
    with pytest.raises(KeyError, match="ghost"):
        detector.health("ghost", 0.0)
    detector.forget("known")
    with pytest.raises(KeyError, match="known"):
        detector.forget("known")
    assert detector.units() == []


def test_statistics_count_units_by_last_sweep():
    """Statistics count units per health as of the last sweep, heartbeats and sweeps."""
    detector = FailureDetector(1.0, 2.0, 3.0)
    for unit in ("a", "b", "c"):
        detector.heartbeat(unit, 0.0)
    detector.heartbeat("c", 2.5)
    detector.sweep(3.0)
    assert detector.statistics() == {
        "units": 3,
        "healthy": 1,
        "warning": 0,
        "zombie": 0,
        "dead": 2,
        "heartbeats": 4,
        "sweeps": 1,
    }
    assert "units=3" in repr(detector)


@pytest.mark.parametrize(
    ("limits", "bad"),
    [
        ((0.0, 2.0, 3.0), 0.0),
        ((1.0, math.nan, 3.0), math.nan),
        ((2.0, 2.0, 3.0), 2.0),
        ((1.0, 3.0, 2.0), 3.0),
        ((1.0, 2.0, math.inf), math.inf),
    ],
)
def test_bad_thresholds_show_the_value(limits, bad):
    """Thresholds that are not finite with 0 < warning < zombie < dead are refused by value."""
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        FailureDetector(*limits)


@pytest.mark.parametrize("unit", ["", 7])
def test_bad_unit_names_show_the_value(unit):
    """A heartbeat from a unit that is not a non-empty str is refused, showing the name."""
    detector = FailureDetector(1.0, 2.0, 3.0)
    with pytest.raises(ValueError, match=re.escape(repr(unit))):
        detector.heartbeat(unit, 0.0)
    assert detector.units() == []
