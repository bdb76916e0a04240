"""The transport seam: ``MemoryTransport`` routing, settling, bounds, and the receive rule."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    AlgedonicBody,
    AlreadySettled,
    Envelope,
    HmacIdentity,
    KeyStore,
    MemoryTransport,
    PublishTimeout,
    QueueFull,
    ReplayGuard,
    Sender,
    TransportStatistics,
    Unroutable,
    consume,
    route_for,
    seal,
    topic_matches,
)
from vsm.crdt import Stamp

HM = HmacIdentity.generate("hm-1")
STRANGER = HmacIdentity.generate("stranger")
KEYS = KeyStore()
KEYS.add_hmac(HM.key_id, HM.secret)
NOW = 1_000.0


def run(coro: Awaitable[Any]) -> Any:
    """Run ``coro`` on a fresh event loop."""

    async def main() -> Any:
        return await coro

    return asyncio.run(main())


def sealed(identity: Any = HM, now: float = NOW, ttl: float = 60.0) -> tuple[str, bytes]:
    """A fresh signed envelope: its id and its bytes."""
    envelope = Envelope.new(
        sender=Sender(path="root/a", cluster="c1", key_id=identity.key_id),
        recipient="root",
        body=AlgedonicBody(source="root/a", intensity=-0.5),
        hlc=Stamp(1, 0, "r"),
        now=now,
        ttl=ttl,
    )
    return envelope.id, seal(envelope, identity)


def check_invariants(stats: TransportStatistics) -> None:
    """The counters add up (no publish under way)."""
    assert stats.routed + stats.redelivered == stats.delivered + stats.queued
    assert stats.delivered == (
        stats.acked + stats.nacked + stats.dead_lettered + stats.recovered + stats.unacked
    )


@pytest.mark.parametrize(
    ("pattern", "route", "expected"),
    [
        ("root.a", "root.a", True),
        ("root.a", "root.b", False),
        ("root.*", "root.a", True),
        ("root.*", "root", False),
        ("root.*", "root.a.b", False),
        ("*.a", "root.a", True),
        ("root.#", "root", True),
        ("root.#", "root.a.b.c", True),
        ("root.#", "other.a", False),
        ("#", "root.a", True),
        ("#", "", True),
        ("root.#.c", "root.c", True),
        ("root.#.c", "root.a.b.c", True),
        ("root.#.c", "root.a.b", False),
        ("#.c", "c", True),
        ("*.#.*", "a", False),
        ("*.#.*", "a.b", True),
        ("root.*.#", "root", False),
    ],
)
def test_topic_matching_follows_amqp(pattern: str, route: str, expected: bool) -> None:
    """``*`` matches one word and ``#`` zero or more, as AMQP topic exchanges do."""
    assert topic_matches(pattern, route) is expected


def test_route_for_turns_slashes_into_dots_and_refuses_bad_paths() -> None:
    """A path becomes a route word by word; empty, dotted or wildcard segments are refused."""
    assert route_for("root/a/b") == "root.a.b"
    for bad in ("root//a", "root/a.b", "root/*", "#", ""):
        with pytest.raises(ValueError, match="cannot be a route"):
            route_for(bad)


async def take(subscription: Any, n: int) -> list[Any]:
    """The next ``n`` deliveries."""
    return [await anext(subscription) for _ in range(n)]


def test_fanout_reaches_every_bound_queue_in_fifo_order() -> None:
    """A fanout publish lands in each bound queue, and each queue is first in, first out."""

    async def main() -> None:
        transport = MemoryTransport()
        one = await transport.subscribe("announcements", "#", "q1", prefetch=10)
        two = await transport.subscribe("announcements", "ignored", "q2", prefetch=10)
        for i in range(5):
            await transport.publish("announcements", "any", bytes([i]))
        for sub in (one, two):
            assert [d.data for d in await take(sub, 5)] == [bytes([i]) for i in range(5)]
        stats = transport.statistics()
        assert (stats.published, stats.routed, stats.delivered) == (5, 10, 10)
        check_invariants(stats)
        await transport.close()

    run(main())


def test_topic_publish_goes_only_to_matching_queues_and_unroutable_raises() -> None:
    """Only queues whose pattern matches get the message; no match at all is ``Unroutable``."""

    async def main() -> None:
        transport = MemoryTransport()
        sub = await transport.subscribe("intents", "root.a.#", "qa", prefetch=5)
        await transport.subscribe("intents", "root.b", "qb", prefetch=5)
        await transport.publish("intents", route_for("root/a/x"), b"1")
        assert transport.queue_depth_nowait("qa") == 1
        assert transport.queue_depth_nowait("qb") == 0
        with pytest.raises(Unroutable, match=r"root\.c"):
            await transport.publish("intents", "root.c", b"2")
        with pytest.raises(ValueError, match="unknown exchange"):
            await transport.publish("nowhere", "root", b"3")
        assert (await anext(sub)).route == "root.a.x"
        await transport.close()

    run(main())


