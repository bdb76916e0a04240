"""``AmqpTransport`` against the real RabbitMQ: confirms, returns, dead letters, reconnection.

Each test uses its own exchange and queue prefix and deletes what it declared. The chaos tests
drive the broker with ``rabbitmqctl`` (``close_all_connections``, ``stop_app``/``start_app``);
they skip without it on a laptop and fail under ``VSM_REQUIRE_AMQP=1``, as in CI.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import pytest

from protocol import (
    EXCHANGES,
    AlgedonicBody,
    AlreadySettled,
    AmqpTransport,
    Envelope,
    Identity,
    KeyStore,
    QueueFull,
    ReplayGuard,
    Sender,
    TransportClosed,
    Unroutable,
    consume,
    seal,
)
from vsm.crdt import Stamp

ED = Identity.generate("ed-1")
STRANGER = Identity.generate("stranger")
KEYS = KeyStore()
KEYS.add(ED.key_id, ED.public_key_bytes())


def envelope(now: float | None = None, ttl: float = 600.0, pad: int = 0) -> Envelope:
    return Envelope.new(
        sender=Sender(path="root/a", cluster="c1", key_id=ED.key_id),
        recipient="root",
        body=AlgedonicBody(source="root/a" + "x" * pad, intensity=-0.5),
        hlc=Stamp(1, 0, "r"),
        now=time.time() if now is None else now,
        ttl=ttl,
    )


async def delete_everything(url: str, prefix: str, queues: list[str]) -> None:
    """Delete the test's queues and exchanges (durable: they would outlive the test)."""
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        for queue in [*queues, "dead"]:
            await channel.queue_delete(f"{prefix}.{queue}")
        for exchange in [*EXCHANGES, "dead"]:
            await channel.exchange_delete(f"{prefix}.{exchange}")


def run_with(
    url: str, queues: list[str], scenario: Callable[[str], Awaitable[Any]], timeout: float = 120
) -> Any:
    """Run ``scenario(prefix)`` with a fresh prefix; delete its queues afterwards."""
    prefix = f"vsm-test-{uuid.uuid4().hex[:12]}"

    async def main() -> Any:
        try:
            return await asyncio.wait_for(scenario(prefix), timeout)
        finally:
            await delete_everything(url, prefix, queues)

    return asyncio.run(main())


def rabbitmqctl() -> str:
    """The path of ``rabbitmqctl``; skips (fails in CI) when it is missing."""
    found = shutil.which("rabbitmqctl")
    if found is None:
        message = "rabbitmqctl is not on PATH; the broker chaos tests need it"
        if os.environ.get("VSM_REQUIRE_AMQP") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


