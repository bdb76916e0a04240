"""The broadcaster: topic matching against a naive matcher, delivery against a naive model.

The model keeps, per subscriber, a plain list of the events it holds, each marked ``fresh``,
``retry`` or ``flight``, and recomputes everything by scanning and sorting, straight from the
rules in ``vsm/broadcast/_broadcaster.py``. It also keeps a ledger of how each event queued for
a subscriber ended, so the test can check that none is lost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from tests.strategies_broadcast import (
    GAPS,
    MACHINE_PATTERNS,
    SUBSCRIBERS,
    WITHINS,
    bad_patterns,
    bad_topics,
    events,
    options,
    patterns,
    reference_matches,
    topics,
)
from vsm.address import is_within
from vsm.broadcast import (
    MAX_REASON_LENGTH,
    ArgumentError,
    Backoff,
    Broadcaster,
    BroadcastError,
    DeadLetter,
    Delivery,
    DropReason,
    Overflow,
    Subscription,
    SubscriptionError,
    SubscriptionOptions,
    TopicError,
    TopicTrie,
    UnknownDeliveryError,
    UnknownSubscriberError,
    check_pattern,
    check_topic,
    topic_matches,
    topic_of,
)
from vsm.effects import Event
from vsm.errors import VsmError


def event(kind: str = "unit.health", path: str = "root") -> Event:
    return Event(kind=kind, path=path, at=0.0)


# ---------------------------------------------------------------- topics and patterns


@given(st.lists(patterns, min_size=1, max_size=8), topics)
def test_trie_agrees_with_the_naive_matcher(pats: list[str], topic: str) -> None:
    """The trie matches a topic against many patterns exactly as one regex per pattern does."""
    trie: TopicTrie[int] = TopicTrie()
    for i, pattern in enumerate(pats):
        trie.add(i, pattern)
    expected = {i for i, pattern in enumerate(pats) if reference_matches(pattern, topic)}
    assert trie.match(topic) == expected


@given(patterns, topics)
def test_topic_matches_agrees_with_the_naive_matcher(pattern: str, topic: str) -> None:
    """The single-pattern matcher agrees with the regex too."""
    assert topic_matches(pattern, topic) == reference_matches(pattern, topic)


@given(st.lists(st.tuples(st.integers(0, 5), patterns), max_size=12), topics, st.data())
def test_trie_rebinds_and_removes(
    binds: list[tuple[int, str]], topic: str, data: st.DataObject
) -> None:
    """Rebinding replaces a key's pattern; removing keys prunes the trie back to nothing."""
    trie: TopicTrie[int] = TopicTrie()
    latest: dict[int, str] = {}
    for key, pattern in binds:
        trie.add(key, pattern)
        latest[key] = pattern
    gone = data.draw(st.sets(st.sampled_from(sorted(latest))) if latest else st.just(set()))
    for key in gone:
        trie.remove(key)
        del latest[key]
    assert len(trie) == len(latest)
    assert all(trie.pattern_of(key) == pattern for key, pattern in latest.items())
    assert trie.match(topic) == {k for k, p in latest.items() if reference_matches(p, topic)}
    for key in list(latest):
        trie.remove(key)
    assert trie._root.children == {}  # nothing is kept for patterns no key holds


@pytest.mark.parametrize(
    ("pattern", "topic", "matches"),
    [
        ("#", "audit", True),
        ("intent.#", "intent", True),
        ("intent.#", "intent.accepted.late", True),
        ("#.failed", "spawn.failed", True),
        ("#.failed", "failed", True),
        ("*.failed", "failed", False),
        ("unit.*", "unit.health.x", False),
        ("a.#.b.#", "a.b", True),
        ("a.#.b", "a.x.y.b", True),
        ("a.#.b", "a.b.c", False),
    ],
)
def test_wildcards_by_example(pattern: str, topic: str, matches: bool) -> None:
    """``*`` is exactly one segment, ``#`` zero or more, wherever they stand."""
    assert topic_matches(pattern, topic) is matches


