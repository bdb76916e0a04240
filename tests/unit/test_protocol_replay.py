"""The replay guard, checked against a naive model: a dict ``(sender, nonce) -> expires``.

Three guards run side by side through every schedule: one pre-filtered by the nonce index,
one by a tiny Bloom filter forced to saturate (so that false positives are common), and one
restored from its own snapshot after every step that asks for it. Each must give the model's
verdict on every check, one by one and in batches.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from protocol import DecodeError, ExpiredError, ReplayError, ReplayGuard, replay_key

SENDERS = ["root", "root/a", "root/a/b"]
MAX_ENTRIES = 6
"""Small, so that schedules reach a full window."""

senders = st.sampled_from(SENDERS)
small_nonces = st.binary(min_size=1, max_size=1).map(lambda b: bytes([b[0] % 5]))
"""Five nonces in all, shared across senders, so that pairs and nonces collide often."""
nonces = st.binary(min_size=1, max_size=24)
times = st.floats(0, 100, allow_nan=False)
ttls = st.floats(0.01, 30, allow_nan=False)


def tiny_bloom(**kwargs: int) -> ReplayGuard:
    """A guard whose Bloom filter saturates at once: most lookups are false positives."""
    return ReplayGuard(bloom_capacity=1, bloom_error_rate=0.9, **kwargs)


def code(verdict: Exception | None) -> str | None:
    """A verdict as the model states it: None, "expired", "replayed" or "window-full"."""
    if verdict is None:
        return None
    assert isinstance(verdict, ExpiredError | ReplayError)
    return verdict.reason


def check_code(
    guard: ReplayGuard, sender: str, nonce: bytes, expires: float, now: float
) -> str | None:
    """The verdict of ``guard.check`` as a code."""
    try:
        guard.check(sender, nonce, expires, now)
    except (ExpiredError, ReplayError) as exc:
        return code(exc)
    return None


class Model:
    """The obvious replay window: every pair ever recorded, with the latest expiry."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.recorded: dict[tuple[str, bytes], float] = {}
        self.horizon = -math.inf

    def advance(self, now: float) -> float:
        self.horizon = max(self.horizon, now)
        return self.horizon

    def live(self) -> int:
        return sum(1 for expires in self.recorded.values() if expires > self.horizon)

    def check_batch(self, items: list[tuple[str, bytes, float]], now: float) -> list[str | None]:
        now = self.advance(now)
        room = self.max_entries - self.live()
        accepted: set[tuple[str, bytes]] = set()
        out: list[str | None] = []
        for sender, nonce, expires in items:
            pair = (sender, nonce)
            if not expires > now:
                out.append("expired")
            elif self.recorded.get(pair, -math.inf) > now or pair in accepted:
                out.append("replayed")
            elif room <= 0:
                out.append("window-full")
            else:
                accepted.add(pair)
                room -= 1
                out.append(None)
        return out

    def record(self, sender: str, nonce: bytes, expires: float) -> None:
        if expires > self.horizon:
            pair = (sender, nonce)
            self.recorded[pair] = max(self.recorded.get(pair, -math.inf), expires)


items = st.tuples(senders, small_nonces, st.floats(-2, 20, allow_nan=False))
"""``(sender, nonce, ttl)``: the rules turn ``ttl`` into ``expires = now + ttl``."""