async def ctl(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        rabbitmqctl(),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, f"rabbitmqctl {' '.join(args)} failed: {out.decode()}"


async def collect(subscription: AsyncIterator[Any], count: int) -> list[Any]:
    """The next ``count`` deliveries, unsettled (``count`` must not exceed the prefetch)."""
    got = []
    async for delivery in subscription:
        got.append(delivery)
        if len(got) == count:
            break
    return got


async def stop_when(subscription: Any, done: Callable[[], bool]) -> None:
    """Close ``subscription`` once ``done()`` holds (polled), ending its consumer."""
    while not done():
        await asyncio.sleep(0.02)
    await subscription.close()


# ---------------------------------------------------------------- publish and consume


def test_signed_envelopes_round_trip_through_consume(amqp_url: str) -> None:
    """Envelopes published with confirms are handled once each, and the deliveries acked."""

    async def scenario(prefix: str) -> None:
        async with await AmqpTransport.connect(amqp_url, prefix=prefix) as transport:
            sub = await transport.subscribe("intents", "root.#", "work", prefetch=16)
            sent = [envelope() for _ in range(50)]
            await asyncio.gather(
                *(transport.publish("intents", "root.a", seal(e, ED)) for e in sent)
            )
            handled: list[str] = []

            async def handler(env: Envelope) -> None:
                handled.append(env.id)

            stopper = asyncio.create_task(
                stop_when(sub, lambda: transport.statistics().acked == len(sent))
            )
            stats = await consume(sub, handler, KEYS, ReplayGuard(), time.time)
            await stopper
            assert sorted(handled) == sorted(e.id for e in sent)
            assert stats.handled == len(sent)
            counts = transport.statistics()
            assert counts.published == len(sent)
            assert counts.acked == len(sent)
            assert counts.unacked == 0

    run_with(amqp_url, ["work"], scenario)


def test_routes_follow_topic_patterns_and_announcements_fan_out(amqp_url: str) -> None:
    """Topic routes pick their queue; a fanout publish reaches every bound queue."""

    async def scenario(prefix: str) -> None:
        async with await AmqpTransport.connect(amqp_url, prefix=prefix) as transport:
            a = await transport.subscribe("intents", "root.a.#", "a", prefetch=4)
            b = await transport.subscribe("intents", "root.b", "b", prefetch=4)
            one = await transport.subscribe("announcements", "", "ann-1", prefetch=4)
            two = await transport.subscribe("announcements", "", "ann-2", prefetch=4)
            await transport.publish("intents", "root.a.x", b"to-a")
            await transport.publish("intents", "root.b", b"to-b")
            await transport.publish("announcements", "anything", b"to-all")
            with pytest.raises(Unroutable):
                await transport.publish("intents", "root.c", b"to-nobody")
            for sub, expected in ((a, b"to-a"), (b, b"to-b"), (one, b"to-all"), (two, b"to-all")):
                (delivery,) = await collect(sub, 1)
                assert delivery.data == expected
                await delivery.ack()
                with pytest.raises(AlreadySettled):
                    await delivery.ack()
            assert transport.statistics().returned == 1

    run_with(amqp_url, ["a", "b", "ann-1", "ann-2"], scenario)


def test_bad_arguments_are_refused_with_the_value(amqp_url: str) -> None:
    async def scenario(prefix: str) -> None:
        with pytest.raises(ValueError, match="max_in_flight"):
            await AmqpTransport.connect(amqp_url, prefix=prefix, max_in_flight=0)
        with pytest.raises(ValueError, match="queue_type"):
            await AmqpTransport.connect(amqp_url, prefix=prefix, queue_type="lazy")  # type: ignore[arg-type]
        transport = await AmqpTransport.connect(amqp_url, prefix=prefix)
        with pytest.raises(ValueError, match="unknown exchange 'nope'"):
            await transport.publish("nope", "root", b"x")
        with pytest.raises(ValueError, match="prefetch"):
            await transport.subscribe("intents", "#", "q", prefetch=0)
        await transport.close()
        with pytest.raises(TransportClosed):
            await transport.publish("intents", "root", b"x")

    run_with(amqp_url, [], scenario)


def test_a_full_queue_refuses_the_publish(amqp_url: str) -> None:
    """Past ``max_queue`` ready messages the broker nacks: QueueFull, and nothing is lost.

    A quorum queue refuses once it is over its limit, so it takes ``max_queue + 1``.
    """

    async def scenario(prefix: str) -> None:
        async with await AmqpTransport.connect(amqp_url, prefix=prefix, max_queue=3) as transport:
            sub = await transport.subscribe("intents", "#", "small", prefetch=1)
            await sub.close()  # the queue stays, with nobody taking from it
            taken = []
            refusal: QueueFull | None = None
            for i in range(6):
                try:
                    await transport.publish("intents", "root", b"%d" % i)
                except QueueFull as exc:
                    refusal = exc
                    break
                taken.append(b"%d" % i)
            assert refusal is not None
            assert refusal.limit == 3
            assert len(taken) in (3, 4)
            assert transport.statistics().refused == 1
            sub = await transport.subscribe("intents", "#", "small", prefetch=10)
            got = await collect(sub, len(taken))
            assert [d.data for d in got] == taken

    run_with(amqp_url, ["small"], scenario)


def test_closing_a_subscription_returns_its_unsettled_deliveries(amqp_url: str) -> None:
    async def scenario(prefix: str) -> None:
        async with await AmqpTransport.connect(amqp_url, prefix=prefix) as transport:
            first = await transport.subscribe("intents", "#", "work", prefetch=2)
            await transport.publish("intents", "root", b"m")
            (taken,) = await collect(first, 1)
            assert (taken.redelivered, taken.attempt) == (False, 1)
            await first.close()
            with pytest.raises(AlreadySettled):
                await taken.ack()
            second = await transport.subscribe("intents", "#", "work", prefetch=2)
            (again,) = await collect(second, 1)
            assert again.data == b"m"
            assert again.redelivered
            assert again.attempt == 2
            await again.ack()

    run_with(amqp_url, ["work"], scenario)


# ---------------------------------------------------------------- dead letters


def test_poison_messages_end_in_the_dead_letter_queue_with_their_reason(amqp_url: str) -> None:
    """Bad bytes are dead-lettered with their reason; the consumer goes on.

    Garbage, forgeries, unknown keys, expired and oversized envelopes each end in the
    dead-letter queue with their reason; a replay of a handled envelope is acked as handled.
    """

    async def scenario(prefix: str) -> None:
        async with await AmqpTransport.connect(amqp_url, prefix=prefix) as transport:
            sub = await transport.subscribe("intents", "#", "work", prefetch=8)
            good = envelope()
            good_bytes = seal(good, ED)
            forged = bytearray(seal(envelope(), ED))
            forged[-1] ^= 0x01
            stranger = Envelope.new(
                sender=Sender(path="root/a", cluster="c1", key_id=STRANGER.key_id),
                recipient="root",
                body=AlgedonicBody(source="root/a", intensity=0.1),
                hlc=Stamp(1, 0, "r"),
                now=time.time(),
                ttl=60,
            )
            poison = {
                b"\x00garbage\xff": "undecodable",
                bytes(forged): "bad-signature",
                seal(stranger, STRANGER): "unknown-key",
                seal(envelope(now=time.time() - 100, ttl=1), ED): "expired",
                seal(envelope(pad=900), ED): "too-large",
            }
            for data in [good_bytes, *poison, good_bytes]:
                await transport.publish("intents", "root", data)
            handled: list[str] = []

            async def handler(env: Envelope) -> None:
                handled.append(env.id)

            def drained() -> bool:
                counts = transport.statistics()
                return counts.acked + counts.dead_lettered == 7

            stopper = asyncio.create_task(stop_when(sub, drained))
            stats = await consume(sub, handler, KEYS, ReplayGuard(), time.time, max_size=1_000)
            await stopper
            assert handled == [good.id]
            assert (stats.handled, stats.replayed, stats.dead_lettered) == (1, 1, 5)
            dead = await transport.take_dead_letters()
            assert sorted((d.delivery.data, d.reason) for d in dead) == sorted(poison.items())
            assert {(d.delivery.exchange, d.delivery.route) for d in dead} == {("intents", "root")}
            assert await transport.take_dead_letters() == []

    run_with(amqp_url, ["work"], scenario)


def test_failing_handlers_are_retried_then_dead_lettered_and_rejects_go_there_too(
    amqp_url: str,
) -> None:
    async def scenario(prefix: str) -> None:
        async with await AmqpTransport.connect(amqp_url, prefix=prefix) as transport:
            sub = await transport.subscribe("intents", "#", "work", prefetch=1)
            await transport.publish("intents", "root", seal(envelope(), ED))
            calls: list[int] = []

            async def handler(env: Envelope) -> None:
                calls.append(1)
                raise RuntimeError("the handler always fails")

            stopper = asyncio.create_task(
                stop_when(sub, lambda: transport.statistics().dead_lettered == 1)
            )
            stats = await consume(sub, handler, KEYS, ReplayGuard(), time.time, max_attempts=3)
            await stopper
            assert (stats.failed, stats.dead_lettered) == (3, 1)
            (dead,) = await transport.take_dead_letters()
            assert dead.reason == "handler-failed"
            assert dead.delivery.attempt == 3
            # nack(requeue=False): the broker dead-letters it, reason "rejected"
            again = await transport.subscribe("intents", "#", "work", prefetch=1)
            await transport.publish("intents", "root", b"refuse me")
            (delivery,) = await collect(again, 1)
            await delivery.nack(requeue=False)
            for _ in range(100):
                dead_letters = await transport.take_dead_letters()
                if dead_letters:
                    break
                await asyncio.sleep(0.05)
            assert [(d.delivery.data, d.reason) for d in dead_letters] == [
                (b"refuse me", "rejected")
            ]

    run_with(amqp_url, ["work"], scenario)


# ---------------------------------------------------------------- the broker misbehaves

TOTAL = 10_000


def test_ten_thousand_envelopes_survive_two_forced_disconnects_exactly_once(
    amqp_url: str,
) -> None:
    """Every connection is force-closed twice mid-stream; all 10,000 arrive, each handled once."""
    rabbitmqctl()
    sent = [seal(envelope(), ED) for _ in range(TOTAL)]

    async def scenario(prefix: str) -> tuple[Counter[str], Any, Any]:
        publisher = await AmqpTransport.connect(amqp_url, prefix=prefix, publish_timeout=90)
        receiver = await AmqpTransport.connect(amqp_url, prefix=prefix)
        sub = await receiver.subscribe("intents", "root.#", "work", prefetch=100)
        seen: Counter[str] = Counter()
        everything = asyncio.Event()

        async def handler(env: Envelope) -> None:
            seen[env.id] += 1
            if len(seen) == TOTAL:
                everything.set()

        consumer = asyncio.create_task(consume(sub, handler, KEYS, ReplayGuard(), time.time))
        chaos: list[asyncio.Task[None]] = []
        for start in range(0, TOTAL, 500):
            chunk = sent[start : start + 500]
            await asyncio.gather(*(publisher.publish("intents", "root.a", d) for d in chunk))
            if start in (2_000, 6_000):  # force-close while the rest is still being published
                chaos.append(asyncio.create_task(ctl("close_all_connections", "vsm chaos test")))
        await asyncio.gather(*chaos)
        await asyncio.wait_for(everything.wait(), 90)
        await asyncio.sleep(1.0)  # let any late duplicate arrive, to be counted
        await sub.close()
        stats = await consumer
        counts = (publisher.statistics(), receiver.statistics(), stats)
        await publisher.close()
        await receiver.close()
        return seen, counts, stats

    seen, (published, received, _), stats = run_with(amqp_url, ["work"], scenario, timeout=240)
    assert len(seen) == TOTAL
    assert set(seen.values()) == {1}, "an envelope was handled more than once"
    assert stats.handled == TOTAL
    assert published.reconnects >= 2 or received.reconnects >= 2, "the chaos did not happen"


def test_persistent_messages_survive_a_broker_restart(amqp_url: str) -> None:
    """Published and confirmed before ``stop_app``; all there after ``start_app``."""
    rabbitmqctl()

    async def scenario(prefix: str) -> list[bytes]:
        async with await AmqpTransport.connect(amqp_url, prefix=prefix, publish_timeout=60) as t:
            sub = await t.subscribe("intents", "#", "durable", prefetch=10)
            await sub.close()
            messages = [b"persistent-%d" % i for i in range(20)]
            for data in messages:
                await t.publish("intents", "root", data)
            await ctl("stop_app")
            try:
                await asyncio.sleep(1)
            finally:
                await ctl("start_app")
            await ctl("await_startup")
            sub = await asyncio.wait_for(
                _retry(lambda: t.subscribe("intents", "#", "durable", prefetch=32)), 60
            )
            got = await collect(sub, len(messages))
            for delivery in got:
                await delivery.ack()
            return sorted(d.data for d in got)

    got = run_with(amqp_url, ["durable"], scenario, timeout=180)
    assert got == sorted(b"persistent-%d" % i for i in range(20))


async def _retry(make: Callable[[], Awaitable[Any]]) -> Any:
    """Call ``make`` until the robust connection is back and it succeeds."""
    while True:
        try:
            return await make()
        except Exception:  # the connection is still coming back
            await asyncio.sleep(0.5)
