"""The transport seam: what every transport offers, and the receive rule over any of them.

Rules:
    1. ``publish`` returns only once the transport has taken responsibility for the message
       (a broker's publisher confirm; an in-process enqueue). It never drops: it raises
       :class:`Unroutable` when no queue is bound for the route (AMQP ``mandatory``),
       :class:`QueueFull` when a bound queue has no room, :class:`PublishTimeout` when no
       confirm came in time.
    2. Exchanges are named kinds (:data:`EXCHANGES`): ``intents``, ``algedonic`` and ``audit``
       route by topic, ``announcements`` fans out to every bound queue. A route is a path with
       ``/`` turned into ``.`` (:func:`route_for`); patterns match with AMQP topic semantics
       (:func:`topic_matches`: ``*`` is one word, ``#`` zero or more).
    3. A subscription yields :class:`Delivery` objects, at most ``prefetch`` unsettled at once.
       Each is settled exactly once: ``ack``, ``nack`` or ``dead_letter``; settling it again
       raises :class:`AlreadySettled`. Unsettled deliveries go back to their queue when the
       subscription closes, marked ``redelivered`` with ``attempt + 1``.
    4. The receive rule (:func:`consume`): ``unseal``; a :class:`ProtocolError` dead-letters the
       bytes with its ``reason``, except a replay (below); else the handler runs; only after it
       returns is the envelope recorded in the replay guard and the delivery acked. A handler
       that raises gets the delivery back (``nack(requeue=True)``) until ``max_attempts``,
       then it is dead-lettered as ``"handler-failed"``. Cancellation is never caught.
    5. Replay versus forgery: a :class:`ReplayError` with reason ``"replayed"`` means a valid,
       signed envelope whose effect is already committed (a redelivery after a crash between
       ``record`` and ``ack``, or a duplicate publish). It is acked and counted, not
       dead-lettered: nothing is wrong with it and handling it again would repeat the effect.
       ``"window-full"`` is the receiver's own limit, so the delivery is requeued (up to
       ``max_attempts``). Every other refusal is bytes at fault (garbage, forged, expired) and
       goes to the dead-letter queue.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from protocol._codec import MAX_ENVELOPE_SIZE, replay_id, unseal
from protocol._envelope import Envelope
from protocol._keystore import Verifier
from protocol._replay import ReplayGuard
from protocol.errors import ProtocolError, ReplayError

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "EXCHANGES",
    "AlreadySettled",
    "ConsumeStatistics",
    "DeadLetter",
    "Delivery",
    "ExchangeKind",
    "PublishTimeout",
    "QueueFull",
    "Settler",
    "Subscription",
    "Transport",
    "TransportClosed",
    "TransportError",
    "TransportStatistics",
    "Unroutable",
    "consume",
    "route_for",
    "topic_matches",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 10
"""Deliveries of one message :func:`consume` tries before it dead-letters it."""


class ExchangeKind(enum.StrEnum):
    """How an exchange routes: by topic pattern, or to every bound queue."""

    TOPIC = "topic"
    FANOUT = "fanout"


EXCHANGES: Mapping[str, ExchangeKind] = MappingProxyType(
    {
        "algedonic": ExchangeKind.TOPIC,
        "announcements": ExchangeKind.FANOUT,
        "audit": ExchangeKind.TOPIC,
        "intents": ExchangeKind.TOPIC,
    }
)
"""The exchanges every transport declares, by name."""


# ---------------------------------------------------------------- errors


class TransportError(ProtocolError):
    """Root of the transport's errors (a :class:`ProtocolError`)."""

    reason = "transport"


class Unroutable(TransportError, LookupError):
    """No queue is bound for the route: the message was not taken (AMQP ``mandatory``)."""

    reason = "unroutable"

    def __init__(self, exchange: str, route: str) -> None:
        self.exchange = exchange
        self.route = route
        super().__init__(f"no queue is bound on exchange {exchange!r} for route {route!r}")


class QueueFull(TransportError):
    """A bound queue holds its maximum; the message was not taken by any queue."""

    reason = "queue-full"

    def __init__(self, queue: str, limit: int) -> None:
        self.queue = queue
        self.limit = limit
        super().__init__(f"queue {queue!r} is full ({limit} messages); nothing was published")