@given(bad_patterns)
def test_a_bad_pattern_is_refused_by_name(pattern: str) -> None:
    """A malformed pattern raises TopicError, a ValueError and a VsmError, showing it."""
    with pytest.raises(TopicError) as caught:
        check_pattern(pattern)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, VsmError)
    assert caught.value.value == pattern
    assert repr(pattern)[:40] in str(caught.value)
    with pytest.raises(TopicError):
        Broadcaster().subscribe("s", pattern)


@given(bad_topics)
def test_a_bad_topic_is_refused_and_nothing_is_published(topic: str) -> None:
    """An event whose kind is no topic is refused before anything changes."""
    with pytest.raises(TopicError):
        check_topic(topic)
    broadcaster = Broadcaster()
    broadcaster.subscribe("s", "#")
    with pytest.raises(TopicError, match="bad topic"):
        broadcaster.publish(event(kind=topic), 0.0)
    assert broadcaster.statistics().published == 0
    assert broadcaster.clock == -math.inf


def test_non_strings_are_refused() -> None:
    """A pattern or topic that is not a str says so."""
    with pytest.raises(TopicError, match="must be a str"):
        check_pattern(3)
    with pytest.raises(TopicError, match="must be a str"):
        TopicTrie[str]().match(None)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the naive model


@dataclass
class Item:
    seq: int
    event: Event
    attempts: int = 0
    state: str = "fresh"  # fresh, retry or flight
    due: float = 0.0
    delivery_id: int = 0
    deadline: float = 0.0


@dataclass
class Sub:
    sid: str
    pattern: str
    within: str | None
    options: SubscriptionOptions
    items: list[Item] = field(default_factory=list)  # in publish order
    counts: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.counts = dict.fromkeys(
            (
                "matched",
                "queued",
                "delivered",
                "acked",
                "nacked",
                "timed_out",
                "retried",
                "dead_lettered",
            ),
            0,
        )
        self.counts["dropped"] = dict.fromkeys(DropReason, 0)

    @property
    def limit(self) -> int:
        return min(self.options.prefetch, self.options.buffer)

    def flights(self) -> list[Item]:
        return sorted((i for i in self.items if i.state == "flight"), key=lambda i: i.delivery_id)