def test_prefetch_bound_is_honoured() -> None:
    """A subscription never holds more than ``prefetch`` unsettled deliveries; it waits."""

    async def main() -> None:
        transport = MemoryTransport()
        sub = await transport.subscribe("intents", "#", "q", prefetch=2)
        for i in range(4):
            await transport.publish("intents", "root", bytes([i]))
        first, _ = await take(sub, 2)
        waiting = asyncio.ensure_future(anext(sub))
        await asyncio.sleep(0)
        assert not waiting.done()
        assert transport.statistics().unacked == 2
        await first.ack()
        third = await waiting
        assert third.data == b"\x02"
        assert transport.statistics().unacked == 2
        await sub.close()
        check_invariants(transport.statistics())
        await transport.close()

    run(main())


def test_nack_requeue_redelivers_marked_and_double_settle_raises() -> None:
    """``nack(requeue=True)`` puts the message back at the head, redelivered, attempt + 1."""

    async def main() -> None:
        transport = MemoryTransport()
        sub = await transport.subscribe("intents", "#", "q", prefetch=1)
        await transport.publish("intents", "root", b"first")
        await transport.publish("intents", "root", b"second")
        delivery = await anext(sub)
        assert (delivery.redelivered, delivery.attempt) == (False, 1)
        await delivery.nack(requeue=True)
        with pytest.raises(AlreadySettled, match="already settled"):
            await delivery.ack()
        again = await anext(sub)
        assert (again.data, again.redelivered, again.attempt) == (b"first", True, 2)
        assert again.id != delivery.id
        await again.ack()
        with pytest.raises(AlreadySettled):
            await again.ack()
        check_invariants(transport.statistics())
        await transport.close()

    run(main())


def test_closing_a_subscription_requeues_unacked_in_order() -> None:
    """Unsettled deliveries return to the queue when their subscription closes."""

    async def main() -> None:
        transport = MemoryTransport()
        sub = await transport.subscribe("intents", "#", "q", prefetch=3)
        for i in range(3):
            await transport.publish("intents", "root", bytes([i]))
        held = await take(sub, 2)
        await sub.close()
        with pytest.raises(StopAsyncIteration):
            await anext(sub)
        with pytest.raises(AlreadySettled):
            await held[0].ack()
        later = await transport.subscribe("intents", "#", "q", prefetch=3)
        got = await take(later, 3)
        assert [d.data for d in got] == [b"\x00", b"\x01", b"\x02"]
        assert [d.redelivered for d in got] == [True, True, False]
        stats = transport.statistics()
        assert (stats.recovered, stats.redelivered) == (2, 2)
        check_invariants(stats)
        await transport.close()

    run(main())


def test_full_queue_raises_rather_than_drops() -> None:
    """A full queue refuses the publish (``QueueFull``, or ``PublishTimeout`` when waiting)."""

    async def main() -> None:
        transport = MemoryTransport(max_queue=2)
        await transport.subscribe("announcements", "#", "q1", prefetch=1)
        await transport.subscribe("announcements", "#", "q2", prefetch=1)
        await transport.publish("announcements", "r", b"1")
        await transport.publish("announcements", "r", b"2")
        with pytest.raises(QueueFull, match="is full"):
            await transport.publish("announcements", "r", b"3")
        assert transport.statistics().published == 2
        await transport.close()

        waiting = MemoryTransport(max_queue=1, publish_timeout=0)
        await waiting.subscribe("intents", "#", "q", prefetch=1)
        await waiting.publish("intents", "r", b"1")
        with pytest.raises(PublishTimeout):
            await waiting.publish("intents", "r", b"2")
        await waiting.close()

    run(main())


async def consume_all(
    transport: MemoryTransport,
    payloads: list[bytes],
    handler: Callable[[Envelope], Awaitable[None]],
    guard: ReplayGuard,
    prefetch: int = 4,
) -> Any:
    """Publish ``payloads``, consume until idle, close, and return the consume statistics."""
    sub = await transport.subscribe("intents", "#", "q", prefetch=prefetch)
    task = asyncio.create_task(consume(sub, handler, KEYS, guard, lambda: NOW, max_attempts=5))
    for data in payloads:
        await transport.publish("intents", "root.a", data)
        await asyncio.sleep(0)
    await transport.wait_idle()
    await sub.close()
    stats = await task
    await transport.close()
    return stats