class PublishTimeout(TransportError, TimeoutError):
    """The transport did not take responsibility for a message in time."""

    reason = "publish-timeout"

    def __init__(self, exchange: str, route: str, timeout: float) -> None:
        self.exchange = exchange
        self.route = route
        self.timeout = timeout
        super().__init__(
            f"publish to {exchange!r} route {route!r} not confirmed within {timeout!r} s"
        )


class TransportClosed(TransportError, RuntimeError):
    """The transport (or the subscription) was closed; a local error, not the peer's."""

    reason = "closed"


class AlreadySettled(TransportError, RuntimeError):
    """A delivery was acked, nacked or dead-lettered twice (or after its subscription closed)."""

    reason = "already-settled"

    def __init__(self, delivery_id: int) -> None:
        self.delivery_id = delivery_id
        super().__init__(
            f"delivery {delivery_id} is already settled (acked, nacked, dead-lettered or "
            "returned to its queue when its subscription closed)"
        )


# ---------------------------------------------------------------- deliveries


class Settler(Protocol):
    """What settles a :class:`Delivery`: the transport's side of ack, nack and dead-letter."""

    async def ack(self, delivery: Delivery) -> None:
        """The delivery's effect is committed: forget the message."""

    async def nack(self, delivery: Delivery, requeue: bool) -> None:
        """Refuse the delivery: back to its queue, or to the dead-letter queue."""

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move the delivery to the dead-letter queue with ``reason``."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message handed to a subscriber; settle it exactly once (module rule 3).

    Attributes:
        id: The delivery tag, unique per transport (a redelivery gets a new one).
        route: The routing key it was published with.
        exchange: The exchange it was published to.
        data: The bytes published (a sealed envelope).
        redelivered: Whether the message was delivered before and returned to its queue.
        attempt: 1 on first delivery, one more on each redelivery.
    """

    id: int
    route: str
    exchange: str
    data: bytes
    redelivered: bool
    attempt: int
    _settler: Settler = field(repr=False, compare=False)

    async def ack(self) -> None:
        """Settle: the effect is committed. Raises :class:`AlreadySettled` if settled."""
        await self._settler.ack(self)

    async def nack(self, requeue: bool) -> None:
        """Settle: back to the queue (``requeue``) or to the dead-letter queue (``"rejected"``).

        Raises:
            AlreadySettled: the delivery was settled before.
        """
        await self._settler.nack(self, requeue)

    async def dead_letter(self, reason: str) -> None:
        """Settle: to the dead-letter queue with ``reason``. Raises :class:`AlreadySettled`."""
        await self._settler.dead_letter(self, reason)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A delivery the receiver gave up on, and why (a :attr:`ProtocolError.reason` code)."""

    delivery: Delivery
    reason: str


class Subscription(Protocol):
    """An async iterator of deliveries from one queue; ends once closed."""

    def __aiter__(self) -> Subscription:
        """The subscription itself."""

    async def __anext__(self) -> Delivery:
        """The next delivery; waits for one (and for room under ``prefetch``)."""

    async def close(self) -> None:
        """Stop; unsettled deliveries go back to the queue (module rule 3)."""


@dataclass(frozen=True, slots=True)
class TransportStatistics:
    """Counters of a :class:`~protocol.MemoryTransport`.

    An AMQP transport sees only its own side of the broker: :class:`~protocol.AmqpStatistics`.

    Invariants, with no publish under way:

    ``routed + redelivered == delivered + queued`` and
    ``delivered == acked + nacked + dead_lettered + recovered + unacked``.

    Attributes:
        published: Publishes taken.
        routed: Copies put in queues (a fanout puts one per bound queue).
        delivered: Deliveries handed to subscribers.
        acked: Deliveries acked.
        nacked: Deliveries returned by ``nack(requeue=True)``.
        recovered: Deliveries returned because their subscription closed.
        redelivered: Messages returned to a queue (``nacked + recovered``).
        dead_lettered: Deliveries dead-lettered (``dead_letter`` and ``nack(requeue=False)``).
        dead_letters_dropped: Oldest dead letters forgotten because the list was full.
        queued: Messages waiting in queues now.
        unacked: Deliveries handed out and not yet settled now.
    """

    published: int
    routed: int
    delivered: int
    acked: int
    nacked: int
    recovered: int
    redelivered: int
    dead_lettered: int
    dead_letters_dropped: int
    queued: int
    unacked: int