class Model:
    """The rules, naively: scans and sorts over plain lists."""

    def __init__(self, max_dead_letters: int) -> None:
        self.clock = -math.inf
        self.subs: dict[str, Sub] = {}
        self.retired: list[Sub] = []
        self.published = self.unrouted = self.late = self.evicted = self.last_id = 0
        self.max_dead = max_dead_letters
        self.dead: list[DeadLetter] = []
        self.ledger: dict[tuple[str, int], str] = {}  # (sid, seq) -> how it ended
        self.queued_pairs: set[tuple[str, int]] = set()

    def see(self, now: float) -> float:
        self.clock = max(self.clock, now)
        return self.clock

    def publish(self, ev: Event, now: float) -> tuple[int, tuple[str, ...]]:
        self.see(now)
        self.published += 1
        seq, queued, rejected, routed = self.published, 0, [], False
        for sub in self.subs.values():
            if not reference_matches(sub.pattern, ev.kind):
                continue
            if sub.within is not None and not is_within(ev.path, sub.within):
                continue
            routed = True
            sub.counts["matched"] += 1
            if len(sub.items) >= sub.options.buffer:
                policy = sub.options.overflow
                if policy is Overflow.REJECT:
                    sub.counts["dropped"][DropReason.REJECTED] += 1
                    rejected.append(sub.sid)
                    continue
                if policy is Overflow.DROP_NEWEST:
                    sub.counts["dropped"][DropReason.NEWEST] += 1
                    continue
                oldest = sub.items.pop(0)
                sub.counts["dropped"][DropReason.OLDEST] += 1
                self.ledger[sub.sid, oldest.seq] = "oldest"
            sub.items.append(Item(seq, ev))
            sub.counts["queued"] += 1
            self.queued_pairs.add((sub.sid, seq))
            queued += 1
        self.unrouted += not routed
        return queued, tuple(sorted(rejected))

    def fail(self, sub: Sub, item: Item, at: float, reason: str) -> None:
        if item.attempts >= sub.options.max_attempts:
            sub.items.remove(item)
            sub.counts["dead_lettered"] += 1
            self.ledger[sub.sid, item.seq] = "dead"
            if len(self.dead) >= self.max_dead:
                self.dead.pop(0)
                self.evicted += 1
            self.dead.append(DeadLetter(sub.sid, item.event, item.seq, item.attempts, reason, at))
        else:
            b = sub.options.backoff
            item.state = "retry"
            item.due = at + min(b.cap, b.base * b.factor ** (item.attempts - 1))
            sub.counts["retried"] += 1

    def ready(self, now: float) -> list[Delivery]:
        clock = self.see(now)
        out: list[Delivery] = []
        for sub in self.subs.values():
            timeout = sub.options.ack_timeout
            for item in sub.flights():
                if item.deadline <= clock:
                    sub.counts["timed_out"] += 1
                    self.fail(sub, item, item.deadline, f"no ack within {timeout} s")
            room = sub.limit - len(sub.flights())
            due = [
                i
                for i in sub.items
                if i.state == "fresh" or (i.state == "retry" and i.due <= clock)
            ]
            for item in sorted(due, key=lambda i: i.seq)[: max(room, 0)]:
                self.last_id += 1
                item.attempts += 1
                item.state, item.delivery_id = "flight", self.last_id
                item.deadline = clock + timeout
                sub.counts["delivered"] += 1
                delivery = Delivery(
                    item.delivery_id, sub.sid, item.event, item.seq, item.attempts, item.deadline
                )
                out.append(delivery)
        return out

    def find(self, delivery_id: int) -> tuple[Sub, Item] | None:
        for sub in self.subs.values():
            for item in sub.items:
                if item.state == "flight" and item.delivery_id == delivery_id:
                    return sub, item
        self.late += 1
        return None

    def ack(self, delivery_id: int) -> bool:
        found = self.find(delivery_id)
        if found is None:
            return False
        sub, item = found
        sub.items.remove(item)
        sub.counts["acked"] += 1
        self.ledger[sub.sid, item.seq] = "acked"
        return True

    def nack(self, delivery_id: int, now: float, reason: str) -> bool:
        self.see(now)
        found = self.find(delivery_id)
        if found is None:
            return False
        sub, item = found
        sub.counts["nacked"] += 1
        if len(reason) > MAX_REASON_LENGTH:
            reason = reason[: MAX_REASON_LENGTH - 3] + "..."
        self.fail(sub, item, self.clock, reason)
        return True

    def unsubscribe(self, sid: str) -> int:
        sub = self.subs.pop(sid)
        for item in sub.items:
            self.ledger[sid, item.seq] = "unsubscribed"
        sub.counts["dropped"][DropReason.UNSUBSCRIBED] += len(sub.items)
        held, sub.items = len(sub.items), []
        self.retired.append(sub)
        return held

    def next_due(self) -> float | None:
        times = []
        for sub in self.subs.values():
            flights = sub.flights()
            times += [i.deadline for i in flights]
            if len(flights) < sub.limit:
                times += [self.clock for i in sub.items if i.state == "fresh"]
                times += [i.due for i in sub.items if i.state == "retry"]
        return max(self.clock, min(times)) if times else None


# ---------------------------------------------------------------- the stateful test

REASONS = st.sampled_from(("boom", "", "x" * (MAX_REASON_LENGTH + 50)))


