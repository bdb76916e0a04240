"""The hybrid logical clock: monotonic stamps, causality, drift refusal, and the stamp order."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import MSGPACK_INTS, plain_data
from vsm.crdt import HLC, Stamp, pack
from vsm.errors import ClockDriftError, MalformedDataError

wall = st.integers(0, 200)
replica = st.sampled_from(["r0", "r1", "r2"])
stamps = st.builds(Stamp, st.integers(0, 300), st.integers(0, 5), replica)
drifts = st.integers(0, 100)
events = st.lists(
    st.tuples(st.just("now"), wall) | st.tuples(st.just("observe"), wall, stamps), max_size=30
)
"""Local events and receipts, with wall times that jump back and forth."""


def key(stamp: Stamp) -> tuple[int, int, str]:
    return (stamp.physical_ms, stamp.counter, stamp.replica)


@given(owner=replica, drift=drifts, history=events)
def test_stamps_strictly_increase_whatever_the_wall_clock_does(
    owner: str, drift: int, history: list[Any]
) -> None:
    """Each stamp issued is greater than every stamp issued or observed before, and is ``last``."""
    clock = HLC(owner, drift)
    previous = clock.last
    highest_seen = previous
    physical = 0
    for event in history:
        if event[0] == "now":
            stamp = clock.now(event[1])
            physical = max(physical, event[1])
        else:
            _, wall_ms, remote = event
            if remote.physical_ms - wall_ms > drift:
                with pytest.raises(ClockDriftError):
                    clock.observe(remote, wall_ms)
                assert clock.last == previous
                continue
            stamp = clock.observe(remote, wall_ms)
            assert (stamp.physical_ms, stamp.counter) > (remote.physical_ms, remote.counter)
            highest_seen = max(highest_seen, remote)
            physical = max(physical, wall_ms, remote.physical_ms)
        assert stamp.replica == owner
        assert (stamp.physical_ms, stamp.counter) > (previous.physical_ms, previous.counter)
        assert stamp > previous
        assert (stamp.physical_ms, stamp.counter) > (highest_seen.physical_ms, highest_seen.counter)
        assert clock.last == stamp
        # The physical part is the largest time seen, never more.
        assert stamp.physical_ms == physical
        previous = stamp


@given(owner=replica, drift=drifts, history=events, wall_ms=wall, remote=stamps)
def test_observe_returns_a_stamp_after_the_remote_one(
    owner: str, drift: int, history: list[Any], wall_ms: int, remote: Stamp
) -> None:
    """observe(remote) is greater than remote (and than the clock's last) in (physical, counter)."""
    clock = HLC(owner, drift)
    for event in history:
        if event[0] == "now":
            clock.now(event[1])
    before = clock.last
    remote = Stamp(min(remote.physical_ms, wall_ms + drift), remote.counter, remote.replica)
    stamp = clock.observe(remote, wall_ms)
    assert (stamp.physical_ms, stamp.counter) > (remote.physical_ms, remote.counter)
    assert (stamp.physical_ms, stamp.counter) > (before.physical_ms, before.counter)
    assert stamp.physical_ms == max(wall_ms, before.physical_ms, remote.physical_ms)
    assert stamp == clock.last


@given(
    owner=replica,
    drift=drifts,
    history=events,
    wall_ms=wall,
    ahead=st.integers(1, 1000),
    counter=st.integers(0, 5),
)
def test_drift_refusal_leaves_the_clock_unchanged(
    owner: str, drift: int, history: list[Any], wall_ms: int, ahead: int, counter: int
) -> None:
    """A stamp over max_drift_ms ahead raises ClockDriftError and leaves the clock as it was."""
    clock = HLC(owner, drift)
    for event in history:
        if event[0] == "now":
            clock.now(event[1])
    before = clock.last
    remote = Stamp(wall_ms + drift + ahead, counter, "r-remote")
    with pytest.raises(ClockDriftError) as refused:
        clock.check(remote, wall_ms)
    assert refused.value.remote_ms == remote.physical_ms
    assert refused.value.local_ms == wall_ms
    assert refused.value.max_drift_ms == drift
    with pytest.raises(ClockDriftError):
        clock.observe(remote, wall_ms)
    assert clock.last == before
    # Exactly at the bound is still accepted.
    at_bound = Stamp(wall_ms + drift, counter, "r-remote")
    clock.check(at_bound, wall_ms)
    assert clock.observe(at_bound, wall_ms) > at_bound


@given(a=stamps, b=stamps)
def test_stamp_order_is_the_tuple_order(a: Stamp, b: Stamp) -> None:
    """Stamps compare exactly as (physical_ms, counter, replica) tuples, and as their plain data."""
    assert (a < b) == (key(a) < key(b))
    assert (a <= b) == (key(a) <= key(b))
    assert (a == b) == (key(a) == key(b))
    assert (a < b) == (a.to_data() < b.to_data())
    assert sorted([a, b]) == sorted([a, b], key=key)


@given(
    stamp=st.builds(Stamp, MSGPACK_INTS.filter(lambda n: n >= 0), st.integers(0, 2**32), replica)
)
def test_stamp_round_trip(stamp: Stamp) -> None:
    """Stamp.from_data(to_data()) rebuilds the stamp, through msgpack too."""
    assert Stamp.from_data(stamp.to_data()) == stamp
    assert Stamp.from_data(msgpack.unpackb(pack(stamp.to_data()))) == stamp


bad_counts = st.sampled_from([-1, True, False, 1.0, None, "1", [1]])
bad_replicas = st.sampled_from(["", b"r0", 0, None, True, ["r0"]])


@given(
    stamp=stamps,
    bad=st.tuples(st.sampled_from([0, 1]), bad_counts) | st.tuples(st.just(2), bad_replicas),
)
def test_malformed_stamps_are_refused(stamp: Stamp, bad: tuple[int, Any]) -> None:
    """A negative or non-int time or counter, a bad replica, or a wrong length is refused."""
    position, value = bad
    plain = stamp.to_data()
    plain[position] = value
    with pytest.raises(MalformedDataError):
        Stamp.from_data(plain)
    for wrong_length in (plain[:2], [*stamp.to_data(), 0], {"stamp": stamp.to_data()}):
        with pytest.raises(MalformedDataError):
            Stamp.from_data(wrong_length)


@given(garbage=plain_data)
def test_garbage_stamps_raise_only_malformed_data_error(garbage: Any) -> None:
    """Stamp.from_data on any plain data rebuilds a valid stamp or raises MalformedDataError."""
    try:
        decoded = Stamp.from_data(garbage)
    except MalformedDataError:
        return
    assert Stamp.from_data(decoded.to_data()) == decoded


def test_clock_arguments_are_validated() -> None:
    """An empty replica id or a negative drift bound is refused."""
    with pytest.raises(ValueError, match="replica"):
        HLC("")
    with pytest.raises(ValueError, match="max_drift_ms"):
        HLC("r0", -1)