class Transport(Protocol):
    """What every transport offers (``MemoryTransport``, ``AmqpTransport``)."""

    async def publish(self, exchange: str, route: str, data: bytes) -> None:
        """Hand ``data`` over; return once the transport took responsibility (rule 1).

        Raises:
            Unroutable: no queue is bound for ``route``.
            QueueFull: a bound queue is full.
            PublishTimeout: not confirmed in time.
            TransportClosed: the transport is closed.
        """

    async def subscribe(
        self, exchange: str, pattern: str, queue: str, *, prefetch: int
    ) -> Subscription:
        """Declare ``queue``, bind it to ``exchange`` with ``pattern``, and consume from it."""

    async def close(self) -> None:
        """Close every subscription and refuse further publishes."""


# ---------------------------------------------------------------- routes


def route_for(path: str) -> str:
    """The routing key of a viable system's ``path``: ``"root/a/b"`` -> ``"root.a.b"``.

    Raises:
        ValueError: the path has an empty segment, or one holding ``.``, ``*`` or ``#``.
    """
    words = path.split("/")
    for word in words:
        if not word or "." in word or word in ("*", "#"):
            raise ValueError(f"path {path!r} cannot be a route: bad segment {word!r}")
    return ".".join(words)


def topic_matches(pattern: str, route: str) -> bool:
    """Whether ``route`` matches the AMQP topic ``pattern``.

    Both are words separated by ``.``; in the pattern ``*`` stands for exactly one word and
    ``#`` for zero or more words.
    """
    words = route.split(".")
    positions = {0}
    for word in pattern.split("."):
        if word == "#":
            positions = set(range(min(positions), len(words) + 1))
        elif word == "*":
            positions = {p + 1 for p in positions if p < len(words)}
        else:
            positions = {p + 1 for p in positions if p < len(words) and words[p] == word}
        if not positions:
            return False
    return len(words) in positions


# ---------------------------------------------------------------- the receive rule


@dataclass(frozen=True, slots=True)
class ConsumeStatistics:
    """What :func:`consume` did with the deliveries it took.

    Attributes:
        handled: Envelopes handled, recorded and acked.
        replayed: Envelopes already handled, acked without the handler (module rule 5).
        failed: Handler calls that raised.
        deferred: Deliveries requeued because the replay window was full.
        dead_lettered: Deliveries dead-lettered (refused bytes, or out of attempts).
    """

    handled: int = 0
    replayed: int = 0
    failed: int = 0
    deferred: int = 0
    dead_lettered: int = 0


async def consume(
    subscription: Subscription,
    handler: Callable[[Envelope], Awaitable[None]],
    keys: Verifier,
    guard: ReplayGuard,
    now_fn: Callable[[], float],
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    max_size: int = MAX_ENVELOPE_SIZE,
) -> ConsumeStatistics:
    """Run the receive rule (module rules 4 and 5) until ``subscription`` ends.

    The caller owns this coroutine (await it, or keep the task and await it). If it is
    cancelled, the delivery in hand stays unsettled and returns to its queue when the
    subscription closes; the guard has not recorded it, so it will be handled then.

    Returns:
        The counts of what happened to the deliveries taken.

    Raises:
        ValueError: ``max_attempts`` is below 1.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts!r}")
    handled = replayed = failed = deferred = dead_lettered = 0
    async for delivery in subscription:
        try:
            envelope = unseal(delivery.data, keys, guard, now_fn(), max_size=max_size)
        except ReplayError as exc:
            if exc.reason == "replayed":
                await delivery.ack()
                replayed += 1
            elif delivery.attempt >= max_attempts:
                await delivery.dead_letter(exc.reason)
                dead_lettered += 1
            else:
                await delivery.nack(requeue=True)
                deferred += 1
            continue
        except ProtocolError as exc:
            await delivery.dead_letter(exc.reason)
            dead_lettered += 1
            continue
        try:
            await handler(envelope)
        except Exception:  # the handler's failure is retried; BaseException propagates
            failed += 1
            logger.warning(
                "handler failed on envelope %s",
                envelope.id,
                exc_info=True,
                extra={"envelope_id": envelope.id},
            )
            if delivery.attempt >= max_attempts:
                await delivery.dead_letter("handler-failed")
                dead_lettered += 1
            else:
                await delivery.nack(requeue=True)
            continue
        guard.record(*replay_id(envelope))
        await delivery.ack()
        handled += 1
    return ConsumeStatistics(handled, replayed, failed, deferred, dead_lettered)