class BroadcastMachine(RuleBasedStateMachine):
    """A broadcaster and the model, driven by the same random steps, compared after each."""

    handed = Bundle("handed")

    def __init__(self) -> None:
        super().__init__()
        self.now = 100.0
        self.acked_pairs: set[tuple[str, int]] = set()

    @initialize(max_dead=st.sampled_from((1, 2, 1000)), opts=options)
    def start(self, max_dead: int, opts: SubscriptionOptions) -> None:
        self.broadcaster = Broadcaster(max_subscribers=3, max_dead_letters=max_dead)
        self.model = Model(max_dead)
        self.subscribe(0, "#", None, opts)  # one subscriber from the start takes everything

    @precondition(lambda self: len(self.model.subs) < len(SUBSCRIBERS))
    @rule(
        pick=st.integers(0, 2),
        pattern=st.sampled_from(MACHINE_PATTERNS),
        within=st.sampled_from(WITHINS),
        opts=options,
    )
    def subscribe(self, pick: int, pattern: str, within: str | None, opts: Any) -> None:
        free = [s for s in SUBSCRIBERS if s not in self.model.subs]
        sid = free[pick % len(free)]
        note(f"subscribe {sid} {pattern} within={within} {opts}")
        self.broadcaster.add(Subscription(sid, pattern, within, opts))
        self.model.subs[sid] = Sub(sid, pattern, within, opts)

    @precondition(lambda self: self.model.subs)
    @rule(pick=st.integers(0, 2))
    def unsubscribe(self, pick: int) -> None:
        sid = list(self.model.subs)[pick % len(self.model.subs)]
        assert self.broadcaster.unsubscribe(sid) == self.model.unsubscribe(sid)

    @rule(ev=events)
    def publish(self, ev: Event) -> None:
        published = self.broadcaster.publish(ev, self.now)
        queued, rejected = self.model.publish(ev, self.now)
        assert (published.sequence, published.queued, published.rejected) == (
            self.model.published,
            queued,
            rejected,
        )

    @rule(gap=st.sampled_from(GAPS))
    def advance(self, gap: float) -> None:
        self.now += gap

    @rule()
    def step_back(self) -> None:
        self.now -= 1.0  # the caller's clock steps back; both count it as no time elapsed

    @rule(target=handed)
    def ready(self) -> Any:
        return multiple(*self.ready_and_check())

    @rule(target=handed, gap=st.sampled_from(GAPS))
    def tick(self, gap: float) -> Any:
        self.now += gap  # a shell's loop: wait a little, then take what is due
        return multiple(*self.ready_and_check())

    @rule(delivery=handed)
    def ack(self, delivery: Delivery) -> None:
        settled = self.broadcaster.ack(delivery.id)
        assert settled == self.model.ack(delivery.id)
        if settled:
            pair = (delivery.subscriber_id, delivery.sequence)
            assert pair not in self.acked_pairs, f"{pair} acked twice"
            self.acked_pairs.add(pair)

    @rule(delivery=handed, reason=REASONS)
    def nack(self, delivery: Delivery, reason: str) -> None:
        settled = self.broadcaster.nack(delivery.id, self.now, reason)
        assert settled == self.model.nack(delivery.id, self.now, reason)

    @rule(offset=st.integers(1, 3))
    def answer_an_id_never_handed_out(self, offset: int) -> None:
        with pytest.raises(UnknownDeliveryError):
            self.broadcaster.ack(self.model.last_id + offset)

    @rule()
    def take_dead_letters(self) -> None:
        assert self.broadcaster.take_dead_letters() == self.model.dead
        self.model.dead = []

    @invariant()
    def agrees_with_the_model(self) -> None:
        assert self.broadcaster.dead_letters() == tuple(self.model.dead)
        assert self.broadcaster.next_due() == self.model.next_due()
        assert [s.subscriber_id for s in self.broadcaster.subscriptions()] == list(self.model.subs)
        for sid, sub in self.model.subs.items():
            stats = self.broadcaster.subscriber_statistics(sid)
            flights = len(sub.flights())
            assert stats.pending == len(sub.items) - flights
            assert stats.in_flight == flights
            for name, count in sub.counts.items():
                assert getattr(stats, name) == count, name

    @invariant()
    def buffers_stay_within_bounds(self) -> None:
        for sub in self.model.subs.values():
            stats = self.broadcaster.subscriber_statistics(sub.sid)
            assert stats.pending + stats.in_flight <= sub.options.buffer
            assert stats.in_flight <= sub.limit

    @invariant()
    def statistics_add_up(self) -> None:
        totals = self.broadcaster.statistics()
        rows = [self.broadcaster.subscriber_statistics(sid) for sid in self.model.subs]
        for s in [*rows, totals]:
            d = s.dropped
            assert s.matched == s.queued + d[DropReason.NEWEST] + d[DropReason.REJECTED]
            assert s.queued == (
                s.acked
                + s.dead_lettered
                + d[DropReason.OLDEST]
                + d[DropReason.UNSUBSCRIBED]
                + s.pending
                + s.in_flight
            )
            assert s.nacked + s.timed_out == s.retried + s.dead_lettered
        assert totals.pending == sum(r.pending for r in rows)
        assert totals.in_flight == sum(r.in_flight for r in rows)
        assert (totals.published, totals.unrouted, totals.late) == (
            self.model.published,
            self.model.unrouted,
            self.model.late,
        )
        assert totals.dead_letters_evicted == self.model.evicted
        assert totals.queued == len(self.model.queued_pairs)

    def teardown(self) -> None:
        """Drain: acking whatever ``ready`` hands out settles every event queued, none lost."""
        if not hasattr(self, "broadcaster"):
            return
        for _ in range(50):
            stats = self.broadcaster.statistics()
            if stats.pending == stats.in_flight == 0:
                break
            self.now += 100.0
            for delivery in self.ready_and_check():
                self.ack(delivery)
        stats = self.broadcaster.statistics()
        assert stats.pending == stats.in_flight == 0
        for pair in self.model.queued_pairs:
            assert self.model.ledger.get(pair) in ("acked", "dead", "oldest", "unsubscribed"), pair
            assert (self.model.ledger[pair] == "acked") == (pair in self.acked_pairs), pair

    def ready_and_check(self) -> list[Delivery]:
        got = self.broadcaster.ready(self.now)
        assert got == self.model.ready(self.now)
        return got


