"""The broker the AMQP transport will stand on: reachable, confirming, with quorum queues.

These run against the real RabbitMQ (the ``amqp_url`` fixture skips without one on a laptop
and fails under ``VSM_REQUIRE_AMQP=1``, as in CI).
"""

from __future__ import annotations

import asyncio
import uuid

import aio_pika


def test_persistent_message_round_trips_with_publisher_confirms(amqp_url: str) -> None:
    """A persistent message published with confirms on a quorum queue comes back, once."""

    async def scenario() -> list[bytes]:
        connection = await aio_pika.connect_robust(amqp_url, timeout=10)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            name = f"vsm-test-{uuid.uuid4().hex}"
            queue = await channel.declare_queue(
                name, durable=True, arguments={"x-queue-type": "quorum"}
            )
            try:
                message = aio_pika.Message(
                    b"sealed-envelope", delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                )
                await channel.default_exchange.publish(message, routing_key=name, timeout=10)
                got: list[bytes] = []
                incoming = await queue.get(timeout=10, fail=True)
                assert incoming is not None
                got.append(incoming.body)
                await incoming.ack()
                assert await queue.get(timeout=5, fail=False) is None
                return got
            finally:
                await queue.delete(if_unused=False, if_empty=False)

    assert asyncio.run(scenario()) == [b"sealed-envelope"]


def test_unroutable_mandatory_publish_is_returned(amqp_url: str) -> None:
    """A mandatory publish to a route no queue is bound to is refused, not silently dropped."""

    async def scenario() -> bool:
        connection = await aio_pika.connect_robust(amqp_url, timeout=10)
        async with connection:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            exchange = await channel.declare_exchange(
                f"vsm-test-{uuid.uuid4().hex}", aio_pika.ExchangeType.TOPIC, auto_delete=True
            )
            try:
                await exchange.publish(
                    aio_pika.Message(b"x"), routing_key="root.nowhere", mandatory=True, timeout=10
                )
            except aio_pika.exceptions.DeliveryError:
                return True
            return False

    assert asyncio.run(scenario())
