"""The broadcaster: routes events to subscribers, hands deliveries out, retries, dead-letters.

Rules:
    1. Clock. Every method that takes ``now`` first moves the clock to ``max(clock, now)``; a
       ``now`` earlier than the clock counts as no time elapsed. A non-finite ``now`` raises
       :class:`~vsm.broadcast.ArgumentError` and changes nothing.
    2. Routing. ``publish`` gives the event the next sequence number (1, 2, ...) and offers it
       to every subscriber whose pattern matches its topic (the event's kind) and whose
       ``within`` (if set) holds the event's path.
    3. Buffers. A subscriber holds at most ``buffer`` events, waiting and in flight together.
    4. Overflow. An event offered to a full buffer meets the subscriber's policy:
       ``drop_oldest`` evicts the oldest event held (lowest sequence), even one in flight,
       whose delivery becomes late (rule 7), and queues the new one; ``drop_newest`` drops the
       new one; ``reject`` drops the new one and names the subscriber in
       :attr:`~vsm.broadcast.Published.rejected`. Every drop is counted by reason.
    5. Hand-out. ``ready(now)`` visits subscribers in subscription order. First, each delivery
       in flight whose deadline has come (``deadline <= clock``) fails, as of its deadline,
       with the reason ``"no ack within ... s"``. Then, while fewer than
       ``min(prefetch, buffer)`` deliveries are in flight, it hands out the events that are
       due (retries whose backoff is over, and events never handed out), lowest sequence
       first. Each hand-out is a new :class:`~vsm.broadcast.Delivery`: a new id, the next
       attempt number, and ``deadline = clock + ack_timeout``.
    6. Answers. ``ack(id)`` settles a delivery in flight: the event leaves the buffer.
       ``nack(id, now, reason)`` fails it as of the clock. Either returns ``True``.
    7. Late answers. An ``ack`` or ``nack`` for a delivery no longer in flight (answered
       before, timed out, evicted, or its subscriber gone) returns ``False``, is counted as
       late, and changes nothing else: a timed-out event goes out again even if the late ack
       shows it was taken. An id ``ready`` never handed out raises
       :class:`~vsm.broadcast.UnknownDeliveryError`.
    8. Failures. After its ``k``-th failed attempt an event waits ``backoff.delay(k)`` seconds,
       counted from the failure, and is then due again (rule 5); after the
       ``max_attempts``-th it leaves the buffer and is appended to the dead letters with that
       failure's reason and time. At ``max_dead_letters`` the oldest dead letter is evicted to
       make room (counted).
    9. Order. A subscriber's first deliveries go out in publish order. A retry goes out when
       its backoff is over, so it may arrive after events published later than it; a
       subscriber that cares reorders or deduplicates by ``Delivery.sequence``.
    10. Unsubscribing drops every event the subscriber holds (counted as ``unsubscribed``);
        answers for its deliveries are late from then on.
    11. The guarantee. An event queued for a subscriber ends in exactly one way: acked once,
        dead-lettered, or dropped (``oldest`` or ``unsubscribed``); until then it is held.
        So it is delivered at least once, unless its subscriber fell a whole buffer behind
        (the overflow policy decides then) or left.

Cost: ``publish`` costs the trie walk (see :mod:`vsm.broadcast._topics`) plus O(1) per
matched subscriber; ``ready`` costs O(subscribers) plus O(log buffer) per delivery handed out
or expired; ``ack`` and ``nack`` cost O(log buffer). Evicting a retrying event under
``drop_oldest`` costs O(buffer).
"""

from __future__ import annotations

import math
from collections import deque
from types import MappingProxyType

from vsm.address import is_within
from vsm.broadcast._errors import (
    ArgumentError,
    SubscriptionError,
    UnknownDeliveryError,
    UnknownSubscriberError,
)
from vsm.broadcast._options import Backoff, Overflow, Subscription, SubscriptionOptions
from vsm.broadcast._queue import Counts, Flights, SubscriberQueue
from vsm.broadcast._records import (
    BroadcastStatistics,
    DeadLetter,
    Delivery,
    DropReason,
    Published,
    SubscriberStatistics,
)
from vsm.broadcast._topics import TopicTrie
from vsm.effects import Event

__all__ = ["MAX_REASON_LENGTH", "Broadcaster"]

MAX_REASON_LENGTH = 200
"""Most characters of a ``nack`` reason kept; a longer one is cut, ending in ``...``."""

_DEFAULT = SubscriptionOptions()


def _check_now(now: float) -> float:
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
        raise ArgumentError("now", now, "a finite number of seconds")
    return float(now)