class ReplayMachine(RuleBasedStateMachine):
    """Checks, batches, records, time passing and restarts, in any order."""

    def __init__(self) -> None:
        super().__init__()
        self.model = Model(MAX_ENTRIES)
        self.guards = {
            "index": ReplayGuard(max_entries=MAX_ENTRIES),
            "bloom": tiny_bloom(max_entries=MAX_ENTRIES),
            "restored": ReplayGuard(max_entries=MAX_ENTRIES),
        }
        self.now = 0.0
        self.checked: list[tuple[str, bytes, float]] = []

    def absolute(self, item: tuple[str, bytes, float]) -> tuple[str, bytes, float]:
        sender, nonce, ttl = item
        return (sender, nonce, self.now + ttl)

    def expect_check(self, item: tuple[str, bytes, float]) -> None:
        (expected,) = self.model.check_batch([item], self.now)
        for name, guard in self.guards.items():
            assert check_code(guard, *item, self.now) == expected, name
        if expected is None:
            self.checked.append(item)

    @rule(item=items, step=st.floats(-3, 3, allow_nan=False))
    def check(self, item: tuple[str, bytes, float], step: float) -> None:
        self.now += step  # may step back: the guard must hold its horizon
        self.expect_check(self.absolute(item))

    @rule(data=st.data(), step=st.floats(0, 3, allow_nan=False))
    def replay(self, data: st.DataObject, step: float) -> None:
        """Send an earlier message again, unchanged (an attacker, or a redelivery)."""
        if self.checked:
            self.now += step
            self.expect_check(data.draw(st.sampled_from(self.checked)))

    @rule(batch=st.lists(items, max_size=12), step=st.floats(0, 3, allow_nan=False))
    def check_batch(self, batch: list[tuple[str, bytes, float]], step: float) -> None:
        self.now += step
        batch = [self.absolute(item) for item in batch]
        expected = self.model.check_batch(batch, self.now)
        for name, guard in self.guards.items():
            assert [code(v) for v in guard.check_batch(batch, self.now)] == expected, name
        self.checked += [item for item, verdict in zip(batch, expected, strict=True) if not verdict]

    @rule(data=st.data())
    def commit_and_record(self, data: st.DataObject) -> None:
        """Record some of the accepted messages, as a transport does after their effects."""
        if not self.checked:
            return
        chosen = data.draw(st.lists(st.sampled_from(self.checked), max_size=4))
        for item in chosen:
            self.model.record(*item)
        for guard in self.guards.values():
            if len(chosen) == 1:
                guard.record(*chosen[0])
            else:
                guard.record_batch(chosen)

    @rule(item=items)
    def record_unchecked(self, item: tuple[str, bytes, float]) -> None:
        """Recording without a check (or twice) keeps the later expiry."""
        item = self.absolute(item)
        self.model.record(*item)
        for guard in self.guards.values():
            guard.record(*item)

    @rule()
    def restart(self) -> None:
        """The restored guard is replaced by a guard rebuilt from its snapshot."""
        snapshot = self.guards["restored"].to_bytes()
        self.guards["restored"] = ReplayGuard.from_bytes(snapshot, max_entries=MAX_ENTRIES)

    @invariant()
    def window_holds_exactly_the_unexpired_pairs(self) -> None:
        live = self.model.live()
        nonces = {n for (_, n), t in self.model.recorded.items() if t > self.model.horizon}
        for name, guard in self.guards.items():
            stats = guard.statistics()
            assert (len(guard), stats.entries, stats.nonces) == (live, live, len(nonces)), name


TestReplayMachine = ReplayMachine.TestCase
TestReplayMachine.settings = settings(stateful_step_count=30)


# ---------------------------------------------------------------- properties


guards = st.sampled_from(["index", "bloom"]).map(
    lambda kind: ReplayGuard() if kind == "index" else tiny_bloom()
)


@given(guard=guards, sender=senders, nonce=nonces, now=times, ttl=ttls, later=st.floats(0, 1))
def test_recorded_unexpired_pair_is_always_rejected(
    guard: ReplayGuard, sender: str, nonce: bytes, now: float, ttl: float, later: float
) -> None:
    """A replay of a recorded pair before its expiry is refused, one by one and in batches."""
    expires = now + ttl
    guard.check(sender, nonce, expires, now)
    guard.record(sender, nonce, expires)
    at = now + later * (expires - now) * 0.999
    with pytest.raises(ReplayError) as info:
        guard.check(sender, nonce, expires, at)
    assert info.value.reason == "replayed"
    assert info.value.nonce == nonce
    assert code(guard.check_batch([(sender, nonce, expires)], at)[0]) == "replayed"


