"""What the broadcaster hands out and reports: deliveries, dead letters, statistics.

All frozen and built only by the broadcaster, so none of them validates its fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from vsm.effects import Event

__all__ = [
    "BroadcastStatistics",
    "DeadLetter",
    "Delivery",
    "DropReason",
    "Published",
    "SubscriberStatistics",
]


class DropReason(StrEnum):
    """Why an event never reached a subscriber (the keys of ``statistics().dropped``)."""

    OLDEST = "oldest"
    """Evicted from a full ``drop_oldest`` buffer to make room for a newer event."""
    NEWEST = "newest"
    """Refused by a full ``drop_newest`` buffer."""
    REJECTED = "rejected"
    """Refused by a full ``reject`` buffer, and named in :attr:`Published.rejected`."""
    UNSUBSCRIBED = "unsubscribed"
    """Still held (waiting or in flight) when its subscriber unsubscribed."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt to hand one event to one subscriber; answer it with ``ack`` or ``nack``.

    Attributes:
        id: Unique within the broadcaster; a retry of the same event gets a new id.
        subscriber_id: Whom to hand the event to.
        event: The event.
        sequence: The event's publish number (1, 2, ...; the same for every subscriber of it).
            A subscriber that sees an event twice (at-least-once) can tell by it; an SSE shell
            can send it as the event id.
        attempt: 1 for the first delivery of the event to this subscriber, 2 for the first
            retry, and so on.
        deadline: When the ack timeout runs out, on the broadcaster's clock.
    """

    id: int
    subscriber_id: str
    event: Event
    sequence: int
    attempt: int
    deadline: float


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event a subscriber failed to take ``max_attempts`` times in a row.

    Attributes:
        subscriber_id: Who failed to take it.
        event: The event.
        sequence: The event's publish number.
        attempts: How many deliveries were made.
        reason: Why the last one failed: the reason given to ``nack``, or the ack timeout.
        at: When the last attempt failed, on the broadcaster's clock.
    """

    subscriber_id: str
    event: Event
    sequence: int
    attempts: int
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class Published:
    """What one ``publish`` did.

    Attributes:
        sequence: The publish number given to the event.
        topic: The topic it was routed by.
        queued: How many subscribers it was queued for.
        rejected: The subscribers whose full ``reject`` buffer refused it, sorted by id: the
            shell may slow the publisher down, or cut a slow client off.
    """

    sequence: int
    topic: str
    queued: int
    rejected: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SubscriberStatistics:
    """Counters of one subscriber, since it subscribed.

    They add up: ``matched = queued + dropped[newest] + dropped[rejected]``;
    ``queued = acked + dead_lettered + dropped[oldest] + pending + in_flight``; and
    ``nacked + timed_out = retried + dead_lettered``.

    Attributes:
        matched: Events published whose topic (and path) the subscription matched.
        queued: Events taken into the buffer.
        delivered: Deliveries handed out by ``ready``, retries included.
        acked: Deliveries acked (each event at most once).
        nacked: Deliveries nacked.
        timed_out: Deliveries not answered within the ack timeout.
        retried: Failed deliveries (nacked or timed out) scheduled for another attempt.
        dead_lettered: Events moved to the dead letters after ``max_attempts`` failures.
        dropped: Events that never reached the subscriber, by reason (every reason present).
        pending: Events waiting: never delivered, or waiting out a backoff.
        in_flight: Deliveries handed out and not yet answered.
    """

    matched: int
    queued: int
    delivered: int
    acked: int
    nacked: int
    timed_out: int
    retried: int
    dead_lettered: int
    dropped: Mapping[DropReason, int]
    pending: int
    in_flight: int


@dataclass(frozen=True, slots=True)
class BroadcastStatistics:
    """Counters of a broadcaster: the sums over every subscriber, past and present, and more.

    The per-subscriber sums add up as in :class:`SubscriberStatistics`, with
    ``dropped[unsubscribed]`` joining the events that left ``queued``.

    Attributes:
        subscribers: Subscribers now.
        published: Events published.
        unrouted: Events published that no subscriber matched.
        matched: See :class:`SubscriberStatistics`; the same for the rest down to
            ``in_flight``.
        queued: Events taken into a buffer.
        delivered: Deliveries handed out.
        acked: Deliveries acked.
        nacked: Deliveries nacked.
        timed_out: Deliveries timed out.
        retried: Failures scheduled for another attempt.
        dead_lettered: Events dead-lettered.
        dropped: Events dropped, by reason.
        pending: Events waiting.
        in_flight: Deliveries in flight.
        late: ``ack`` and ``nack`` calls for a delivery no longer in flight (answered before,
            timed out, evicted, or its subscriber gone): ignored, counted here.
        dead_letters: Dead letters held now.
        dead_letters_evicted: Dead letters evicted, oldest first, to keep within the bound.
    """

    subscribers: int
    published: int
    unrouted: int
    matched: int
    queued: int
    delivered: int
    acked: int
    nacked: int
    timed_out: int
    retried: int
    dead_lettered: int
    dropped: Mapping[DropReason, int]
    pending: int
    in_flight: int
    late: int
    dead_letters: int
    dead_letters_evicted: int