class TestBroadcastMachine(BroadcastMachine.TestCase):
    """Random publish, ready, ack, nack, unsubscribe and clock steps."""

    settings = settings(stateful_step_count=50)


# ---------------------------------------------------------------- delivery by example


def test_first_deliveries_go_out_in_publish_order_and_retries_after_later_ones() -> None:
    """Order (rule 9): a retry waits out its backoff while later events go ahead of it."""
    broadcaster = Broadcaster()
    broadcaster.subscribe("dash", "#", prefetch=1, backoff=Backoff(base=1.0))
    for kind in ("a", "b", "c"):
        broadcaster.publish(event(kind), 0.0)
    [first] = broadcaster.ready(0.0)
    assert first.event.kind == "a"
    broadcaster.nack(first.id, 0.0, "busy")
    [second] = broadcaster.ready(0.5)
    assert (second.event.kind, second.attempt) == ("b", 1)
    broadcaster.ack(second.id)
    [third] = broadcaster.ready(1.0)  # a's backoff is over: lowest sequence first
    assert (third.event.kind, third.sequence, third.attempt) == ("a", 1, 2)


def test_due_retries_go_out_lowest_sequence_first_whatever_their_due_times() -> None:
    """Retries due at the same ``ready`` go out by sequence, not by when they became due."""
    broadcaster = Broadcaster()
    broadcaster.subscribe("s", "#", prefetch=2, backoff=Backoff(base=1.0, factor=4.0, cap=99.0))
    broadcaster.publish(event("a"), 0.0)
    broadcaster.publish(event("b"), 0.0)
    a, b = broadcaster.ready(0.0)
    broadcaster.nack(a.id, 0.0, "busy")  # a is due again at 1
    [a] = broadcaster.ready(1.0)
    broadcaster.nack(a.id, 1.0, "busy")  # ... and then at 1 + 4 = 5
    broadcaster.nack(b.id, 3.0, "busy")  # b is due again at 3 + 1 = 4
    assert [(d.event.kind, d.attempt) for d in broadcaster.ready(5.0)] == [("a", 3), ("b", 2)]


def test_retries_follow_the_backoff_then_dead_letter() -> None:
    """Each failure waits ``min(cap, base * factor ** (k - 1))``; the last one dead-letters."""
    broadcaster = Broadcaster()
    backoff = Backoff(base=1.0, factor=2.0, cap=3.0)
    broadcaster.subscribe("s", "#", max_attempts=4, backoff=backoff)
    broadcaster.publish(event(), 10.0)
    now, due_times = 10.0, []
    for _ in range(3):
        [delivery] = broadcaster.ready(now)
        broadcaster.nack(delivery.id, now, "boom")
        assert broadcaster.ready(now) == []
        now = broadcaster.next_due() or math.nan
        due_times.append(now)
    assert due_times == [11.0, 13.0, 16.0]
    [last] = broadcaster.ready(now)
    assert last.attempt == 4
    broadcaster.nack(last.id, now, "still boom")
    [letter] = broadcaster.dead_letters()
    assert (letter.attempts, letter.reason, letter.at, letter.sequence) == (4, "still boom", 16, 1)
    assert broadcaster.next_due() is None


