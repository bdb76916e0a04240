"""RestartIntensity: OTP's at most N restarts in T seconds, then escalate."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies_mechanisms import clock_times, effective_times, gaps, stepping_gaps
from vsm.mechanisms import Decision, RestartIntensity

MAX_RESTARTS = st.integers(0, 5)
WITHIN = st.sampled_from([1.0, 5.0]) | st.floats(0.1, 10.0)
FAILURES = st.lists(gaps(3.0), max_size=30)
STEPPING_FAILURES = st.lists(stepping_gaps(3.0), max_size=30)


def decide(intensity: RestartIntensity, times: list[float]) -> list[Decision]:
    """The decision for a failure at each time."""
    return [intensity.record(t) for t in times]


@given(MAX_RESTARTS, WITHIN, STEPPING_FAILURES)
def test_no_window_holds_more_than_max_restarts(max_restarts, within, steps):
    """No window (t - within, t] holds more than max_restarts restarts; history() stays inside."""
    times = clock_times(steps)
    intensity = RestartIntensity(max_restarts, within)
    decisions = []
    for now, clock in zip(times, effective_times(times), strict=True):
        decisions.append(intensity.record(now))
        history = intensity.history()
        assert len(history) <= max_restarts
        assert all(clock - t < within for t in history)
        assert list(history) == sorted(history)
    restarts = [
        t for t, d in zip(effective_times(times), decisions, strict=True) if d is Decision.RESTART
    ]
    for end in restarts:
        assert sum(1 for t in restarts if t <= end and end - t < within) <= max_restarts


@given(MAX_RESTARTS, WITHIN, STEPPING_FAILURES)
def test_escalate_exactly_when_one_more_would_exceed_the_window(max_restarts, within, steps):
    """ESCALATE iff max_restarts restarts already lie in (now - within, now]; else RESTART."""
    intensity = RestartIntensity(max_restarts, within)
    recorded: list[float] = []
    for now in effective_times(clock_times(steps)):
        in_window = sum(1 for t in recorded if now - t < within)
        expected = Decision.ESCALATE if in_window >= max_restarts else Decision.RESTART
        assert intensity.record(now) is expected
        if expected is Decision.RESTART:
            recorded.append(now)


@given(MAX_RESTARTS, WITHIN, FAILURES, gaps(3.0))
def test_remaining_predicts_the_next_decision(max_restarts, within, steps, gap):
    """remaining(now) > 0 exactly when record(now) would answer RESTART."""
    intensity = RestartIntensity(max_restarts, within)
    times = clock_times(steps)
    decide(intensity, times)
    now = (times[-1] if times else 0.0) + gap
    left = intensity.remaining(now)
    assert 0 <= left <= max_restarts
    assert (intensity.record(now) is Decision.RESTART) == (left > 0)


@given(WITHIN, FAILURES)
def test_zero_intensity_escalates_every_failure(within, steps):
    """With max_restarts = 0 every failure escalates and nothing is recorded."""
    intensity = RestartIntensity(0, within)
    assert set(decide(intensity, clock_times(steps))) <= {Decision.ESCALATE}
    assert intensity.history() == ()


def test_the_window_is_open_at_its_far_end():
    """A restart exactly ``within`` ago no longer counts; one a hair later still does."""
    intensity = RestartIntensity(max_restarts=1, within=5.0)
    assert intensity.record(0.0) is Decision.RESTART
    assert intensity.record(4.999) is Decision.ESCALATE
    assert intensity.record(5.0) is Decision.RESTART
    assert intensity.history() == (5.0,)


def test_an_escalation_is_not_counted_as_a_restart():
    """Escalations do not extend the window: restarts resume once the recorded ones age out."""
    intensity = RestartIntensity(max_restarts=2, within=10.0)
    assert decide(intensity, [0.0, 1.0, 2.0, 9.0, 10.0, 10.5, 11.0]) == [
        Decision.RESTART,
        Decision.RESTART,
        Decision.ESCALATE,
        Decision.ESCALATE,
        Decision.RESTART,
        Decision.ESCALATE,
        Decision.RESTART,
    ]
    assert intensity.statistics() == {
        "in_window": 2,
        "max_restarts": 2,
        "restarts": 4,
        "escalations": 3,
    }


def test_a_clock_step_back_keeps_restarts_in_the_window():
    """After a step back the recorded restarts stay in the window until the clock catches up."""
    intensity = RestartIntensity(max_restarts=1, within=5.0)
    assert intensity.record(100.0) is Decision.RESTART
    assert intensity.record(0.0) is Decision.ESCALATE
    assert intensity.record(104.0) is Decision.ESCALATE
    assert intensity.record(105.0) is Decision.RESTART


def test_reset_forgets_every_restart():
    """After reset() the full allowance is back."""
    intensity = RestartIntensity(max_restarts=1, within=5.0)
    intensity.record(0.0)
    intensity.reset()
    assert intensity.remaining(0.0) == 1
    assert intensity.record(0.0) is Decision.RESTART
    assert "RestartIntensity(max_restarts=1" in repr(intensity)
    assert Decision.ESCALATE == "escalate"


@pytest.mark.parametrize(
    ("args", "bad"),
    [
        ((-1, 1.0), -1),
        ((1.0, 1.0), 1.0),
        ((False, 1.0), False),
        ((1, 0.0), 0.0),
        ((1, math.nan), math.nan),
        ((1, -math.inf), -math.inf),
    ],
)
def test_bad_arguments_show_the_value(args, bad):
    """Out-of-range arguments are refused, and the message shows the bad value."""
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        RestartIntensity(*args)


def test_a_bad_now_is_refused_and_records_nothing():
    """A non-finite now raises ValueError showing it, and no restart is recorded."""
    intensity = RestartIntensity(max_restarts=1, within=5.0)
    with pytest.raises(ValueError, match="nan"):
        intensity.record(math.nan)
    assert intensity.history() == ()
