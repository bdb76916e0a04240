"""TokenBuckets: bounded memory, lossless eviction of full buckets, the price of the rest."""

from __future__ import annotations

import math
import re
from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies_mechanisms import BURSTS, RATES, TAKES, clock_times, gaps
from vsm.mechanisms import TokenBucket, TokenBuckets

KEYS = st.sampled_from(["a", "b", "c", "d", "e", "f"])
OPS = st.lists(st.tuples(gaps(), KEYS, TAKES), max_size=30)


@given(RATES, BURSTS, st.integers(1, 4), OPS)
def test_while_only_full_buckets_are_evicted_nothing_is_lost(rate, burst, max_keys, ops):
    """Until a bucket that is not full is evicted, decisions equal those of unbounded buckets."""
    bounded = TokenBuckets(rate, burst, max_keys=max_keys, eviction_scan=max_keys)
    unbounded = TokenBuckets(rate, burst, max_keys=100)
    for t, (_, key, n) in zip(clock_times(g for g, _, _ in ops), ops, strict=True):
        decision = bounded.try_take(key, t, n)
        if bounded.statistics()["evicted_unfull"]:
            break
        assert decision == unbounded.try_take(key, t, n)


@given(RATES, BURSTS, st.integers(1, 3), st.integers(1, 3), OPS)
def test_eviction_is_the_only_loss_and_is_classified_honestly(rate, burst, max_keys, scan, ops):
    """At most max_keys kept; bounded = unbounded forgetting evicted keys; 'full' means full."""
    bounded = TokenBuckets(rate, burst, max_keys=max_keys, eviction_scan=scan)
    shadow = TokenBuckets(rate, burst, max_keys=100)
    evicted = 0
    for t, (_, key, n) in zip(clock_times(g for g, _, _ in ops), ops, strict=True):
        before, full = set(bounded.keys()), bounded.statistics()["evicted_full"]
        decision = bounded.try_take(key, t, n)
        assert len(bounded) <= max_keys
        assert bounded.keys()[-1] == key  # most recently used last
        for victim in before - set(bounded.keys()):
            evicted += 1
            was_full = shadow.available(victim, t) == burst
            assert was_full == (bounded.statistics()["evicted_full"] > full)
            shadow.forget(victim)
        assert decision == shadow.try_take(key, t, n)
    stats = bounded.statistics()
    assert stats["evicted_full"] + stats["evicted_unfull"] == evicted


@given(RATES, BURSTS, st.integers(1, 3), st.integers(1, 3), OPS)
def test_each_key_keeps_its_bound_plus_one_burst_per_unfull_eviction(
    rate, burst, max_keys, scan, ops
):
    """Per key, tokens in [t0, t1] <= burst * (1 + its unfull evictions) + rate * (t1 - t0)."""
    buckets = TokenBuckets(rate, burst, max_keys=max_keys, eviction_scan=scan)
    grants: dict[str, list[tuple[float, float]]] = defaultdict(list)
    forgiven: dict[str, int] = defaultdict(int)
    for t, (_, key, n) in zip(clock_times(g for g, _, _ in ops), ops, strict=True):
        before = set(buckets.keys())
        unfull = buckets.statistics()["evicted_unfull"]
        if buckets.try_take(key, t, n):
            grants[key].append((t, n))
        evicted = before - set(buckets.keys())
        if buckets.statistics()["evicted_unfull"] > unfull:
            (victim,) = evicted
            forgiven[victim] += 1
    for key, granted in grants.items():
        allowance = burst * (1 + forgiven[key])
        for i, (ti, _) in enumerate(granted):
            total = 0.0
            for tj, n in granted[i:]:
                total += n
                bound = allowance + rate * (tj - ti)
                assert total <= bound + 1e-9 * (1 + bound)


def test_a_full_bucket_is_evicted_before_the_least_recently_used():
    """At capacity, a full bucket goes first even when another was used less recently."""
    buckets = TokenBuckets(rate=1.0, burst=5.0, max_keys=2)
    assert buckets.try_take("old", 0.0, 5.0)  # drained, least recently used
    assert buckets.try_take("full", 0.0, 1.0)
    assert buckets.available("full", 1.0) == 5.0  # refilled by t = 1
    assert buckets.try_take("new", 1.0)
    assert buckets.keys() == ["old", "new"]
    stats = buckets.statistics()
    assert (stats["evicted_full"], stats["evicted_unfull"], stats["tokens_forgiven"]) == (1, 0, 0)


def test_without_a_full_bucket_the_least_recently_used_goes_and_its_debt_is_forgiven():
    """At capacity with no full bucket in the scan, the LRU bucket goes; its debt is counted."""
    buckets = TokenBuckets(rate=1.0, burst=5.0, max_keys=2, eviction_scan=1)
    assert buckets.try_take("a", 0.0, 5.0)
    assert buckets.try_take("b", 0.0, 1.0)
    assert buckets.try_take("c", 2.0)  # a holds 2, b is full but beyond the scan of 1
    assert buckets.keys() == ["b", "c"]
    stats = buckets.statistics()
    assert (stats["evicted_full"], stats["evicted_unfull"], stats["tokens_forgiven"]) == (0, 1, 3)
    assert buckets.try_take("a", 2.0, 5.0)  # back, and full again: the forgiven debt


