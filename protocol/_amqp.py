"""``AmqpTransport``: the :class:`~protocol.Transport` over RabbitMQ, with aio-pika.

Rules (besides those of :mod:`protocol._transport`):
    1. Names. The four exchanges of :data:`~protocol.EXCHANGES` are declared durable as
       ``{prefix}.{name}``; a subscription's queue ``q`` is ``{prefix}.{q}``. Every queue is
       durable, of type ``quorum`` (``classic`` on request), bounded by ``max_queue`` with
       ``x-overflow: reject-publish``, and dead-letters to the fanout exchange
       ``{prefix}.dead``, whose durable queue ``{prefix}.dead`` is declared on connect.
    2. Publish. Messages are persistent and ``mandatory`` on a channel with publisher confirms;
       at most ``max_in_flight`` publishes await their confirm at once. A returned message
       raises :class:`~protocol.Unroutable`; a broker nack (a full queue refusing it) raises
       :class:`~protocol.QueueFull`. When the connection drops before the confirm, the
       publish waits for the robust connection to come back and publishes again, until
       ``publish_timeout`` (:class:`~protocol.PublishTimeout`): whatever was unconfirmed is
       republished. A republish may duplicate a message the broker had taken; consumers are
       idempotent on envelope id (:func:`~protocol.consume` and its replay guard). Two
       differences from the memory transport, both the broker's: a quorum queue refuses only
       once it is *over* its limit, so it holds up to ``max_queue + 1``; and a fanout publish
       refused by one full queue may have been taken by the others.
    3. Consume. Manual acks; the channel's prefetch is the subscription's ``prefetch``.
       ``attempt`` comes from the quorum queue's ``x-delivery-count`` (one more than the
       failed deliveries before). Deliveries taken on a channel that has since closed are
       dropped unhandled: the broker has already put them back, and they come again on the
       restored channel.
    4. Settle. ``ack`` and ``nack`` go to the broker; an ack that cannot reach it (the
       channel dropped after the effect) is counted in ``acks_lost`` and the message is
       redelivered, to be acked as a replay. ``dead_letter(reason)`` publishes the message,
       confirmed, to ``{prefix}.dead`` with the reason in its headers, then acks it;
       ``nack(requeue=False)`` lets the broker dead-letter it (reason ``"rejected"``).
       :meth:`AmqpTransport.take_dead_letters` reads the dead-letter queue.
    5. Close. Closing a subscription cancels its consumer and closes its channel, so the
       broker requeues whatever it had not settled; closing the transport closes them all
       and the connection. Nothing keeps running after :meth:`AmqpTransport.close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aio_pika
import aio_pika.abc
import aio_pika.exceptions
import aiormq.exceptions

from protocol._transport import (
    EXCHANGES,
    AlreadySettled,
    DeadLetter,
    Delivery,
    ExchangeKind,
    PublishTimeout,
    QueueFull,
    TransportClosed,
    TransportError,
    Unroutable,
)

__all__ = ["AmqpStatistics", "AmqpTransport"]

logger = logging.getLogger(__name__)

QueueType = Literal["quorum", "classic"]

_REASON = "x-vsm-reason"
_ORIGIN = ("x-vsm-exchange", "x-vsm-route", "x-vsm-queue", "x-vsm-attempt")

# What a dropped connection or channel raises out of a publish, an ack or a declare.
_LOST = (
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    aiormq.exceptions.ChannelClosed,
    ConnectionError,
    RuntimeError,  # aiormq: "writer is None" / "Connection closed" on a half-closed socket
)


@dataclass(frozen=True, slots=True)
class AmqpStatistics:
    """Counters of an :class:`AmqpTransport` (this process's side of the broker).

    Attributes:
        published: Publishes confirmed by the broker.
        republished: Publishes sent again after the connection dropped before their confirm.
        returned: Publishes the broker returned as unroutable.
        refused: Publishes the broker nacked (a full queue).
        delivered: Deliveries handed to subscribers.
        acked: Deliveries acked.
        nacked: Deliveries nacked (requeued, or to the dead-letter queue with ``requeue=False``).
        dead_lettered: Deliveries sent to the dead-letter queue with a reason.
        acks_lost: Acks (and nacks) that could not reach the broker; it redelivers those.
        stale: Deliveries dropped unhandled because their channel had closed (redelivered).
        reconnects: Times the connection came back after dropping.
        unacked: Deliveries handed out and not yet settled now.
    """

    published: int
    republished: int
    returned: int
    refused: int
    delivered: int
    acked: int
    nacked: int
    dead_lettered: int
    acks_lost: int
    stale: int
    reconnects: int
    unacked: int


def _positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


class AmqpTransport:
    """A :class:`~protocol.Transport` over RabbitMQ (see the module rules).

    Build it with :meth:`connect`; close it with :meth:`close` (or ``async with``).
    """

    def __init__(
        self,
        connection: aio_pika.abc.AbstractRobustConnection,
        channel: aio_pika.abc.AbstractRobustChannel,
        exchanges: Mapping[str, aio_pika.abc.AbstractExchange],
        *,
        prefix: str,
        max_in_flight: int,
        publish_timeout: float,
        queue_arguments: dict[str, Any],
    ) -> None:
        self._max_queue: int = queue_arguments["x-max-length"]
        self._connection = connection
        self._channel = channel
        self._exchanges = exchanges
        self._prefix = prefix
        self._window = asyncio.Semaphore(max_in_flight)
        self._publish_timeout = publish_timeout
        self._queue_arguments = queue_arguments
        self._subscriptions: list[_AmqpSubscription] = []
        self._closed = False
        self._tags = 0
        self._counts = dict.fromkeys(
            (
                "published",
                "republished",
                "returned",
                "refused",
                "delivered",
                "acked",
                "nacked",
                "dead_lettered",
                "acks_lost",
                "stale",
                "reconnects",
            ),
            0,
        )
        connection.reconnect_callbacks.add(self._on_reconnect)

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        prefix: str = "vsm",
        max_in_flight: int = 256,
        publish_timeout: float = 30.0,
        max_queue: int = 100_000,
        queue_type: QueueType = "quorum",
        connect_timeout: float = 10.0,
        reconnect_interval: float = 0.5,
    ) -> AmqpTransport:
        """Connect to the broker at ``url`` and declare the exchanges and dead-letter queue.

        Args:
            url: ``amqp://user:password@host:port/vhost``.
            prefix: Prefix of every exchange and queue name (one per tree or federation).
            max_in_flight: Most publishes awaiting their confirm at once.
            publish_timeout: Seconds a publish may take, reconnections included.
            max_queue: Most ready messages per queue (the broker refuses more).
            queue_type: ``"quorum"`` (replicated, counts deliveries) or ``"classic"``.
            connect_timeout: Seconds to wait for the first connection.
            reconnect_interval: Seconds between reconnection attempts after a drop.

        Raises:
            ValueError: an argument is out of range (the bad value is shown).
            TransportError: the broker cannot be reached or refused the declarations.
        """
        if not prefix or any(c in prefix for c in "*# "):
            raise ValueError(
                f"prefix must be a non-empty name without '*', '#' or spaces: {prefix!r}"
            )
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int):
            raise ValueError(f"max_in_flight must be a positive int, got {max_in_flight!r}")
        _positive("max_in_flight", max_in_flight)
        _positive("publish_timeout", publish_timeout)
        _positive("max_queue", max_queue)
        _positive("connect_timeout", connect_timeout)
        _positive("reconnect_interval", reconnect_interval)
        if queue_type not in ("quorum", "classic"):
            raise ValueError(f"queue_type must be 'quorum' or 'classic', got {queue_type!r}")
        try:
            connection = await aio_pika.connect_robust(
                url, timeout=connect_timeout, reconnect_interval=reconnect_interval
            )
        except (*_LOST, OSError, TimeoutError) as exc:
            raise TransportError(f"cannot connect to the broker at {_safe(url)}: {exc!r}") from exc
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            exchanges = {
                name: await channel.declare_exchange(
                    f"{prefix}.{name}",
                    aio_pika.ExchangeType.FANOUT
                    if kind is ExchangeKind.FANOUT
                    else aio_pika.ExchangeType.TOPIC,
                    durable=True,
                )
                for name, kind in EXCHANGES.items()
            }
            dead = f"{prefix}.dead"
            dead_exchange = await channel.declare_exchange(
                dead, aio_pika.ExchangeType.FANOUT, durable=True
            )
            dead_queue = await channel.declare_queue(
                dead, durable=True, arguments={"x-queue-type": queue_type}
            )
            await dead_queue.bind(dead_exchange)
            exchanges = {**exchanges, "dead": dead_exchange}
        except BaseException:
            await connection.close()
            raise
        arguments: dict[str, Any] = {
            "x-queue-type": queue_type,
            "x-max-length": max_queue,
            "x-overflow": "reject-publish",
            "x-dead-letter-exchange": dead,
        }
        return cls(
            connection,
            channel,
            exchanges,
            prefix=prefix,
            max_in_flight=max_in_flight,
            publish_timeout=publish_timeout,
            queue_arguments=arguments,
        )

    async def __aenter__(self) -> AmqpTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ the Transport protocol

    async def publish(self, exchange: str, route: str, data: bytes) -> None:
        """Publish ``data`` persistent and mandatory; return once the broker confirmed it.

        Raises:
            ValueError: ``exchange`` is not one of :data:`~protocol.EXCHANGES`.
            Unroutable: no queue is bound for ``route``.
            QueueFull: a bound queue is full (the broker nacked the message).
            PublishTimeout: no confirm within ``publish_timeout``, reconnections included.
            TransportClosed: the transport is closed.
        """
        self._kind(exchange)
        self._check_open()
        target = self._exchanges[exchange]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._publish_timeout
        async with self._window:
            tries = 0
            while True:
                self._check_open()
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise PublishTimeout(exchange, route, self._publish_timeout)
                tries += 1
                if tries > 1:
                    self._counts["republished"] += 1
                message = aio_pika.Message(data, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
                try:
                    await target.publish(
                        message, routing_key=route, mandatory=True, timeout=remaining
                    )
                except aio_pika.exceptions.PublishError as exc:  # returned: before DeliveryError
                    self._counts["returned"] += 1
                    raise Unroutable(exchange, route) from exc
                except aio_pika.exceptions.DeliveryError as exc:
                    self._counts["refused"] += 1
                    raise QueueFull(f"<bound for {route!r}>", self._max_queue) from exc
                except TimeoutError as exc:
                    raise PublishTimeout(exchange, route, self._publish_timeout) from exc
                except _LOST as exc:
                    await self._await_channel(exc, deadline, exchange, route)
                    continue
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if task is None or task.cancelling():
                        raise  # our caller cancelled us
                    # aiormq cancels pending confirms when the connection closes
                    await self._await_channel(None, deadline, exchange, route)
                    continue
                self._counts["published"] += 1
                return

    async def subscribe(
        self, exchange: str, pattern: str, queue: str, *, prefetch: int
    ) -> _AmqpSubscription:
        """Declare ``{prefix}.{queue}``, bind it to ``exchange`` with ``pattern``, consume.

        Raises:
            ValueError: unknown ``exchange``, empty ``queue``, or ``prefetch`` below 1.
            TransportClosed: the transport is closed.
        """
        kind = self._kind(exchange)
        if not queue:
            raise ValueError("queue must be a non-empty name")
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
            raise ValueError(f"prefetch must be a positive int, got {prefetch!r}")
        self._check_open()
        channel = await self._connection.channel(publisher_confirms=False)
        try:
            await channel.set_qos(prefetch_count=prefetch)
            declared = await channel.declare_queue(
                f"{self._prefix}.{queue}", durable=True, arguments=self._queue_arguments
            )
            await declared.bind(
                f"{self._prefix}.{exchange}",
                routing_key="" if kind is ExchangeKind.FANOUT else pattern,
            )
            subscription = _AmqpSubscription(self, channel, declared, queue, prefetch)
            await subscription.start()
        except BaseException:
            await channel.close()
            raise
        self._subscriptions.append(subscription)
        return subscription

    async def close(self) -> None:
        """Close every subscription and the connection; later publishes raise TransportClosed."""
        if self._closed:
            return
        self._closed = True
        for subscription in list(self._subscriptions):
            await subscription.close()
        with contextlib.suppress(*_LOST):
            await self._connection.close()

    def statistics(self) -> AmqpStatistics:
        """The transport's counters now."""
        unacked = sum(len(s._unsettled) for s in self._subscriptions)
        return AmqpStatistics(**self._counts, unacked=unacked)

    # ------------------------------------------------------------ the dead-letter queue

    async def take_dead_letters(self, limit: int = 1_000) -> list[DeadLetter]:
        """Take (and remove) up to ``limit`` messages from the dead-letter queue, oldest first.

        Each comes with its reason: the one given to ``dead_letter``, or the broker's
        (``"rejected"`` for ``nack(requeue=False)``). Their deliveries are already settled.
        """
        self._check_open()
        channel = await self._connection.channel(publisher_confirms=False)
        taken: list[DeadLetter] = []
        try:
            queue = await channel.declare_queue(f"{self._prefix}.dead", passive=True)
            while len(taken) < limit:
                message = await queue.get(no_ack=False, fail=False, timeout=10)
                if message is None:
                    break
                taken.append(self._buried(message))
                await message.ack()
        finally:
            with contextlib.suppress(*_LOST):
                await channel.close()
        return taken

    def _buried(self, message: aio_pika.abc.AbstractIncomingMessage) -> DeadLetter:
        headers = message.headers or {}
        reason = headers.get(_REASON)
        exchange, route = headers.get(_ORIGIN[0]), headers.get(_ORIGIN[1])
        if reason is None:  # dead-lettered by the broker: the first x-death entry says why
            deaths = headers.get("x-death")
            death = deaths[0] if isinstance(deaths, list) and deaths else {}
            reason = death.get("reason", "unknown") if isinstance(death, dict) else "unknown"
            exchange = death.get("exchange") if isinstance(death, dict) else None
            keys = death.get("routing-keys") if isinstance(death, dict) else None
            route = keys[0] if isinstance(keys, list) and keys else message.routing_key
            if isinstance(exchange, str) and exchange.startswith(self._prefix + "."):
                exchange = exchange[len(self._prefix) + 1 :]
        attempt = headers.get(_ORIGIN[3])
        delivery = Delivery(
            id=self._next_tag(),
            route=str(route or ""),
            exchange=str(exchange or ""),
            data=bytes(message.body),
            redelivered=True,
            attempt=attempt if isinstance(attempt, int) else 1,
            _settler=_SETTLED,
        )
        return DeadLetter(delivery, str(reason))

    # ------------------------------------------------------------ internals

    async def _bury(self, delivery: Delivery, queue: str, reason: str) -> None:
        """Publish ``delivery`` to the dead-letter exchange with ``reason``, confirmed."""
        headers: dict[str, Any] = {
            _REASON: reason,
            _ORIGIN[0]: delivery.exchange,
            _ORIGIN[1]: delivery.route,
            _ORIGIN[2]: queue,
            _ORIGIN[3]: delivery.attempt,
        }
        message = aio_pika.Message(
            delivery.data, headers=headers, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._publish_timeout
        while True:
            try:
                await self._exchanges["dead"].publish(
                    message, routing_key="", mandatory=True, timeout=self._publish_timeout
                )
                return
            except _LOST as exc:
                await self._await_channel(exc, deadline, "dead", delivery.route)

    async def _await_channel(
        self, exc: BaseException | None, deadline: float, exchange: str, route: str
    ) -> None:
        """Wait for the publishing channel to be restored, or raise PublishTimeout."""
        logger.info("connection lost before a confirm (%r); waiting to republish", exc)
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise PublishTimeout(exchange, route, self._publish_timeout) from exc
        try:
            await asyncio.wait_for(self._channel.ready(), remaining)
        except TimeoutError as timeout:
            raise PublishTimeout(exchange, route, self._publish_timeout) from timeout

    def _on_reconnect(self, *_: object) -> None:
        self._counts["reconnects"] += 1

    def _kind(self, exchange: str) -> ExchangeKind:
        try:
            return EXCHANGES[exchange]
        except KeyError:
            known = ", ".join(sorted(EXCHANGES))
            raise ValueError(f"unknown exchange {exchange!r}; known: {known}") from None

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosed("the AMQP transport is closed")

    def _next_tag(self) -> int:
        self._tags += 1
        return self._tags

    def _count(self, name: str) -> None:
        self._counts[name] += 1


def _safe(url: str) -> str:
    """``url`` without its password."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        rest = f"{user}:***@{host}"
    return f"{scheme}{sep}{rest}"


class _Settled:
    """The settler of a delivery that is already settled (a dead letter read back)."""

    async def ack(self, delivery: Delivery) -> None:
        raise AlreadySettled(delivery.id)

    async def nack(self, delivery: Delivery, requeue: bool) -> None:
        raise AlreadySettled(delivery.id)

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        raise AlreadySettled(delivery.id)


_SETTLED = _Settled()
_END = object()


class _AmqpSubscription:
    """Deliveries from one queue (module rules 3 to 5)."""

    def __init__(
        self,
        transport: AmqpTransport,
        channel: aio_pika.abc.AbstractRobustChannel,
        queue: aio_pika.abc.AbstractRobustQueue,
        name: str,
        prefetch: int,
    ) -> None:
        self._transport = transport
        self._channel = channel
        self._queue = queue
        self._name = name
        self.prefetch = prefetch
        self._buffer: asyncio.Queue[Any] = asyncio.Queue()
        self._unsettled: dict[int, aio_pika.abc.AbstractIncomingMessage] = {}
        self._tag: str | None = None
        self._closed = False

    async def start(self) -> None:
        self._tag = await self._queue.consume(self._buffer.put, no_ack=False)

    def __aiter__(self) -> _AmqpSubscription:
        return self

    async def __anext__(self) -> Delivery:
        transport = self._transport
        while True:
            if self._closed:
                raise StopAsyncIteration
            message = await self._buffer.get()
            if message is _END:
                raise StopAsyncIteration
            if _stale(message):
                transport._count("stale")  # the broker put it back already
                continue
            delivery = Delivery(
                id=transport._next_tag(),
                route=message.routing_key or "",
                exchange=_logical(message.exchange or "", transport._prefix),
                data=bytes(message.body),
                redelivered=bool(message.redelivered),
                attempt=_attempt(message),
                _settler=self,
            )
            self._unsettled[delivery.id] = message
            transport._count("delivered")
            return delivery

    async def close(self) -> None:
        """Cancel the consumer and close the channel: the broker requeues the unsettled."""
        if self._closed:
            return
        self._closed = True
        self._unsettled.clear()
        self._buffer.put_nowait(_END)
        with contextlib.suppress(*_LOST, asyncio.TimeoutError):
            if self._tag is not None and not self._channel.is_closed:
                await self._queue.cancel(self._tag, timeout=5)
        with contextlib.suppress(*_LOST):
            await self._channel.close()
        with contextlib.suppress(ValueError):
            self._transport._subscriptions.remove(self)

    # ------------------------------------------------------------ the Settler protocol

    def _take(self, delivery: Delivery) -> aio_pika.abc.AbstractIncomingMessage:
        message = self._unsettled.pop(delivery.id, None)
        if message is None:
            raise AlreadySettled(delivery.id)
        return message

    async def ack(self, delivery: Delivery) -> None:
        message = self._take(delivery)
        try:
            await message.ack()
        except _LOST:
            self._transport._count("acks_lost")
            return
        self._transport._count("acked")

    async def nack(self, delivery: Delivery, requeue: bool) -> None:
        message = self._take(delivery)
        try:
            await message.nack(requeue=requeue)
        except _LOST:
            self._transport._count("acks_lost")
            return
        self._transport._count("nacked")

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        message = self._take(delivery)
        await self._transport._bury(delivery, self._name, reason)
        self._transport._count("dead_lettered")
        try:
            await message.ack()
        except _LOST:
            self._transport._count("acks_lost")  # redelivered, and dead-lettered again


def _stale(message: aio_pika.abc.AbstractIncomingMessage) -> bool:
    """Whether the channel ``message`` came on has closed (aio-pika raises on ``.channel``)."""
    try:
        return bool(message.channel.is_closed)
    except aiormq.exceptions.ChannelInvalidStateError:
        return True


def _logical(exchange: str, prefix: str) -> str:
    head = prefix + "."
    return exchange[len(head) :] if exchange.startswith(head) else exchange


def _attempt(message: aio_pika.abc.AbstractIncomingMessage) -> int:
    count = (message.headers or {}).get("x-delivery-count")
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        return count + 1
    return 2 if message.redelivered else 1
