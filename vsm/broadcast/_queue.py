"""One subscriber's buffer: events waiting, in flight, and waiting out a backoff.

The broadcaster owns the clock and the delivery ids; a queue is told the (already advanced)
clock and keeps the rules of :mod:`vsm.broadcast._broadcaster` for its one subscriber.

Layout: ``entries`` holds every event the subscriber holds, keyed by publish sequence, so its
first key is the oldest (the one ``drop_oldest`` evicts) and its length is what the buffer
bounds. Each entry is in exactly one of ``fresh`` (never handed out, FIFO), ``retrying`` (a
heap by due time) or ``in_flight`` (by delivery id, in hand-out order, which is deadline order
because the clock never goes back and the ack timeout is fixed).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from types import MappingProxyType

from vsm.broadcast._options import Overflow, Subscription
from vsm.broadcast._records import DeadLetter, Delivery, DropReason, SubscriberStatistics
from vsm.effects import Event

__all__ = ["Counts", "Flights", "SubscriberQueue"]


class Counts:
    """The running counters of one subscriber (or the sum of several)."""

    __slots__ = (
        "acked",
        "dead_lettered",
        "delivered",
        "dropped",
        "matched",
        "nacked",
        "queued",
        "retried",
        "timed_out",
    )

    def __init__(self) -> None:
        self.matched = self.queued = self.delivered = self.acked = self.nacked = 0
        self.timed_out = self.retried = self.dead_lettered = 0
        self.dropped = dict.fromkeys(DropReason, 0)

    def add(self, other: Counts) -> None:
        """Add ``other``'s counters to these."""
        for name in self.__slots__:
            if name != "dropped":
                setattr(self, name, getattr(self, name) + getattr(other, name))
        for reason, count in other.dropped.items():
            self.dropped[reason] += count


class Flights:
    """Delivery ids: the last one issued, and which queue holds each one in flight."""

    __slots__ = ("last_id", "owners")

    def __init__(self) -> None:
        self.last_id = 0
        self.owners: dict[int, SubscriberQueue] = {}

    def issue(self, queue: SubscriberQueue) -> int:
        """A new delivery id, in flight at ``queue``."""
        self.last_id += 1
        self.owners[self.last_id] = queue
        return self.last_id


class _Entry:
    __slots__ = ("attempts", "deadline", "delivery_id", "due", "event", "sequence")

    def __init__(self, sequence: int, event: Event) -> None:
        self.sequence = sequence
        self.event = event
        self.attempts = 0  # deliveries so far
        self.delivery_id: int | None = None  # set while in flight
        self.deadline = 0.0  # while in flight: when the ack timeout runs out
        self.due = 0.0  # while retrying: when the backoff is over


