"""CircuitBreaker: a state machine checked against a naive model, and each rule by example."""

from __future__ import annotations

import math
import re

import hypothesis
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from vsm.mechanisms import CircuitBreaker, CircuitState


class Model:
    """The breaker's rules, naively: the state is derived from ``opened_at`` and the clock.

    ``opened_at is None`` means closed; otherwise the breaker is open until ``reset_after`` has
    passed and half-open after. ``trials`` lists when the current trials were allowed.
    """

    def __init__(self, threshold: int, reset_after: float, half_open_max: int) -> None:
        self.threshold, self.reset_after, self.half_open_max = threshold, reset_after, half_open_max
        self.clock = -math.inf
        self.failures = 0
        self.opened_at: float | None = None
        self.trials: list[float] = []

    def see(self, now: float) -> None:
        self.clock = max(self.clock, now)

    def state(self) -> CircuitState:
        if self.opened_at is None:
            return CircuitState.CLOSED
        if self.clock - self.opened_at < self.reset_after:
            return CircuitState.OPEN
        return CircuitState.HALF_OPEN

    def allow(self) -> bool:
        state = self.state()
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.OPEN:
            return False
        if self.trials and self.clock - self.trials[0] >= self.reset_after:
            self.trials = []  # lost trials
        if len(self.trials) < self.half_open_max:
            self.trials.append(self.clock)
            return True
        return False

    def success(self) -> None:
        if self.state() is not CircuitState.OPEN:
            self.failures, self.opened_at, self.trials = 0, None, []

    def failure(self) -> None:
        state = self.state()
        if state is CircuitState.OPEN:
            return
        self.failures += 1
        if state is CircuitState.HALF_OPEN or self.failures >= self.threshold:
            self.opened_at, self.trials = self.clock, []


class BreakerMachine(RuleBasedStateMachine):
    """Drive a CircuitBreaker and the Model with the same calls; they must always agree."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    @initialize(
        threshold=st.integers(1, 4),
        reset_after=st.sampled_from([0.5, 1.0, 3.0]) | st.floats(0.1, 5.0),
        half_open_max=st.integers(1, 3),
    )
    def build(self, threshold, reset_after, half_open_max):
        self.breaker = CircuitBreaker(threshold, reset_after, half_open_max)
        self.model = Model(threshold, reset_after, half_open_max)

    @rule(gap=st.sampled_from([0.0, 0.5, 1.0, 3.0]) | st.floats(-2.0, 6.0))
    def tick(self, gap):
        self.now += gap

    @rule()
    def allow(self):
        self.model.see(self.now)
        assert self.breaker.allow(self.now) == self.model.allow()

    @rule()
    def success(self):
        self.model.see(self.now)
        self.breaker.record_success(self.now)
        self.model.success()

    @rule()
    def failure(self):
        self.model.see(self.now)
        self.breaker.record_failure(self.now)
        self.model.failure()

    @precondition(lambda self: hasattr(self, "model"))
    @invariant()
    def agrees(self):
        self.model.see(self.now)
        assert self.breaker.state(self.now) is self.model.state()
        assert self.breaker.opened_at == self.model.opened_at
        assert self.breaker.failures == self.model.failures


class TestBreakerAgreesWithTheModel(BreakerMachine.TestCase):
    """Over any sequence of calls and clock moves, the breaker and the naive Model agree."""

    settings = hypothesis.settings(stateful_step_count=20)


def test_failures_in_a_row_open_it_and_a_success_resets_the_count():
    """Enough failures in a row open the breaker; a success in between starts the count over."""
    breaker = CircuitBreaker(failure_threshold=3, reset_after=10.0)
    for _ in range(2):
        breaker.record_failure(0.0)
    breaker.record_success(0.0)
    for _ in range(2):
        breaker.record_failure(0.0)
    assert breaker.state(0.0) is CircuitState.CLOSED
    breaker.record_failure(1.0)
    assert breaker.state(1.0) is CircuitState.OPEN
    assert breaker.opened_at == 1.0
    assert not breaker.allow(10.9)


def test_half_open_after_reset_after_allows_half_open_max_trials():
    """After reset_after seconds open, half_open_max trials are allowed and no more."""
    breaker = CircuitBreaker(failure_threshold=1, reset_after=5.0, half_open_max=2)
    breaker.record_failure(0.0)
    assert breaker.state(4.999) is CircuitState.OPEN
    assert breaker.state(5.0) is CircuitState.HALF_OPEN
    assert [breaker.allow(5.0) for _ in range(3)] == [True, True, False]


def test_a_trial_success_closes_and_a_trial_failure_reopens():
    """In half-open the first result decides: success closes, failure opens afresh."""
    breaker = CircuitBreaker(failure_threshold=1, reset_after=5.0)
    breaker.record_failure(0.0)
    assert breaker.allow(5.0)
    breaker.record_failure(6.0)
    assert breaker.state(6.0) is CircuitState.OPEN
    assert breaker.opened_at == 6.0
    assert breaker.allow(11.0)
    breaker.record_success(11.5)
    assert breaker.state(11.5) is CircuitState.CLOSED
    assert breaker.opened_at is None
    assert breaker.failures == 0


def test_lost_trials_are_renewed_after_reset_after():
    """Trials that never report are presumed lost reset_after after the first was allowed."""
    breaker = CircuitBreaker(failure_threshold=1, reset_after=5.0)
    breaker.record_failure(0.0)
    assert breaker.allow(5.0)
    assert not breaker.allow(9.9)
    assert breaker.allow(10.0)


def test_results_reported_while_open_change_nothing():
    """A late success does not close an open breaker; a late failure does not postpone trials."""
    breaker = CircuitBreaker(failure_threshold=1, reset_after=5.0)
    breaker.record_failure(0.0)
    breaker.record_success(1.0)
    breaker.record_failure(4.0)
    assert breaker.state(4.0) is CircuitState.OPEN
    assert breaker.state(5.0) is CircuitState.HALF_OPEN
    assert breaker.statistics()["ignored"] == 2


def test_a_clock_step_back_keeps_it_open_longer_never_shorter():
    """After a step back the breaker stays open until the clock passes opened_at + reset_after."""
    breaker = CircuitBreaker(failure_threshold=1, reset_after=5.0)
    breaker.record_failure(100.0)
    assert not breaker.allow(0.0)
    assert breaker.state(104.0) is CircuitState.OPEN
    assert breaker.allow(105.0)


def test_statistics_count_calls():
    """Statistics report state, failures, allowed, rejected, times opened and ignored results."""
    breaker = CircuitBreaker(failure_threshold=1, reset_after=5.0)
    assert breaker.allow(0.0)
    breaker.record_failure(0.0)
    assert not breaker.allow(1.0)
    assert breaker.statistics() == {
        "state": "open",
        "failures": 1,
        "allowed": 1,
        "rejected": 1,
        "opened": 1,
        "ignored": 0,
    }
    assert "state='open'" in repr(breaker)
    assert CircuitState.HALF_OPEN == "half_open"


@pytest.mark.parametrize(
    ("args", "bad"),
    [
        ((0, 1.0), 0),
        ((1.5, 1.0), 1.5),
        ((True, 1.0), True),
        ((1, 0.0), 0.0),
        ((1, math.inf), math.inf),
        ((1, 1.0, 0), 0),
    ],
)
def test_bad_arguments_show_the_value(args, bad):
    """Out-of-range arguments are refused, and the message shows the bad value."""
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        CircuitBreaker(*args)