def test_queries_neither_create_nor_reorder():
    """Queries (available, retry_after) of any key leave the keys and their order alone."""
    buckets = TokenBuckets(rate=1.0, burst=2.0, max_keys=3)
    buckets.try_take("a", 0.0)
    buckets.try_take("b", 0.0)
    assert buckets.available("a", 0.0) == 1.0
    assert buckets.available("zz", 0.0) == 2.0
    assert buckets.retry_after("zz", 0.0, 2.0) == 0.0
    assert buckets.retry_after("zz", 0.0, 3.0) == math.inf
    assert buckets.retry_after("a", 0.0, 2.0) == 1.0
    assert buckets.keys() == ["a", "b"]
    assert "zz" not in buckets


@given(RATES, BURSTS, OPS, KEYS, TAKES, st.floats(0.0, 20.0))
def test_waiting_retry_after_is_enough(rate, burst, ops, key, n, back):
    """try_take(key, now + retry_after(key, now, n), n) succeeds when n <= burst, now any."""
    buckets = TokenBuckets(rate, burst, max_keys=3)
    times = clock_times(g for g, _, _ in ops)
    for t, (_, k, m) in zip(times, ops, strict=True):
        buckets.try_take(k, t, m)
    now = (times[-1] if times else 0.0) - back
    wait = buckets.retry_after(key, now, n)
    if n > burst:
        assert wait == math.inf
    else:
        assert buckets.try_take(key, now + wait, n)


def test_set_rate_for_one_key_or_for_all():
    """set_rate(key) changes one bucket (making it); set_rate(None) changes all and new ones."""
    buckets = TokenBuckets(rate=1.0, burst=10.0)
    buckets.try_take("a", 0.0, 10.0)
    buckets.set_rate("b", 4.0, 0.0)
    buckets.try_take("b", 0.0, 10.0)
    assert (buckets.available("a", 1.0), buckets.available("b", 1.0)) == (1.0, 4.0)
    buckets.set_rate(None, 2.0, 1.0)
    assert buckets.rate == 2.0
    assert (buckets.available("a", 2.0), buckets.available("b", 2.0)) == (3.0, 6.0)
    buckets.try_take("c", 2.0, 10.0)
    assert buckets.available("c", 3.0) == 2.0
    buckets.set_rate("b", 5.0, 3.0)
    buckets.set_rate(None, 2.0, 3.0)  # the same default still resets b's own rate
    assert buckets.try_take("b", 3.0, buckets.available("b", 3.0))
    assert buckets.available("b", 4.0) == 2.0


FEW_KEYS = st.sampled_from(["a", "b"])
RATE_OPS = st.lists(
    st.tuples(st.just("take"), gaps(), FEW_KEYS, TAKES)
    | st.tuples(st.just("rate"), gaps(), st.none() | FEW_KEYS, st.sampled_from([1.0, 2.0, 4.0])),
    max_size=30,
)


@given(st.sampled_from([1.0, 2.0]), BURSTS, RATE_OPS)
def test_rates_per_key_and_for_all_match_a_naive_model(rate, burst, ops):
    """Takes and set_rate (per key or None) agree with a plain dict of TokenBuckets."""
    buckets = TokenBuckets(rate, burst)
    model: dict[str, TokenBucket] = {}
    default = rate
    for t, (kind, _, key, x) in zip(clock_times(op[1] for op in ops), ops, strict=True):
        if key is not None and key not in model:
            model[key] = TokenBucket(default, burst)
        if kind == "take":
            assert buckets.try_take(key, t, x) == model[key].try_take(t, x)
        else:
            buckets.set_rate(key, x, t)
            default = x if key is None else default
            for name, bucket in model.items():
                if key is None or name == key:
                    bucket.set_rate(x, t)
        for name, bucket in model.items():
            assert buckets.available(name, t) == bucket.available(t)


def test_forget_drops_a_bucket_and_ignores_an_unknown_key():
    """Forgetting removes the key's bucket; forgetting a key with none is not an error."""
    buckets = TokenBuckets(rate=1.0, burst=1.0)
    buckets.try_take("a", 0.0)
    buckets.forget("a")
    buckets.forget("never")
    assert len(buckets) == 0
    assert buckets.try_take("a", 0.0)


def test_a_clock_step_back_is_shared_by_every_key():
    """All buckets use the registry's clock: a new key after a step back refills from the max."""
    buckets = TokenBuckets(rate=1.0, burst=2.0)
    buckets.try_take("a", 10.0)
    assert buckets.try_take("b", 5.0, 2.0)
    assert buckets.available("b", 10.5) == 0.5
    assert buckets.available("a", 5.0) == 1.5  # the clock is 10.5, not 5
    assert "TokenBuckets(rate=1.0" in repr(buckets)


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"rate": 0.0}, 0.0),
        ({"burst": 0.5}, 0.5),
        ({"max_keys": 0}, 0),
        ({"max_keys": 2.5}, 2.5),
        ({"max_keys": True}, True),
        ({"eviction_scan": 0}, 0),
    ],
)
def test_bad_arguments_show_the_value(kwargs, bad):
    """Out-of-range arguments are refused, and the message shows the bad value."""
    arguments = {"rate": 1.0, "burst": 1.0, **kwargs}
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        TokenBuckets(**arguments)


def test_buckets_are_token_buckets():
    """The registry's per-key arithmetic is TokenBucket's: the same answers for one key."""
    alone, keyed = TokenBucket(3.0, 4.0), TokenBuckets(3.0, 4.0)
    for t, n in [(0.0, 3.0), (0.1, 1.0), (0.2, 0.5), (1.0, 4.0), (1.5, 1.0)]:
        assert alone.try_take(t, n) == keyed.try_take("k", t, n)
        assert alone.available(t) == keyed.available("k", t)