def test_an_unanswered_delivery_fails_at_its_deadline_and_a_late_ack_is_ignored() -> None:
    """Ack timeout (rules 5, 7): the next ready fails it; the late ack returns False."""
    broadcaster = Broadcaster()
    broadcaster.subscribe("s", "#", ack_timeout=5.0, backoff=Backoff(base=2.0))
    broadcaster.publish(event(), 0.0)
    [first] = broadcaster.ready(0.0)
    assert first.deadline == 5.0
    assert broadcaster.ready(4.9) == []
    [again] = broadcaster.ready(7.0)  # failed at 5, due again at 5 + 2
    assert (again.sequence, again.attempt, again.id) == (1, 2, first.id + 1)
    assert broadcaster.ack(first.id) is False
    assert broadcaster.ack(again.id) is True
    assert broadcaster.ack(again.id) is False
    stats = broadcaster.statistics()
    assert (stats.timed_out, stats.acked, stats.late, stats.delivered) == (1, 1, 2, 2)


@pytest.mark.parametrize(
    ("overflow", "kinds", "rejected", "reason"),
    [
        (Overflow.DROP_OLDEST, ["b", "c"], (), DropReason.OLDEST),
        (Overflow.DROP_NEWEST, ["a", "b"], (), DropReason.NEWEST),
        (Overflow.REJECT, ["a", "b"], ("s",), DropReason.REJECTED),
    ],
)
def test_overflow_policies(
    overflow: Overflow, kinds: list[str], rejected: tuple[str, ...], reason: DropReason
) -> None:
    """A full buffer keeps the newest, keeps the oldest, or refuses and says so."""
    broadcaster = Broadcaster()
    broadcaster.subscribe("s", "#", buffer=2, overflow=overflow)
    results = [broadcaster.publish(event(kind), 0.0) for kind in ("a", "b", "c")]
    assert results[-1].rejected == rejected
    assert results[-1].queued == (overflow is Overflow.DROP_OLDEST)
    assert [d.event.kind for d in broadcaster.ready(0.0)] == kinds
    stats = broadcaster.subscriber_statistics("s")
    assert stats.dropped[reason] == 1
    assert sum(stats.dropped.values()) == 1


def test_drop_oldest_evicts_a_delivery_in_flight() -> None:
    """Evicting an event in flight makes its delivery late (rule 4)."""
    broadcaster = Broadcaster()
    broadcaster.subscribe("s", "#", buffer=1, overflow="drop_oldest")  # type: ignore[arg-type]
    broadcaster.publish(event("a"), 0.0)
    [old] = broadcaster.ready(0.0)
    broadcaster.publish(event("b"), 0.0)
    assert broadcaster.ack(old.id) is False
    [new] = broadcaster.ready(0.0)
    assert new.event.kind == "b"


def test_dead_letters_are_bounded_oldest_first() -> None:
    """At ``max_dead_letters`` the oldest dead letter goes, and is counted."""
    broadcaster = Broadcaster(max_dead_letters=2)
    broadcaster.subscribe("s", "#", max_attempts=1)
    for kind in ("a", "b", "c"):
        broadcaster.publish(event(kind), 0.0)
    for delivery in broadcaster.ready(0.0):
        broadcaster.nack(delivery.id, 1.0, f"no {delivery.event.kind}")
    assert [d.reason for d in broadcaster.dead_letters()] == ["no b", "no c"]
    assert broadcaster.statistics().dead_letters_evicted == 1
    assert len(broadcaster.take_dead_letters()) == 2
    assert broadcaster.dead_letters() == ()


