"""``MemoryTransport``: the embedded, in-process, deterministic transport (and the test fake).

Rules (besides those of :mod:`protocol._transport`):
    1. Queues are declared by ``subscribe`` and outlive their subscriptions (like durable AMQP
       queues); bindings too. A queue may have several subscriptions, which compete.
    2. Each queue is FIFO and holds at most ``max_queue`` ready messages. A publish checks every
       bound queue first and enqueues in all or none: when one is full it waits up to
       ``publish_timeout`` for room (``PublishTimeout``), or with no timeout raises
       ``QueueFull`` at once. Returned messages go back to the head of their queue and may
       exceed ``max_queue``; they are bounded by prefetch.
    3. A subscription holds at most ``prefetch`` unsettled deliveries; its iterator waits.
    4. Dead letters are kept, at most ``max_dead_letters``; past that the oldest is forgotten
       and counted in ``dead_letters_dropped``.
    5. No task is ever started: everything happens in the callers' coroutines, so nothing is
       left running after :meth:`MemoryTransport.close`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from protocol._transport import (
    EXCHANGES,
    AlreadySettled,
    DeadLetter,
    Delivery,
    ExchangeKind,
    PublishTimeout,
    QueueFull,
    TransportClosed,
    TransportStatistics,
    Unroutable,
    topic_matches,
)

__all__ = ["MemoryTransport"]


@dataclass(frozen=True, slots=True)
class _Message:
    exchange: str
    route: str
    data: bytes
    attempt: int = 1


def _positive(name: str, value: int) -> int:
    if type(value) is not int or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class MemoryTransport:
    """An in-process :class:`~protocol.Transport` (see the module rules).

    Args:
        max_queue: Most ready messages per queue.
        max_dead_letters: Most dead letters kept.
        publish_timeout: Seconds a publish waits for room in a full queue; ``None`` raises
            :class:`~protocol.QueueFull` at once.

    Raises:
        ValueError: an argument is out of range (the bad value is shown).
    """

    def __init__(
        self,
        *,
        max_queue: int = 10_000,
        max_dead_letters: int = 10_000,
        publish_timeout: float | None = None,
    ) -> None:
        self._max_queue = _positive("max_queue", max_queue)
        self._dead: deque[DeadLetter] = deque(
            maxlen=_positive("max_dead_letters", max_dead_letters)
        )
        if publish_timeout is not None and not publish_timeout >= 0:
            raise ValueError(f"publish_timeout must be >= 0 or None, got {publish_timeout!r}")
        self._publish_timeout = publish_timeout
        self._changed = asyncio.Condition()
        self._queues: dict[str, deque[_Message]] = {}
        self._bindings: set[tuple[str, str, str]] = set()  # (exchange, pattern, queue)
        self._subscriptions: list[_MemorySubscription] = []
        self._closed = False
        self._tags = 0
        self._published = self._routed = self._delivered = self._acked = 0
        self._nacked = self._recovered = self._dead_lettered = self._dead_dropped = 0

    # ------------------------------------------------------------ the Transport protocol

    async def publish(self, exchange: str, route: str, data: bytes) -> None:
        """Enqueue ``data`` in every queue bound for ``route`` (all or none; rule 2).

        Raises:
            ValueError: ``exchange`` is not one of :data:`~protocol.EXCHANGES`.
            Unroutable: no queue is bound for ``route``.
            QueueFull: a bound queue is full and there is no ``publish_timeout``.
            PublishTimeout: a bound queue stayed full for ``publish_timeout`` seconds.
            TransportClosed: the transport is closed.
        """
        kind = self._kind(exchange)
        async with self._changed:
            self._check_open()
            targets = sorted(
                {
                    queue
                    for ex, pattern, queue in self._bindings
                    if ex == exchange
                    and (kind is ExchangeKind.FANOUT or topic_matches(pattern, route))
                }
            )
            if not targets:
                raise Unroutable(exchange, route)
            full = [q for q in targets if len(self._queues[q]) >= self._max_queue]
            if full:
                if self._publish_timeout is None:
                    raise QueueFull(full[0], self._max_queue)
                try:
                    async with asyncio.timeout(self._publish_timeout):
                        await self._changed.wait_for(lambda: self._room(targets))
                except TimeoutError:
                    raise PublishTimeout(exchange, route, self._publish_timeout) from None
                self._check_open()
            message = _Message(exchange, route, bytes(data))
            for queue in targets:
                self._queues[queue].append(message)
            self._published += 1
            self._routed += len(targets)
            self._changed.notify_all()

    async def subscribe(
        self, exchange: str, pattern: str, queue: str, *, prefetch: int
    ) -> _MemorySubscription:
        """Declare ``queue``, bind it with ``pattern`` (ignored by fanout), and consume it.

        Raises:
            ValueError: unknown exchange, empty queue name, or ``prefetch`` below 1.
            TransportClosed: the transport is closed.
        """
        self._kind(exchange)
        _positive("prefetch", prefetch)
        if not queue:
            raise ValueError("queue must be a non-empty name, got ''")
        async with self._changed:
            self._check_open()
            self._queues.setdefault(queue, deque())
            self._bindings.add((exchange, pattern, queue))
            subscription = _MemorySubscription(self, queue, prefetch)
            self._subscriptions.append(subscription)
            return subscription

    async def close(self) -> None:
        """Close every subscription (their unsettled deliveries go back) and refuse publishes."""
        for subscription in list(self._subscriptions):
            await subscription.close()
        async with self._changed:
            self._closed = True
            self._changed.notify_all()

    def statistics(self) -> TransportStatistics:
        """The counters now (see :class:`~protocol.TransportStatistics` for the invariants)."""
        return TransportStatistics(
            published=self._published,
            routed=self._routed,
            delivered=self._delivered,
            acked=self._acked,
            nacked=self._nacked,
            recovered=self._recovered,
            redelivered=self._nacked + self._recovered,
            dead_lettered=self._dead_lettered,
            dead_letters_dropped=self._dead_dropped,
            queued=sum(map(len, self._queues.values())),
            unacked=sum(len(s._unacked) for s in self._subscriptions),
        )

    # ------------------------------------------------------------ beyond the protocol

    def dead_letters(self) -> tuple[DeadLetter, ...]:
        """The dead letters kept, oldest first."""
        return tuple(self._dead)

    def queue_depth_nowait(self, queue: str) -> int:
        """Ready messages in ``queue`` now (0 for an undeclared queue)."""
        return len(self._queues.get(queue, ()))

    async def wait_idle(self) -> None:
        """Wait until no message is queued and no delivery is unsettled."""
        async with self._changed:
            await self._changed.wait_for(self._idle)

    # ------------------------------------------------------------ internals

    def _idle(self) -> bool:
        stats = self.statistics()
        return stats.queued == 0 and stats.unacked == 0

    def _room(self, targets: list[str]) -> bool:
        return self._closed or all(len(self._queues[q]) < self._max_queue for q in targets)

    def _kind(self, exchange: str) -> ExchangeKind:
        try:
            return EXCHANGES[exchange]
        except KeyError:
            raise ValueError(
                f"unknown exchange {exchange!r}; expected one of {sorted(EXCHANGES)}"
            ) from None

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosed("the transport is closed")

    def _next_tag(self) -> int:
        self._tags += 1
        return self._tags

    def _requeue(self, queue: str, messages: list[_Message]) -> None:
        for message in reversed(messages):
            self._queues[queue].appendleft(
                _Message(message.exchange, message.route, message.data, message.attempt + 1)
            )

    def _bury(self, delivery: Delivery, reason: str) -> None:
        if len(self._dead) == self._dead.maxlen:
            self._dead_dropped += 1
        self._dead.append(DeadLetter(delivery, reason))
        self._dead_lettered += 1


class _MemorySubscription:
    """A subscription of :class:`MemoryTransport`; also the settler of its deliveries."""

    def __init__(self, transport: MemoryTransport, queue: str, prefetch: int) -> None:
        self._transport = transport
        self._queue = queue
        self._prefetch = prefetch
        self._unacked: dict[int, _Message] = {}
        self._closed = False

    def __aiter__(self) -> _MemorySubscription:
        return self

    async def __anext__(self) -> Delivery:
        """The next delivery; waits for a message and for room under ``prefetch``."""
        transport = self._transport
        ready = transport._queues[self._queue]
        async with transport._changed:
            await transport._changed.wait_for(
                lambda: self._closed or (bool(ready) and len(self._unacked) < self._prefetch)
            )
            if self._closed:
                raise StopAsyncIteration
            message = ready.popleft()
            tag = transport._next_tag()
            self._unacked[tag] = message
            transport._delivered += 1
            transport._changed.notify_all()
            return Delivery(
                id=tag,
                route=message.route,
                exchange=message.exchange,
                data=message.data,
                redelivered=message.attempt > 1,
                attempt=message.attempt,
                _settler=self,
            )

    async def close(self) -> None:
        """Stop; unsettled deliveries go back to the head of the queue, in order."""
        transport = self._transport
        async with transport._changed:
            if self._closed:
                return
            self._closed = True
            transport._recovered += len(self._unacked)
            transport._requeue(self._queue, list(self._unacked.values()))
            self._unacked.clear()
            transport._subscriptions.remove(self)
            transport._changed.notify_all()

    def _settle(self, delivery: Delivery) -> _Message:
        try:
            return self._unacked.pop(delivery.id)
        except KeyError:
            raise AlreadySettled(delivery.id) from None

    async def ack(self, delivery: Delivery) -> None:
        """Forget the delivery's message."""
        async with self._transport._changed:
            self._settle(delivery)
            self._transport._acked += 1
            self._transport._changed.notify_all()

    async def nack(self, delivery: Delivery, requeue: bool) -> None:
        """Back to the head of the queue, or dead-lettered as ``"rejected"``."""
        if not requeue:
            await self.dead_letter(delivery, "rejected")
            return
        async with self._transport._changed:
            message = self._settle(delivery)
            self._transport._nacked += 1
            self._transport._requeue(self._queue, [message])
            self._transport._changed.notify_all()

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """To the transport's dead-letter list with ``reason``."""
        async with self._transport._changed:
            self._settle(delivery)
            self._transport._bury(delivery, reason)
            self._transport._changed.notify_all()