def _bound(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArgumentError(name, value, "an int >= 1")
    return value


class Broadcaster:
    """Routes published events to subscribers and keeps each delivery until it is answered.

    A pure state machine (see the module rules): a shell publishes what the Systems emit,
    calls :meth:`ready` to get the deliveries due, sends each one, and answers it with
    :meth:`ack` or :meth:`nack`.

    Args:
        max_subscribers: Most subscribers at once (an int >= 1).
        max_dead_letters: Most dead letters kept; the oldest go first (an int >= 1).

    Raises:
        ArgumentError: A bound is not an int >= 1; the message shows it.
    """

    __slots__ = (
        "_clock",
        "_dead",
        "_evicted",
        "_flights",
        "_late",
        "_published",
        "_queues",
        "_retired",
        "_trie",
        "_unrouted",
        "max_dead_letters",
        "max_subscribers",
    )

    def __init__(self, *, max_subscribers: int = 1024, max_dead_letters: int = 1024) -> None:
        self.max_subscribers = _bound("max_subscribers", max_subscribers)
        self.max_dead_letters = _bound("max_dead_letters", max_dead_letters)
        self._clock = -math.inf
        self._queues: dict[str, SubscriberQueue] = {}
        self._trie: TopicTrie[str] = TopicTrie()
        self._flights = Flights()
        self._dead: deque[DeadLetter] = deque()
        self._retired = Counts()  # the counters of subscribers that left
        self._published = self._unrouted = self._late = self._evicted = 0

    @property
    def clock(self) -> float:
        """The latest ``now`` seen (``-inf`` before any)."""
        return self._clock

    def subscribe(
        self,
        subscriber_id: str,
        pattern: str,
        *,
        within: str | None = None,
        buffer: int = _DEFAULT.buffer,
        overflow: Overflow = _DEFAULT.overflow,
        prefetch: int = _DEFAULT.prefetch,
        max_attempts: int = _DEFAULT.max_attempts,
        backoff: Backoff = _DEFAULT.backoff,
        ack_timeout: float = _DEFAULT.ack_timeout,
    ) -> Subscription:
        """Subscribe ``subscriber_id`` to the topics ``pattern`` matches; see :meth:`add`.

        The keyword arguments are those of :class:`~vsm.broadcast.SubscriptionOptions`.

        Raises:
            TopicError: ``pattern`` is malformed.
            ArgumentError: An option or ``within`` is out of range.
            SubscriptionError: The id is malformed or taken, or the broadcaster is full.
        """
        options = SubscriptionOptions(
            buffer=buffer,
            overflow=overflow,
            prefetch=prefetch,
            max_attempts=max_attempts,
            backoff=backoff,
            ack_timeout=ack_timeout,
        )
        return self.add(Subscription(subscriber_id, pattern, within, options))

    def add(self, subscription: Subscription) -> Subscription:
        """Add a subscription built elsewhere (from configuration, say); returns it.

        The subscriber receives events published from now on, none from before.

        Raises:
            SubscriptionError: The id is taken, or there are ``max_subscribers`` already.
            ArgumentError: ``subscription`` is not a Subscription.
        """
        if not isinstance(subscription, Subscription):
            raise ArgumentError("subscription", subscription, "a Subscription")
        sid = subscription.subscriber_id
        if sid in self._queues:
            raise SubscriptionError(sid, "the id is subscribed already")
        if len(self._queues) >= self.max_subscribers:
            raise SubscriptionError(sid, f"the broadcaster holds {self.max_subscribers} already")
        self._trie.add(sid, subscription.pattern)
        self._queues[sid] = SubscriberQueue(subscription, self._flights)
        return subscription

    def unsubscribe(self, subscriber_id: str) -> int:
        """Remove a subscriber and drop what it holds (rule 10); how many events that was.

        Raises:
            UnknownSubscriberError: No subscriber has this id.
        """
        queue = self._queue(subscriber_id)
        dropped = queue.close()
        self._trie.remove(subscriber_id)
        del self._queues[subscriber_id]
        self._retired.add(queue.counts)
        return dropped

    def subscriptions(self) -> tuple[Subscription, ...]:
        """Every subscription, in subscription order."""
        return tuple(queue.sub for queue in self._queues.values())

    def publish(self, event: Event, now: float) -> Published:
        """Route ``event`` to its subscribers (rules 2-4).

        Raises:
            ArgumentError: ``event`` is not an Event, or ``now`` is not finite.
            TopicError: The event's kind is not a valid topic (nothing changes).
        """
        if not isinstance(event, Event):
            raise ArgumentError("event", event, "an Event")
        now = _check_now(now)
        topic = event.kind  # rule 2; match() checks that it is a topic before anything changes
        matched = self._trie.match(topic)
        self._clock = max(self._clock, now)
        self._published += 1
        sequence = self._published
        queued = 0
        rejected: list[str] = []
        routed = False
        for sid in matched:
            queue = self._queues[sid]
            within = queue.sub.within
            if within is not None and not is_within(event.path, within):
                continue
            routed = True
            refused = queue.offer(sequence, event)
            if refused is None:
                queued += 1
            elif refused is DropReason.REJECTED:
                rejected.append(sid)
        self._unrouted += not routed
        return Published(
            sequence=sequence, topic=topic, queued=queued, rejected=tuple(sorted(rejected))
        )

    def ready(self, now: float) -> list[Delivery]:
        """Expire overdue deliveries, then hand out what is due (rules 5 and 8).

        Returns at most ``min(prefetch, buffer)`` deliveries per subscriber, grouped by
        subscriber in subscription order, lowest sequence first within each.

        Raises:
            ArgumentError: ``now`` is not finite.
        """
        clock = self._clock = max(self._clock, _check_now(now))
        deliveries: list[Delivery] = []
        for queue in self._queues.values():
            for letter in queue.expire(clock):
                self._bury(letter)
            deliveries.extend(queue.take(clock))
        return deliveries

    def next_due(self) -> float | None:
        """When :meth:`ready` next has work if nothing else happens; ``None`` if never.

        That is the clock if a subscriber has room and an event never handed out, else the
        earliest in-flight deadline or retry (with room) due. A shell can sleep until then.
        """
        due = [t for queue in self._queues.values() if (t := queue.next_due()) is not None]
        return max(self._clock, min(due)) if due else None

    def ack(self, delivery_id: int) -> bool:
        """Settle a delivery as taken (rule 6); ``False`` if it was late (rule 7).

        Raises:
            UnknownDeliveryError: ``ready`` never handed out this id.
        """
        queue = self._owner(delivery_id)
        if queue is None:
            return False
        queue.ack(delivery_id)
        return True

    def nack(self, delivery_id: int, now: float, reason: str = "nack") -> bool:
        """Settle a delivery as failed (rules 6 and 8); ``False`` if it was late (rule 7).

        ``reason`` is kept in the dead letter if this was the last attempt, cut to
        :data:`MAX_REASON_LENGTH` characters.

        Raises:
            UnknownDeliveryError: ``ready`` never handed out this id.
            ArgumentError: ``now`` is not finite, or ``reason`` is not a str.
        """
        now = _check_now(now)
        if not isinstance(reason, str):
            raise ArgumentError("reason", reason, "a str")
        queue = self._owner(delivery_id)
        self._clock = max(self._clock, now)
        if queue is None:
            return False
        if len(reason) > MAX_REASON_LENGTH:
            reason = reason[: MAX_REASON_LENGTH - 3] + "..."
        letter = queue.nack(delivery_id, self._clock, reason)
        if letter is not None:
            self._bury(letter)
        return True

    def dead_letters(self) -> tuple[DeadLetter, ...]:
        """The dead letters kept, oldest first."""
        return tuple(self._dead)

    def take_dead_letters(self) -> list[DeadLetter]:
        """Remove and return the dead letters kept, oldest first (to store them elsewhere)."""
        taken = list(self._dead)
        self._dead.clear()
        return taken

    def subscriber_statistics(self, subscriber_id: str) -> SubscriberStatistics:
        """The counters of one subscriber.

        Raises:
            UnknownSubscriberError: No subscriber has this id.
        """
        return self._queue(subscriber_id).statistics()

    def statistics(self) -> BroadcastStatistics:
        """The counters of the broadcaster, summed over every subscriber it ever had."""
        totals = Counts()
        totals.add(self._retired)
        for queue in self._queues.values():
            totals.add(queue.counts)
        return BroadcastStatistics(
            subscribers=len(self._queues),
            published=self._published,
            unrouted=self._unrouted,
            matched=totals.matched,
            queued=totals.queued,
            delivered=totals.delivered,
            acked=totals.acked,
            nacked=totals.nacked,
            timed_out=totals.timed_out,
            retried=totals.retried,
            dead_lettered=totals.dead_lettered,
            dropped=MappingProxyType(totals.dropped),
            pending=sum(queue.pending for queue in self._queues.values()),
            in_flight=len(self._flights.owners),
            late=self._late,
            dead_letters=len(self._dead),
            dead_letters_evicted=self._evicted,
        )

    def _queue(self, subscriber_id: str) -> SubscriberQueue:
        try:
            return self._queues[subscriber_id]
        except (KeyError, TypeError):  # TypeError: an unhashable id
            raise UnknownSubscriberError(subscriber_id) from None

    def _owner(self, delivery_id: int) -> SubscriberQueue | None:
        valid = not isinstance(delivery_id, bool) and isinstance(delivery_id, int)
        if not valid or not 1 <= delivery_id <= self._flights.last_id:
            raise UnknownDeliveryError(delivery_id)
        queue = self._flights.owners.get(delivery_id)
        if queue is None:
            self._late += 1
        return queue

    def _bury(self, letter: DeadLetter) -> None:
        if len(self._dead) >= self.max_dead_letters:
            self._dead.popleft()
            self._evicted += 1
        self._dead.append(letter)

    def __repr__(self) -> str:
        return (
            f"Broadcaster(subscribers={len(self._queues)}, published={self._published}, "
            f"in_flight={len(self._flights.owners)}, dead_letters={len(self._dead)})"
        )