@given(
    recorded=st.lists(st.tuples(senders, nonces), max_size=60, unique=True),
    fresh=st.lists(st.tuples(senders, nonces), max_size=60, unique=True),
)
def test_fresh_pair_is_never_rejected_even_by_a_saturated_bloom(
    recorded: list[tuple[str, bytes]], fresh: list[tuple[str, bytes]]
) -> None:
    """Bloom false positives are confirmed against the window: a new pair always passes."""
    guard = tiny_bloom()
    guard.record_batch([(s, n, 50.0) for s, n in recorded])
    new = [(s, n, 50.0) for s, n in fresh if (s, n) not in set(recorded)]
    assert guard.check_batch(new, 1.0) == [None] * len(new)
    for item in new:
        guard.check(*item, 1.0)


def test_saturated_bloom_does_produce_false_positives() -> None:
    """The saturation test is not vacuous: the tiny filter answers "maybe" for new pairs."""
    guard = tiny_bloom()
    guard.record_batch([("root", bytes([i]), 50.0) for i in range(50)])
    new = [("root/a", bytes([i]), 50.0) for i in range(200)]
    assert guard.check_batch(new, 1.0) == [None] * 200
    stats = guard.statistics()
    assert stats.bloom_false_positives == stats.bloom_hits > 0
    assert stats.accepted == 200


@given(
    pairs=st.lists(st.tuples(senders, nonces, ttls), min_size=1, max_size=50),
    use_bloom=st.booleans(),
)
def test_expired_entries_are_forgotten(
    pairs: list[tuple[str, bytes, float]], use_bloom: bool
) -> None:
    """Once time passes every expiry, the window is empty again: memory follows the window."""
    guard = tiny_bloom() if use_bloom else ReplayGuard()
    guard.record_batch(pairs)
    assert 0 < len(guard) <= len(pairs)
    mid = sorted(t for _, _, t in pairs)[len(pairs) // 2]
    guard.prune(mid)
    assert len(guard) == len({(s, n) for s, n, t in pairs if t > mid})
    assert guard.prune(31.0) > 0 or len(guard) == 0
    stats = guard.statistics()
    assert (stats.entries, stats.senders, stats.nonces) == (0, 0, 0)
    assert stats.pruned == len({(s, n) for s, n, _ in pairs})


def test_memory_stays_bounded_over_a_long_run() -> None:
    """Steady traffic with a fixed TTL keeps the window, and the Bloom filter, bounded."""
    guard = ReplayGuard(bloom_capacity=64)
    for step in range(2_000):
        now = float(step)
        item = ("root", step.to_bytes(4, "little"), now + 10.0)
        guard.check(*item, now)
        guard.record(*item)
        assert len(guard) <= 11
    stats = guard.statistics()
    assert stats.bloom_capacity == 64
    assert stats.bloom_rebuilds > 10
    assert stats.pruned == 2_000 - len(guard)


def test_record_after_commit_lets_a_redelivery_through() -> None:
    """Check without record (a crash before commit) leaves the message acceptable again."""
    guard = ReplayGuard()
    guard.check("root/a", b"n1", 10.0, 1.0)
    guard.check("root/a", b"n1", 10.0, 2.0)  # redelivered: still fine, nothing was recorded
    guard.record("root/a", b"n1", 10.0)  # the effect is committed now
    with pytest.raises(ReplayError):
        guard.check("root/a", b"n1", 10.0, 3.0)
    guard.check("root/b", b"n1", 10.0, 3.0)  # the same nonce from another sender is new


@given(
    pairs=st.lists(st.tuples(senders, nonces, st.floats(1, 40)), max_size=40),
    at=st.floats(0, 20),
    use_bloom=st.booleans(),
)
def test_snapshot_restore_keeps_rejecting_replays(
    pairs: list[tuple[str, bytes, float]], at: float, use_bloom: bool
) -> None:
    """A guard rebuilt from ``to_bytes`` refuses every unexpired replay and forgets the rest."""
    guard = ReplayGuard()
    guard.record_batch(pairs)
    guard.prune(at)
    config = {"bloom_capacity": 4} if use_bloom else {}
    restored = ReplayGuard.from_bytes(guard.to_bytes(), **config)
    assert len(restored) == len(guard)
    assert restored.statistics().horizon == guard.statistics().horizon
    latest: dict[tuple[str, bytes], float] = {}
    for s, n, t in pairs:
        latest[(s, n)] = max(latest.get((s, n), 0.0), t)
    for (s, n), t in latest.items():
        expected = "replayed" if t > at else "expired"
        assert check_code(restored, s, n, t, at) == expected
    assert restored.to_bytes() == ReplayGuard.from_bytes(restored.to_bytes()).to_bytes()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        b"not msgpack at all",
        bytes([0x93, 0x02, 0xCB]) + b"\0" * 8 + b"\x90",  # version 2
        bytes([0x93, 0x01, 0xA1]) + b"x" + b"\x90",  # horizon not a float
        bytes([0x92, 0x01, 0x90]),  # two fields
    ],
    ids=["empty", "reserved-byte", "junk", "version-2", "str-horizon", "short"],
)
def test_bad_snapshots_are_decode_errors(data: bytes) -> None:
    """Whatever is not a snapshot is a DecodeError carrying the bytes and the cause."""
    with pytest.raises(DecodeError) as info:
        ReplayGuard.from_bytes(data)
    assert info.value.size == len(data)
    assert info.value.__cause__ is not None