def test_within_narrows_to_a_subtree_and_unmatched_events_count_as_unrouted() -> None:
    """``within`` keeps events from that path and below; an event nobody takes is unrouted."""
    broadcaster = Broadcaster()
    broadcaster.subscribe("billing", "unit.*", within="root/billing")
    assert broadcaster.publish(event(path="root/billing/eu"), 0.0).queued == 1
    assert broadcaster.publish(event(path="root/billingx"), 0.0).queued == 0
    assert broadcaster.publish(event(kind="audit", path="root/billing"), 0.0).queued == 0
    stats = broadcaster.statistics()
    assert (stats.published, stats.unrouted, stats.matched) == (3, 2, 1)


def test_unsubscribe_drops_what_is_held_and_later_answers_are_late() -> None:
    """Rule 10: held events are dropped as ``unsubscribed``; the totals keep the counts."""
    broadcaster = Broadcaster()
    broadcaster.subscribe("s", "#")
    broadcaster.publish(event("a"), 0.0)
    broadcaster.publish(event("b"), 0.0)
    [delivery, _] = broadcaster.ready(0.0)
    assert broadcaster.unsubscribe("s") == 2
    assert broadcaster.nack(delivery.id, 1.0, "gone") is False
    stats = broadcaster.statistics()
    assert (stats.subscribers, stats.queued, stats.in_flight, stats.late) == (0, 2, 0, 1)
    assert stats.dropped[DropReason.UNSUBSCRIBED] == 2
    with pytest.raises(UnknownSubscriberError) as caught:
        broadcaster.unsubscribe("s")
    assert str(caught.value) == "no subscriber 's'"  # not quoted twice, as KeyError would


def test_prefetch_bounds_what_is_in_flight() -> None:
    """At most ``min(prefetch, buffer)`` deliveries are in flight; acks make room."""
    broadcaster = Broadcaster()
    broadcaster.subscribe("s", "#", buffer=10, prefetch=2)
    for kind in "abcde":
        broadcaster.publish(event(kind), 0.0)
    first = broadcaster.ready(0.0)
    assert [d.event.kind for d in first] == ["a", "b"]
    assert broadcaster.ready(0.0) == []
    broadcaster.ack(first[0].id)
    assert [d.event.kind for d in broadcaster.ready(0.0)] == ["c"]


def test_a_long_reason_is_cut() -> None:
    """A nack reason longer than MAX_REASON_LENGTH is cut, ending in '...'."""
    broadcaster = Broadcaster()
    broadcaster.subscribe("s", "#", max_attempts=1)
    broadcaster.publish(event(), 0.0)
    [delivery] = broadcaster.ready(0.0)
    broadcaster.nack(delivery.id, 0.0, "x" * 1000)
    [letter] = broadcaster.dead_letters()
    assert len(letter.reason) == MAX_REASON_LENGTH
    assert letter.reason.endswith("...")


def test_backoff_never_overflows() -> None:
    """A huge failure count gives the cap, not an OverflowError."""
    assert Backoff(base=1.0, factor=10.0, cap=60.0).delay(10_000) == 60.0
    assert Backoff(base=0.5, factor=1.0, cap=9.0).delay(7) == 0.5


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("build", "name", "value"),
    [
        (lambda: SubscriptionOptions(buffer=0), "buffer", 0),
        (lambda: SubscriptionOptions(buffer=True), "buffer", True),
        (lambda: SubscriptionOptions(prefetch=1.5), "prefetch", 1.5),
        (lambda: SubscriptionOptions(max_attempts=1001), "max_attempts", 1001),
        (lambda: SubscriptionOptions(ack_timeout=0), "ack_timeout", 0),
        (lambda: SubscriptionOptions(ack_timeout=math.nan), "ack_timeout", math.nan),
        (lambda: SubscriptionOptions(ack_timeout="1"), "ack_timeout", "1"),
        (lambda: SubscriptionOptions(overflow="sometimes"), "overflow", "sometimes"),
        (lambda: SubscriptionOptions(backoff=2.0), "backoff", 2.0),
        (lambda: Backoff(base=0.0), "backoff.base", 0.0),
        (lambda: Backoff(factor=0.5), "backoff.factor", 0.5),
        (lambda: Backoff(base=2.0, cap=1.0), "backoff.cap", 1.0),
        (lambda: Backoff(cap=math.inf), "backoff.cap", math.inf),
        (lambda: Subscription("s", "#", within="root//x"), "within", "root//x"),
        (lambda: Broadcaster(max_subscribers=0), "max_subscribers", 0),
        (lambda: Broadcaster(max_dead_letters=None), "max_dead_letters", None),
    ],
)
def test_bad_options_name_the_field_and_show_the_value(build: Any, name: str, value: Any) -> None:
    """Every bad option raises ArgumentError (a ValueError) naming the field and the value."""
    with pytest.raises(ArgumentError) as caught:
        build()
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, BroadcastError)
    assert caught.value.name == name
    assert str(caught.value).startswith(f"{name} must be ")
    assert str(caught.value).endswith(f"got {value!r}")