def test_consume_dead_letters_garbage_forged_and_expired_bytes_with_reasons() -> None:
    """Bytes that fail ``unseal`` are dead-lettered with the error's reason, never handled."""
    _, good = sealed()
    forged = good[:-1] + bytes([good[-1] ^ 1])
    _, unknown = sealed(STRANGER)
    _, expired = sealed(now=0.0, ttl=1.0)
    handled: list[str] = []

    async def handler(envelope: Envelope) -> None:
        handled.append(envelope.id)

    async def main() -> tuple[Any, MemoryTransport]:
        transport = MemoryTransport()
        stats = await consume_all(
            transport, [b"garbage", forged, unknown, expired, good], handler, ReplayGuard()
        )
        return stats, transport

    stats, transport = run(main())
    reasons = [letter.reason for letter in transport.dead_letters()]
    assert reasons == ["undecodable", "bad-signature", "unknown-key", "expired"]
    assert (stats.handled, stats.dead_lettered) == (1, 4)
    assert len(handled) == 1
    check_invariants(transport.statistics())


def test_handler_crash_redelivers_and_each_envelope_is_handled_once() -> None:
    """A handler that raises gets the delivery again; overall each envelope's effect is once."""
    messages = [sealed() for _ in range(4)]
    failures = Counter({messages[1][0]: 2, messages[3][0]: 1})
    handled: Counter[str] = Counter()

    async def handler(envelope: Envelope) -> None:
        if failures[envelope.id] > 0:
            failures[envelope.id] -= 1
            raise RuntimeError("boom")
        handled[envelope.id] += 1

    async def main() -> tuple[Any, MemoryTransport]:
        transport = MemoryTransport()
        stats = await consume_all(transport, [d for _, d in messages], handler, ReplayGuard())
        return stats, transport

    stats, transport = run(main())
    assert handled == Counter(i for i, _ in messages)
    assert (stats.handled, stats.failed) == (4, 3)
    assert transport.statistics().nacked == 3
    check_invariants(transport.statistics())


def test_replayed_envelope_is_acked_not_handled_again() -> None:
    """A duplicate of an envelope already handled is acked and counted, not dead-lettered."""
    envelope_id, data = sealed()
    handled: list[str] = []

    async def handler(envelope: Envelope) -> None:
        handled.append(envelope.id)

    async def main() -> tuple[Any, MemoryTransport]:
        transport = MemoryTransport()
        stats = await consume_all(transport, [data, data, data], handler, ReplayGuard())
        return stats, transport

    stats, transport = run(main())
    assert handled == [envelope_id]
    assert (stats.handled, stats.replayed, stats.dead_lettered) == (1, 2, 0)
    assert transport.dead_letters() == ()
    assert transport.statistics().acked == 3


def test_handler_that_always_fails_is_dead_lettered_after_max_attempts() -> None:
    """Retries are bounded: after ``max_attempts`` failures the delivery is dead-lettered."""
    _, data = sealed()

    async def handler(envelope: Envelope) -> None:
        raise RuntimeError("always")

    async def main() -> tuple[Any, MemoryTransport]:
        transport = MemoryTransport()
        stats = await consume_all(transport, [data], handler, ReplayGuard())
        return stats, transport

    stats, transport = run(main())
    assert (stats.failed, stats.dead_lettered) == (5, 1)
    assert [(d.reason, d.delivery.attempt) for d in transport.dead_letters()] == [
        ("handler-failed", 5)
    ]


POOL = [sealed() for _ in range(8)]
"""Sealed once: sealing inside each example would dominate the run time."""


@settings(max_examples=60, deadline=None)
@given(
    picks=st.lists(st.integers(0, len(POOL) - 1), min_size=1, max_size=12),
    failures=st.lists(st.integers(0, 3), min_size=len(POOL), max_size=len(POOL)),
    prefetch=st.integers(1, 4),
)
def test_every_published_envelope_is_handled_exactly_once(
    picks: list[int], failures: list[int], prefetch: int
) -> None:
    """Against a multiset model: duplicates and handler failures leave each effect once."""
    left = {POOL[i][0]: failures[i] for i in range(len(POOL))}
    handled: Counter[str] = Counter()

    async def handler(envelope: Envelope) -> None:
        if left[envelope.id] > 0:
            left[envelope.id] -= 1
            raise RuntimeError("transient")
        handled[envelope.id] += 1

    async def main() -> tuple[Any, MemoryTransport]:
        transport = MemoryTransport()
        payloads = [POOL[i][1] for i in picks]
        stats = await consume_all(transport, payloads, handler, ReplayGuard(), prefetch)
        return stats, transport

    stats, transport = run(main())
    model = Counter(POOL[i][0] for i in picks)
    assert handled == Counter(set(model.elements()))
    assert stats.handled + stats.replayed == len(picks)
    assert stats.dead_lettered == 0
    totals = transport.statistics()
    assert totals.acked == len(picks)
    assert (totals.queued, totals.unacked) == (0, 0)
    check_invariants(totals)
