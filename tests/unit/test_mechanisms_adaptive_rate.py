"""AdaptiveRate: bounds, convergence under sustained load, time-scaled steps, determinism."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies_mechanisms import LOADS, clock_times, stepping_gaps
from vsm.mechanisms import AdaptiveRate


@st.composite
def limits(draw: st.DrawFn) -> dict[str, float]:
    """Constructor arguments with ``0 < min <= base <= max``, a target and a step."""
    base = draw(st.floats(0.1, 100.0))
    return {
        "base_rate": base,
        "min_rate": base * draw(st.floats(0.01, 1.0)),
        "max_rate": base * draw(st.floats(1.0, 10.0)),
        "target_utilisation": draw(st.floats(0.1, 1.0)),
        "step": draw(st.floats(0.05, 1.0)),
        "interval": draw(st.floats(0.1, 5.0)),
    }


OBSERVATIONS = st.lists(st.tuples(stepping_gaps(), LOADS), max_size=15)


def replay(kwargs: dict[str, float], observations: list[tuple[float, float]]) -> AdaptiveRate:
    """A new AdaptiveRate that has observed ``(gap, load)`` pairs from time 0."""
    adaptive = AdaptiveRate(**kwargs)
    for t, (_, load) in zip(
        clock_times((g for g, _ in observations), 0.0), observations, strict=True
    ):
        adaptive.observe(load, t)
    return adaptive


@given(limits(), OBSERVATIONS)
def test_rate_always_within_bounds_and_deterministic(kwargs, observations):
    """Every returned rate lies in [min_rate, max_rate], and the same inputs give the same rates."""
    adaptive, twin = AdaptiveRate(**kwargs), AdaptiveRate(**kwargs)
    times = clock_times((g for g, _ in observations), 0.0)
    for t, (_, load) in zip(times, observations, strict=True):
        rate = adaptive.observe(load, t)
        assert kwargs["min_rate"] <= rate <= kwargs["max_rate"]
        assert rate == adaptive.rate == twin.observe(load, t)


def whole_steps(kwargs: dict[str, float], load: float, steps: int, start: float) -> float:
    """Observe ``load`` ``steps`` times, one whole interval apart; return the last rate."""
    adaptive = AdaptiveRate(**kwargs)
    rate = adaptive.rate
    for i in range(steps):
        rate = adaptive.observe(load, start + 2 * kwargs["interval"] * i)
    return rate


@given(limits(), st.floats(0.0, 2.0))
def test_sustained_overload_drives_the_rate_to_min_rate(kwargs, excess):
    """Load above target for enough whole intervals brings the rate down to min_rate exactly."""
    step, ratio = kwargs["step"], kwargs["min_rate"] / kwargs["base_rate"]
    needed = 1 if step == 1 or ratio == 1 else math.ceil(math.log(ratio) / math.log(1 - step))
    load = kwargs["target_utilisation"] + 0.01 + excess
    assert whole_steps(kwargs, load, needed + 1, 0.0) == kwargs["min_rate"]


@given(limits(), st.floats(0.0, 1.0))
def test_sustained_idleness_drives_the_rate_to_max_rate(kwargs, fraction):
    """Load below target for enough whole intervals brings the rate up to max_rate (not base)."""
    low = min(kwargs["min_rate"], kwargs["base_rate"])
    needed = math.ceil((kwargs["max_rate"] - low) / (kwargs["step"] * kwargs["base_rate"]))
    load = kwargs["target_utilisation"] * fraction * 0.99
    down = AdaptiveRate(**kwargs)
    for i in range(200):  # first drive it to the floor, then let it recover from there
        down.observe(kwargs["target_utilisation"] + 1, 2.0 * kwargs["interval"] * i)
    start = 2.0 * kwargs["interval"] * 200
    for i in range(needed + 1):
        down.observe(load, start + 2 * kwargs["interval"] * i)
    assert down.rate == kwargs["max_rate"]


@given(limits(), OBSERVATIONS, stepping_gaps())
def test_load_on_target_holds_the_rate(kwargs, observations, gap):
    """An observation exactly at target_utilisation leaves the rate unchanged."""
    adaptive = replay(kwargs, observations)
    before = adaptive.rate
    assert adaptive.observe(kwargs["target_utilisation"], 1000.0 + gap) == before


@given(limits(), OBSERVATIONS, LOADS, st.floats(0.0, 50.0))
def test_no_time_elapsed_means_no_change(kwargs, observations, load, back):
    """After the first observation, one at the same instant or earlier leaves the rate alone."""
    observations = [*observations, (0.0, 0.5)]
    adaptive = replay(kwargs, observations)
    before = adaptive.rate
    latest = max(clock_times((g for g, _ in observations), 0.0))
    assert adaptive.observe(load, latest - back) == before


@given(limits(), OBSERVATIONS, LOADS, LOADS, stepping_gaps())
def test_more_load_never_gives_a_higher_rate(kwargs, observations, load_a, load_b, gap):
    """From the same state at the same time, the higher of two loads gives the lower rate."""
    low, high = sorted((load_a, load_b))
    t = 1000.0 + gap
    assert replay(kwargs, observations).observe(high, t) <= replay(kwargs, observations).observe(
        low, t
    )


@given(limits(), st.integers(2, 10), st.booleans())
def test_the_rate_moves_by_time_not_by_sampling(kwargs, k, overloaded):
    """Observations spread evenly over one interval move the rate as far as one whole interval."""
    load = kwargs["target_utilisation"] + 0.5 if overloaded else 0.0
    once, often = AdaptiveRate(**kwargs), AdaptiveRate(**kwargs)
    once.observe(load, 0.0)
    often.observe(load, 0.0)
    once.observe(load, kwargs["interval"])
    for i in range(1, k + 1):
        often.observe(load, kwargs["interval"] * i / k)
    assert math.isclose(once.rate, often.rate, rel_tol=1e-9)


def test_one_step_either_way_on_round_numbers():
    """Overload cuts the rate by step per interval; idleness adds step * base per interval."""
    adaptive = AdaptiveRate(base_rate=100.0, min_rate=10.0, max_rate=200.0, step=0.5)
    assert adaptive.observe(1.0, 0.0) == 50.0
    assert adaptive.observe(1.0, 0.5) == pytest.approx(50.0 * 0.5**0.5)
    assert adaptive.observe(0.0, 10.0) == pytest.approx(50.0 * 0.5**0.5 + 50.0)
    stats = adaptive.statistics()
    assert (stats["decreases"], stats["increases"]) == (2, 1)
    assert "AdaptiveRate(rate=" in repr(adaptive)


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"min_rate": 0.0}, 0.0),
        ({"min_rate": 20.0}, 10.0),  # base below min: the base is shown
        ({"max_rate": 5.0}, 5.0),
        ({"base_rate": math.nan}, math.nan),
        ({"target_utilisation": 0.0}, 0.0),
        ({"target_utilisation": 1.5}, 1.5),
        ({"step": 0.0}, 0.0),
        ({"step": 1.25}, 1.25),
        ({"interval": -1.0}, -1.0),
    ],
)
def test_bad_arguments_show_the_value(kwargs, bad):
    """Out-of-range limits are refused, and the message shows the bad value."""
    arguments = {"base_rate": 10.0, "min_rate": 1.0, "max_rate": 20.0, **kwargs}
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        AdaptiveRate(**arguments)


@pytest.mark.parametrize(
    ("load", "now"), [(-0.1, 0.0), (math.nan, 0.0), (math.inf, 0.0), (0.5, math.nan)]
)
def test_bad_observations_show_the_value(load, now):
    """A negative or non-finite load, or a non-finite now, is refused and changes nothing."""
    adaptive = AdaptiveRate(base_rate=10.0, min_rate=1.0, max_rate=20.0)
    bad = load if not math.isfinite(load) or load < 0 else now
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        adaptive.observe(load, now)
    assert adaptive.rate == 10.0