def test_options_are_frozen_and_normalised() -> None:
    """Options are frozen; seconds become floats and an overflow name becomes the enum."""
    opts = SubscriptionOptions(overflow="drop_newest", ack_timeout=3)  # type: ignore[arg-type]
    assert opts.overflow is Overflow.DROP_NEWEST
    assert opts.ack_timeout == 3.0
    assert isinstance(opts.ack_timeout, float)
    with pytest.raises(AttributeError):
        opts.buffer = 3  # type: ignore[misc]


@pytest.mark.parametrize("sid", ["", 5, "x" * 201])
def test_bad_subscriber_ids_are_refused(sid: Any) -> None:
    """A subscriber id is a non-empty str of at most MAX_ID_LENGTH characters."""
    with pytest.raises(SubscriptionError, match="cannot subscribe"):
        Broadcaster().subscribe(sid, "#")


def test_a_taken_id_and_a_full_broadcaster_are_refused() -> None:
    """Ids are unique, and at most ``max_subscribers`` subscribe."""
    broadcaster = Broadcaster(max_subscribers=1)
    broadcaster.subscribe("s", "#")
    with pytest.raises(SubscriptionError, match="subscribed already"):
        broadcaster.subscribe("s", "audit")
    with pytest.raises(SubscriptionError, match="holds 1 already"):
        broadcaster.subscribe("t", "audit")


@pytest.mark.parametrize("now", [math.nan, math.inf, -math.inf, "1", True])
def test_a_bad_now_changes_nothing(now: Any) -> None:
    """A now that is not a finite number raises ArgumentError before anything changes."""
    broadcaster = Broadcaster()
    broadcaster.subscribe("s", "#")
    for call in (
        lambda: broadcaster.publish(event(), now),
        lambda: broadcaster.ready(now),
        lambda: broadcaster.nack(1, now, "x"),
    ):
        with pytest.raises(ArgumentError, match="now must be"):
            call()
    assert broadcaster.statistics().published == 0
    assert broadcaster.clock == -math.inf


def test_unknown_delivery_ids_raise_key_errors() -> None:
    """An id never handed out is a caller's bug: UnknownDeliveryError, a KeyError."""
    broadcaster = Broadcaster()
    for bad in (0, 1, -1, True, "1"):
        with pytest.raises(UnknownDeliveryError) as caught:
            broadcaster.ack(bad)
        assert isinstance(caught.value, KeyError)
        assert isinstance(caught.value, VsmError)
    with pytest.raises(ArgumentError, match="reason must be a str"):
        broadcaster.nack(1, 0.0, None)  # type: ignore[arg-type]
    with pytest.raises(UnknownSubscriberError):
        broadcaster.subscriber_statistics(["unhashable"])  # type: ignore[arg-type]


def test_add_takes_a_subscription_built_elsewhere() -> None:
    """``add`` takes a Subscription (from configuration, say), and nothing else."""
    broadcaster = Broadcaster()
    sub = Subscription("dash", "unit.*", "root", SubscriptionOptions(buffer=8))
    assert broadcaster.add(sub) is sub
    assert broadcaster.subscriptions() == (sub,)
    with pytest.raises(ArgumentError, match="subscription must be a Subscription"):
        broadcaster.add("dash")  # type: ignore[arg-type]


def test_an_events_topic_is_its_kind() -> None:
    """The topic is the kind, checked; the path plays no part in it."""
    assert topic_of(event("intent.accepted", "root/eu.west")) == "intent.accepted"
    with pytest.raises(TopicError, match=r"bad topic 'intent\.'"):
        topic_of(event("intent."))
