"""The event stream: the events Systems emit, broadcast to subscribers with at-least-once delivery.

Dashboards, the rule runtime and SSE clients subscribe to topic patterns; a shell publishes
every :class:`~vsm.effects.Event` the Systems emit into a :class:`Broadcaster`, and drives it:

- ``publish(event, now)`` routes the event by its topic (its kind) to every matching
  subscriber's bounded buffer (:mod:`vsm.broadcast._topics`: ``*`` is one segment, ``#`` zero
  or more, as in an AMQP topic exchange);
- ``ready(now)`` returns the :class:`Delivery` objects due: new events, and retries whose
  backoff is over; deliveries not answered within the ack timeout fail first;
- the shell sends each one and answers ``ack(id)`` or ``nack(id, now, reason)``; an event that
  fails ``max_attempts`` times becomes a :class:`DeadLetter`.

It is pure: no clock, no I/O; time comes in as ``now``. The rules are in
:mod:`vsm.broadcast._broadcaster` (delivery) and :mod:`vsm.broadcast._topics` (matching);
``docs/broadcast.md`` walks through them.

Errors::

    VsmError
    └── BroadcastError
        ├── TopicError              (ValueError)  a topic or pattern is malformed; shows it
        ├── ArgumentError           (ValueError)  an option, setting or argument is out of range
        ├── SubscriptionError       (ValueError)  an id is malformed or taken; the broadcaster
        │                                         is full
        ├── UnknownSubscriberError  (KeyError)    no subscriber has this id
        └── UnknownDeliveryError    (KeyError)    ready() never handed out this delivery id
"""

from vsm.broadcast._broadcaster import MAX_REASON_LENGTH, Broadcaster
from vsm.broadcast._errors import (
    ArgumentError,
    BroadcastError,
    SubscriptionError,
    TopicError,
    UnknownDeliveryError,
    UnknownSubscriberError,
)
from vsm.broadcast._options import (
    MAX_ATTEMPTS,
    MAX_BUFFER,
    MAX_ID_LENGTH,
    Backoff,
    Overflow,
    Subscription,
    SubscriptionOptions,
)
from vsm.broadcast._records import (
    BroadcastStatistics,
    DeadLetter,
    Delivery,
    DropReason,
    Published,
    SubscriberStatistics,
)
from vsm.broadcast._topics import (
    MAX_TOPIC_LENGTH,
    TopicTrie,
    check_pattern,
    check_topic,
    topic_matches,
    topic_of,
)

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_BUFFER",
    "MAX_ID_LENGTH",
    "MAX_REASON_LENGTH",
    "MAX_TOPIC_LENGTH",
    "ArgumentError",
    "Backoff",
    "BroadcastError",
    "BroadcastStatistics",
    "Broadcaster",
    "DeadLetter",
    "Delivery",
    "DropReason",
    "Overflow",
    "Published",
    "SubscriberStatistics",
    "Subscription",
    "SubscriptionError",
    "SubscriptionOptions",
    "TopicError",
    "TopicTrie",
    "UnknownDeliveryError",
    "UnknownSubscriberError",
    "check_pattern",
    "check_topic",
    "topic_matches",
    "topic_of",
]
