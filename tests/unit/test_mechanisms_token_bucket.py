"""TokenBucket: the rate bound over any schedule, capacity, bursts, retry hints, rate changes."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies_mechanisms import (
    BURSTS,
    RATES,
    TAKES,
    clock_times,
    effective_times,
    gaps,
    stepping_gaps,
)
from vsm.mechanisms import TokenBucket

SCHEDULES = st.lists(st.tuples(gaps(), TAKES), max_size=25)
STEPPING_SCHEDULES = st.lists(st.tuples(stepping_gaps(), TAKES), max_size=25)


def run(bucket: TokenBucket, times: list[float], takes: list[float]) -> list[tuple[int, float]]:
    """Call ``try_take`` at each time; return ``(index, n)`` of each granted call."""
    return [
        (i, n) for i, (t, n) in enumerate(zip(times, takes, strict=True)) if bucket.try_take(t, n)
    ]


def assert_rate_bound(grants: list[tuple[float, float]], burst: float, rate: float) -> None:
    """Tokens granted in every ``[t_i, t_j]`` (i, j granted calls) are within the bound."""
    for i, (ti, _) in enumerate(grants):
        total = 0.0
        for tj, n in grants[i:]:
            total += n
            bound = burst + rate * (tj - ti)
            assert total <= bound + 1e-9 * (1 + bound), (ti, tj, total, bound)


@given(RATES, BURSTS, SCHEDULES)
def test_grants_never_exceed_burst_plus_rate_times_elapsed(rate, burst, schedule):
    """Over any monotone schedule, tokens granted in [t0, t1] <= burst + rate * (t1 - t0)."""
    bucket = TokenBucket(rate, burst)
    times = clock_times(g for g, _ in schedule)
    takes = [n for _, n in schedule]
    granted = run(bucket, times, takes)
    assert_rate_bound([(times[i], n) for i, n in granted], burst, rate)


@given(RATES, BURSTS, STEPPING_SCHEDULES)
def test_a_take_is_granted_exactly_when_the_tokens_are_there(rate, burst, schedule):
    """try_take(now, n) is granted iff available(now) >= n; it takes n or nothing, in [0, burst]."""
    bucket = TokenBucket(rate, burst)
    for t, (_, n) in zip(clock_times(g for g, _ in schedule), schedule, strict=True):
        before = bucket.available(t)
        assert 0.0 <= before <= burst
        assert not bucket.try_take(t, before + 1e-6)  # a hair more than is there: refused
        granted = bucket.try_take(t, n)
        assert granted == (before >= n)
        assert bucket.available(t) == (before - n if granted else before)


@given(RATES, BURSTS, STEPPING_SCHEDULES)
def test_a_clock_stepping_back_mints_no_tokens(rate, burst, schedule):
    """With a clock that steps back, the bound holds on the running maximum of the clock."""
    bucket = TokenBucket(rate, burst)
    times = clock_times(g for g, _ in schedule)
    granted = run(bucket, times, [n for _, n in schedule])
    effective = effective_times(times)
    assert_rate_bound([(effective[i], n) for i, n in granted], burst, rate)


@given(RATES, BURSTS, st.floats(-1e6, 1e6))
def test_a_full_bucket_grants_floor_burst_at_once(rate, burst, now):
    """A new bucket grants exactly floor(burst) single tokens at one instant, then refuses."""
    bucket = TokenBucket(rate, burst)
    granted = 0
    while bucket.try_take(now):
        granted += 1
    assert granted == math.floor(burst)


@given(RATES, BURSTS, SCHEDULES, TAKES, st.booleans(), st.just(0.0) | st.floats(0.0, 50.0))
def test_waiting_retry_after_is_enough(rate, burst, schedule, n, drain, back):
    """try_take(now + retry_after(now, n), n) succeeds if n <= burst, even after a step back."""
    bucket = TokenBucket(rate, burst)
    times = clock_times(g for g, _ in schedule)
    run(bucket, times, [k for _, k in schedule])
    latest = times[-1] if times else 0.0
    while drain and bucket.try_take(latest):
        pass
    now = latest - back
    wait = bucket.retry_after(now, n)
    if n > burst:
        assert wait == math.inf
        return
    assert (wait == 0.0) == (bucket.available(now) >= n)
    if wait > 0.0:
        assert wait >= back  # the clock must catch up first
    assert bucket.try_take(now + wait, n)


def test_retry_after_is_exact_on_round_numbers():
    """A drained bucket of rate 2 needs 0.5 s for one token and 2 s for four."""
    bucket = TokenBucket(rate=2.0, burst=5.0)
    while bucket.try_take(10.0):
        pass
    assert bucket.retry_after(10.0) == 0.5
    assert bucket.retry_after(10.0, 4.0) == 2.0
    assert bucket.retry_after(10.0, 5.5) == math.inf
    assert not bucket.try_take(10.0, 6.0)


@given(RATES, RATES, BURSTS, SCHEDULES, gaps())
def test_set_rate_credits_the_old_rate_first(old, new, burst, schedule, gap):
    """set_rate(r, t) leaves the tokens at t as the old rate made them; r counts from t on."""
    changed, kept = TokenBucket(old, burst), TokenBucket(old, burst)
    times = clock_times(g for g, _ in schedule)
    takes = [n for _, n in schedule]
    run(changed, times, takes)
    run(kept, times, takes)
    now = (times[-1] if times else 0.0) + gap
    changed.set_rate(new, now)
    assert changed.available(now) == kept.available(now)
    assert changed.rate == new
    later = changed.available(now + 0.5)
    assert later == min(burst, kept.available(now) + 0.5 * new)


@given(RATES, BURSTS, SCHEDULES, st.lists(st.booleans(), min_size=25, max_size=25))
def test_queries_do_not_change_decisions(rate, burst, schedule, ask):
    """Calling available() between takes on a monotone clock changes no try_take decision."""
    quiet, asked = TokenBucket(rate, burst), TokenBucket(rate, burst)
    times = clock_times(g for g, _ in schedule)
    for t, (_, n), query in zip(times, schedule, ask, strict=False):
        if query:
            asked.available(t)
        assert quiet.try_take(t, n) == asked.try_take(t, n)


def test_statistics_count_calls_and_tokens():
    """statistics() reports rate, burst, tokens, granted and denied calls, tokens granted."""
    bucket = TokenBucket(rate=1.0, burst=3.0)
    assert bucket.try_take(0.0, 2.0)
    assert not bucket.try_take(0.0, 2.0)
    assert bucket.statistics() == {
        "rate": 1.0,
        "burst": 3.0,
        "tokens": 1.0,
        "granted": 1,
        "denied": 1,
        "tokens_granted": 2.0,
    }
    assert bucket.clock == 0.0
    assert "tokens=1.0" in repr(bucket)


@pytest.mark.parametrize(
    ("rate", "burst", "bad"),
    [
        (0.0, 1.0, 0.0),
        (-1.0, 1.0, -1.0),
        (math.nan, 1.0, math.nan),
        (math.inf, 1.0, math.inf),
        (1.0, 0.5, 0.5),
        (1.0, math.inf, math.inf),
        (1.0, math.nan, math.nan),
    ],
)
def test_bad_construction_arguments_show_the_value(rate, burst, bad):
    """A rate that is not finite and > 0, or a burst not finite and >= 1, is refused by value."""
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        TokenBucket(rate, burst)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_bad_call_arguments_show_the_value(bad):
    """A bad n, rate or now is refused by value, and the bucket is left unchanged."""
    bucket = TokenBucket(1.0, 2.0)
    for call in (
        lambda: bucket.try_take(0.0, bad),
        lambda: bucket.retry_after(0.0, bad),
        lambda: bucket.set_rate(bad, 0.0),
    ):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            call()
    if not math.isfinite(bad):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            bucket.try_take(bad)
    assert bucket.clock is None
    assert bucket.statistics()["tokens"] == 2.0