class SubscriberQueue:
    """The buffer of one subscriber; see the module docstring for its layout."""

    __slots__ = ("_entries", "_flights", "_fresh", "_in_flight", "_retrying", "counts", "sub")

    def __init__(self, sub: Subscription, flights: Flights) -> None:
        self.sub = sub
        self.counts = Counts()
        self._flights = flights
        self._entries: dict[int, _Entry] = {}
        self._fresh: deque[_Entry] = deque()
        self._retrying: list[tuple[float, int]] = []
        self._in_flight: dict[int, _Entry] = {}

    def offer(self, sequence: int, event: Event) -> DropReason | None:
        """Take a matched event; ``None`` if queued, else why the event was refused (rule 4)."""
        self.counts.matched += 1
        if len(self._entries) >= self.sub.options.buffer:
            match self.sub.options.overflow:
                case Overflow.REJECT:
                    self.counts.dropped[DropReason.REJECTED] += 1
                    return DropReason.REJECTED
                case Overflow.DROP_NEWEST:
                    self.counts.dropped[DropReason.NEWEST] += 1
                    return DropReason.NEWEST
                case Overflow.DROP_OLDEST:
                    self._discard(next(iter(self._entries.values())))
                    self.counts.dropped[DropReason.OLDEST] += 1
        entry = self._entries[sequence] = _Entry(sequence, event)
        self._fresh.append(entry)
        self.counts.queued += 1
        return None

    def expire(self, clock: float) -> list[DeadLetter]:
        """Fail the deliveries whose ack timeout ran out by ``clock``, at their deadline."""
        dead: list[DeadLetter] = []
        timeout = self.sub.options.ack_timeout
        while self._in_flight:
            delivery_id, entry = next(iter(self._in_flight.items()))
            if entry.deadline > clock:
                break
            self._land(delivery_id)
            self.counts.timed_out += 1
            letter = self._fail(entry, entry.deadline, f"no ack within {timeout} s")
            if letter is not None:
                dead.append(letter)
        return dead

    def take(self, clock: float) -> list[Delivery]:
        """Hand out what is due at ``clock``: due retries, then fresh events, by sequence."""
        room = self.sub.options.in_flight_limit - len(self._in_flight)
        if room <= 0:
            return []
        due: list[int] = []
        while self._retrying and self._retrying[0][0] <= clock:
            due.append(heapq.heappop(self._retrying)[1])
        due.sort()
        for sequence in due[room:]:  # no room for these yet: back to waiting
            entry = self._entries[sequence]
            heapq.heappush(self._retrying, (entry.due, sequence))
        chosen = [self._entries[sequence] for sequence in due[:room]]
        while len(chosen) < room and self._fresh:
            chosen.append(self._fresh.popleft())
        return [self._hand_out(entry, clock) for entry in chosen]

    def ack(self, delivery_id: int) -> None:
        """Settle an in-flight delivery as taken: the event leaves the buffer."""
        entry = self._land(delivery_id)
        del self._entries[entry.sequence]
        self.counts.acked += 1

    def nack(self, delivery_id: int, clock: float, reason: str) -> DeadLetter | None:
        """Settle an in-flight delivery as failed at ``clock``; a dead letter if out of attempts."""
        entry = self._land(delivery_id)
        self.counts.nacked += 1
        return self._fail(entry, clock, reason)

    def close(self) -> int:
        """Drop every event held (the subscriber is leaving); how many there were."""
        held = len(self._entries)
        for delivery_id in self._in_flight:
            del self._flights.owners[delivery_id]
        self._entries.clear()
        self._fresh.clear()
        self._retrying.clear()
        self._in_flight.clear()
        self.counts.dropped[DropReason.UNSUBSCRIBED] += held
        return held

    def statistics(self) -> SubscriberStatistics:
        """The counters now, with ``pending`` and ``in_flight`` counted from the buffer."""
        c = self.counts
        return SubscriberStatistics(
            matched=c.matched,
            queued=c.queued,
            delivered=c.delivered,
            acked=c.acked,
            nacked=c.nacked,
            timed_out=c.timed_out,
            retried=c.retried,
            dead_lettered=c.dead_lettered,
            dropped=MappingProxyType(dict(c.dropped)),
            pending=self.pending,
            in_flight=self.in_flight,
        )

    def next_due(self) -> float | None:
        """When ``expire`` or ``take`` next has work (``-inf``: now), or ``None`` if never."""
        times: list[float] = []
        if self._in_flight:
            times.append(next(iter(self._in_flight.values())).deadline)
        if len(self._in_flight) < self.sub.options.in_flight_limit:
            if self._fresh:
                return -math.inf
            if self._retrying:
                times.append(self._retrying[0][0])
        return min(times, default=None)

    @property
    def pending(self) -> int:
        """Events held and not in flight."""
        return len(self._entries) - len(self._in_flight)

    @property
    def in_flight(self) -> int:
        """Deliveries in flight."""
        return len(self._in_flight)

    def _hand_out(self, entry: _Entry, clock: float) -> Delivery:
        entry.attempts += 1
        entry.delivery_id = delivery_id = self._flights.issue(self)
        entry.deadline = clock + self.sub.options.ack_timeout
        self._in_flight[delivery_id] = entry
        self.counts.delivered += 1
        return Delivery(
            id=delivery_id,
            subscriber_id=self.sub.subscriber_id,
            event=entry.event,
            sequence=entry.sequence,
            attempt=entry.attempts,
            deadline=entry.deadline,
        )

    def _land(self, delivery_id: int) -> _Entry:
        entry = self._in_flight.pop(delivery_id)
        del self._flights.owners[delivery_id]
        entry.delivery_id = None
        return entry

    def _fail(self, entry: _Entry, at: float, reason: str) -> DeadLetter | None:
        options = self.sub.options
        if entry.attempts >= options.max_attempts:
            del self._entries[entry.sequence]
            self.counts.dead_lettered += 1
            return DeadLetter(
                subscriber_id=self.sub.subscriber_id,
                event=entry.event,
                sequence=entry.sequence,
                attempts=entry.attempts,
                reason=reason,
                at=at,
            )
        entry.due = at + options.backoff.delay(entry.attempts)
        heapq.heappush(self._retrying, (entry.due, entry.sequence))
        self.counts.retried += 1
        return None

    def _discard(self, entry: _Entry) -> None:
        del self._entries[entry.sequence]
        if entry.delivery_id is not None:
            self._land(entry.delivery_id)
        elif entry.attempts == 0:
            # The oldest event held, and never handed out: so the first of the fresh ones.
            assert self._fresh[0] is entry
            self._fresh.popleft()
        else:
            self._retrying.remove((entry.due, entry.sequence))
            heapq.heapify(self._retrying)