def test_bad_snapshot_entries_are_decode_errors() -> None:
    """A snapshot whose entries are malformed is refused, naming the sender."""
    import msgpack

    for senders_part in (
        [["root", [b"n"], [1.0, 2.0]]],
        [["root", ["text"], [1.0]]],
        [["", [b"n"], [1.0]]],
        [["root", [b"n"], [float("nan")]]],
        [["root", b"n", 1.0]],
    ):
        data = msgpack.packb([1, 0.0, senders_part])
        with pytest.raises(DecodeError):
            ReplayGuard.from_bytes(data)


def test_restored_window_over_its_bound_refuses_new_messages() -> None:
    """Restoring with a smaller bound keeps every entry and refuses new messages until expiry."""
    guard = ReplayGuard()
    guard.record_batch([("root", bytes([i]), 10.0) for i in range(5)])
    small = ReplayGuard.from_bytes(guard.to_bytes(), max_entries=2)
    assert len(small) == 5
    with pytest.raises(ReplayError) as info:
        small.check("root", b"new", 20.0, 1.0)
    assert info.value.reason == "window-full"
    small.check("root", b"new", 20.0, 10.0)


# ---------------------------------------------------------------- the edges


def test_expired_messages_are_refused_at_and_after_expiry() -> None:
    """``expires <= now`` is expired; the error names the sender and both times."""
    guard = ReplayGuard()
    guard.check("root", b"n", 5.0, 4.999)
    for now in (5.0, 6.0):
        with pytest.raises(ExpiredError, match=r"expired at 5\.0") as info:
            guard.check("root", b"n", 5.0, now)
        assert info.value.sender == "root"


@pytest.mark.parametrize("position", [0, 1, 5])
def test_nan_expiry_is_expired_wherever_it_sits_in_a_batch(position: int) -> None:
    """A NaN expiry is refused as expired, alone or at any position of a batch."""
    batch = [("root", bytes([i]), 10.0) for i in range(6)]
    batch[position] = ("root", b"nan", math.nan)
    verdicts = ReplayGuard().check_batch(batch, 1.0)
    assert [code(v) for v in verdicts] == ["expired" if i == position else None for i in range(6)]
    with pytest.raises(ExpiredError):
        ReplayGuard().check("root", b"nan", math.nan, 1.0)


def test_time_never_goes_back() -> None:
    """After the guard has seen t=11, a message expiring at 10 stays expired at t=5."""
    guard = ReplayGuard()
    guard.record("root", b"n", 10.0)
    guard.prune(11.0)
    assert len(guard) == 0
    with pytest.raises(ExpiredError):
        guard.check("root", b"n", 10.0, 5.0)
    guard.record("root", b"m", 10.0)  # expires before the horizon: not stored
    assert len(guard) == 0


def test_full_window_refuses_new_messages_but_forgets_nothing() -> None:
    """At ``max_entries`` new messages are refused (window-full), replays still as replays."""
    guard = ReplayGuard(max_entries=2)
    guard.record_batch([("root", b"a", 10.0), ("root", b"b", 20.0)])
    with pytest.raises(ReplayError, match="maximum of 2") as info:
        guard.check("root", b"c", 30.0, 1.0)
    assert info.value.reason == "window-full"
    with pytest.raises(ReplayError) as info:
        guard.check("root", b"a", 10.0, 1.0)
    assert info.value.reason == "replayed"
    verdicts = guard.check_batch([("root", b"c", 30.0), ("root", b"d", 30.0)], 10.0)
    assert [code(v) for v in verdicts] == [None, "window-full"]
    guard.record("root", b"c", 30.0)
    guard.record("root", b"d", 30.0)  # record always records: the effect is committed
    assert len(guard) == 3


def test_a_pair_repeated_within_a_batch_is_refused_after_its_first_acceptance() -> None:
    """Two copies in one batch: the first passes, the second is a replay."""
    batch = [("root", b"n", 10.0), ("root/a", b"n", 10.0), ("root", b"n", 10.0)]
    verdicts = ReplayGuard().check_batch(batch, 1.0)
    assert [code(v) for v in verdicts] == [None, None, "replayed"]
    assert verdicts[2] is not None
    assert "within one batch" in str(verdicts[2])


def test_check_batch_takes_any_iterable() -> None:
    """Generators and empty batches are fine."""
    guard = ReplayGuard()
    assert guard.check_batch(iter([("root", b"n", 2.0)]), 1.0) == [None]
    assert guard.check_batch([], 1.0) == []


def test_statistics_count_every_outcome() -> None:
    """Counters add up: checked = accepted + expired + replayed + refused_full."""
    guard = ReplayGuard(max_entries=1)
    guard.record("root", b"a", 10.0)
    verdicts = guard.check_batch(
        [("root", b"a", 10.0), ("root", b"x", 0.5), ("root", b"b", 9.0)], 1.0
    )
    assert [code(v) for v in verdicts] == ["replayed", "expired", "window-full"]
    guard.prune(10.0)
    guard.check("root", b"b", 11.0, 10.0)
    stats = guard.statistics()
    assert (stats.checked, stats.accepted, stats.expired, stats.replayed, stats.refused_full) == (
        4,
        1,
        1,
        1,
        1,
    )
    assert (stats.recorded, stats.pruned, stats.bloom_capacity) == (1, 1, 0)
    assert "entries=0" in repr(guard)


def test_replay_key_is_stable_and_framed() -> None:
    """The Bloom key is the same in every process, and sender/nonce boundaries matter."""
    assert replay_key("root", b"nonce") == replay_key("root", b"nonce")
    assert replay_key("ab", b"c") != replay_key("a", b"bc")
    assert -(2**127) <= replay_key("root", b"n") < 2**127
    # Pinned: a different value means snapshots and Bloom filters no longer agree across
    # processes (Python's salted hash() would fail this between runs).
    assert replay_key("root", b"nonce") == -94586148834675630916562124327843729484


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_entries": 0}, "max_entries"),
        ({"max_entries": 1.5}, "max_entries"),
        ({"bloom_capacity": 0}, "bloom_capacity"),
        ({"bloom_error_rate": 1.0}, "bloom_error_rate"),
        ({"bloom_error_rate": 0.0}, "bloom_error_rate"),
    ],
)
def test_bad_configuration_is_refused_showing_the_value(
    kwargs: dict[str, float], match: str
) -> None:
    """Out-of-range arguments are ValueErrors naming the argument and the value."""
    with pytest.raises(ValueError, match=match):
        ReplayGuard(**kwargs)  # type: ignore[arg-type]
