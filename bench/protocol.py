"""Benchmark ``protocol``: sealing and unsealing envelopes, and the replay guard's batch check.

N envelopes (``--quick``: N/5), each an intent body with a few params from one sender, are
built before timing, each with its own id and nonce.

seal_unseal (Ed25519 and HMAC-SHA256)
    Timed: for every envelope, :func:`protocol.seal` with the sender's identity, then
    :func:`protocol.unseal` of the frame against a :class:`KeyStore` holding the sender's key
    and a :class:`ReplayGuard` holding ``GUARD_ENTRIES`` recorded entries of other senders. The
    replay check is real (the nonce index is probed) but never refuses: nothing is recorded
    (recording is the transport's job, once an effect is committed), so the same envelopes are
    fresh in every run. Baseline, same run, interleaved: raw sign + verify of the same bytes
    (``DOMAIN + body``, the bytes :func:`seal` signs) with the ``cryptography`` package's
    Ed25519 keys, and with ``hmac.new(key, data, sha256).digest()`` + ``hmac.compare_digest``.
    Figure: (seal + unseal rate) / (raw sign + verify rate). Checked, before timing: every
    unsealed envelope equals the sealed one, and the raw signatures verify.

replay
    A guard already holding ``GUARD_ENTRIES`` recorded, unexpired entries (100 senders);
    timed: :meth:`ReplayGuard.check_batch` over B batches of ``BATCH`` fresh
    ``(sender, nonce, expires)`` items. Figure: items checked per second. Informative: the same
    with 1% of each batch replaying recorded pairs. Checked: every fresh item is accepted, and
    exactly the replays are refused (as ``replayed``).

amqp_ratio
    Against the RabbitMQ at ``VSM_AMQP_URL`` (default ``amqp://guest:guest@127.0.0.1:5672/``),
    M messages (``--quick``: M/5) of one sealed envelope's size. Timed, from the first publish
    to the last ack: :class:`protocol.AmqpTransport` publishing them all at once (its window of
    ``WINDOW`` awaiting confirms) while one subscription (prefetch ``PREFETCH``) takes and acks
    each. Baseline, same run, interleaved, on the same broker and the same kind of queue
    (durable quorum queue bound to a durable topic exchange): raw aio-pika doing the same — a
    robust connection, a publisher-confirm channel, persistent ``mandatory`` publishes bounded
    by a semaphore of ``WINDOW``, a consumer channel with the same prefetch iterating the
    queue and acking. Figure: transport rate / raw rate. Checked: both deliver exactly the M
    messages. Not measured (and said so) when the broker is unreachable.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from hashlib import sha256
from urllib.parse import urlparse

import aio_pika
import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench._harness import Figure, Progress, Report, check, median, time_interleaved
from protocol import (
    DOMAIN,
    EXCHANGES,
    NONCE_SIZE,
    AmqpTransport,
    Envelope,
    HmacIdentity,
    Identity,
    IntentBody,
    KeyStore,
    ReplayError,
    ReplayGuard,
    Sender,
    Signer,
    Subscription,
    seal,
    unseal,
)
from vsm.crdt import Stamp

__all__ = ["run"]

FULL_ENVELOPES = 5_000
QUICK_ENVELOPES = 1_000
FULL_BATCHES = 20
QUICK_BATCHES = 5
BATCH = 10_000
GUARD_ENTRIES = 100_000
GUARD_SENDERS = 100
REPLAY_FRACTION = 0.01
RUNS = 7
QUICK_RUNS = 5
SEED = 20_240_601

NOW = 1_700_000_000.0
TTL = 60.0

FULL_MESSAGES = 10_000
QUICK_MESSAGES = 2_000
AMQP_RUNS = 5
QUICK_AMQP_RUNS = 3
WINDOW = 256
PREFETCH = 256
AMQP_URL = os.environ.get("VSM_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

SEAL_RATIO_TARGET = 0.8
AMQP_RATIO_TARGET = 0.8
REPLAY_RATE_TARGET = 1_000_000.0

Item = tuple[str, bytes, float]
"""``(sender, nonce, expires)``, as :meth:`ReplayGuard.check_batch` takes it."""


def _envelopes(key_id: str, count: int) -> list[Envelope]:
    """``count`` distinct intent envelopes from one sender signing with ``key_id``."""
    sender = Sender(path="root/c1/c1g2", cluster="cluster-a", key_id=key_id)
    return [
        Envelope.new(
            sender=sender,
            recipient="root/c1",
            body=IntentBody(
                intent_id=f"intent-{i:08d}",
                capability="echo.c1g2",
                params={"i": i, "query": "status of unit 7", "limit": 50, "verbose": False},
                user="alice",
            ),
            hlc=Stamp(1_700_000_000_000 + i, 0, "root/c1/c1g2"),
            now=NOW,
            ttl=TTL,
            meta={"lang": "en"},
        )
        for i in range(count)
    ]


def _prefilled_guard(rng: random.Random) -> tuple[ReplayGuard, list[Item]]:
    """A guard holding ``GUARD_ENTRIES`` unexpired entries of other senders, and those entries."""
    entries = [
        (
            f"cluster-b/s{i % GUARD_SENDERS}#k{i % GUARD_SENDERS}",
            rng.randbytes(NONCE_SIZE),
            NOW + TTL,
        )
        for i in range(GUARD_ENTRIES)
    ]
    guard = ReplayGuard()
    guard.record_batch(entries)
    check(len(guard) == GUARD_ENTRIES, f"the guard holds {GUARD_ENTRIES} entries")
    return guard, entries


def _seal_unseal(
    envelopes: list[Envelope], identity: Signer, keys: KeyStore, guard: ReplayGuard
) -> Callable[[], list[Envelope]]:
    def go() -> list[Envelope]:
        return [unseal(seal(e, identity), keys, guard, NOW) for e in envelopes]

    return go


def _bodies(envelopes: list[Envelope]) -> list[bytes]:
    """``DOMAIN + body``: exactly the bytes :func:`seal` signs for each envelope."""
    return [
        DOMAIN + msgpack.packb(e.model_dump(mode="python"), use_bin_type=True) for e in envelopes
    ]


def _raw_ed25519(messages: list[bytes]) -> Callable[[], int]:
    private = Ed25519PrivateKey.generate()
    public = private.public_key()

    def go() -> int:
        for message in messages:
            public.verify(private.sign(message), message)  # raises InvalidSignature if wrong
        return len(messages)

    return go


def _raw_hmac(messages: list[bytes]) -> Callable[[], int]:
    key = os.urandom(32)

    def go() -> int:
        ok = 0
        for message in messages:
            signature = hmac.new(key, message, sha256).digest()
            ok += hmac.compare_digest(hmac.new(key, message, sha256).digest(), signature)
        return ok

    return go


def _seal_figures(
    algorithm: str,
    identity: Signer,
    keys: KeyStore,
    raw: Callable[[list[bytes]], Callable[[], int]],
    count: int,
    runs: int,
    guard: ReplayGuard,
) -> tuple[float, float]:
    """(seal + unseal rate, raw sign + verify rate) for ``count`` envelopes, per second."""
    envelopes = _envelopes(identity.key_id, count)
    subject = _seal_unseal(envelopes, identity, keys, guard)
    baseline = raw(_bodies(envelopes))
    unsealed = subject()
    check(len(unsealed) == count, f"{algorithm}: {count} envelopes unsealed")
    check(unsealed == envelopes, f"{algorithm}: every unsealed envelope equals the sealed one")
    check(baseline() == count, f"{algorithm}: every raw signature verifies")
    times = time_interleaved({"subject": subject, "raw": baseline}, runs)
    check(len(guard) == GUARD_ENTRIES, f"{algorithm}: unseal recorded nothing")
    return count / median(times["subject"]), count / median(times["raw"])


def _replay_batches(
    rng: random.Random, recorded: list[Item], batches: int, replays: int
) -> tuple[list[list[Item]], list[set[int]]]:
    """``batches`` batches of fresh items, ``replays`` of each a recorded pair; their indexes."""
    out: list[list[Item]] = []
    where: list[set[int]] = []
    for b in range(batches):
        batch = [
            (
                f"cluster-a/u{(b * BATCH + i) % GUARD_SENDERS}#k",
                rng.randbytes(NONCE_SIZE),
                NOW + TTL,
            )
            for i in range(BATCH)
        ]
        positions = set(rng.sample(range(BATCH), replays))
        for i in positions:
            batch[i] = rng.choice(recorded)
        out.append(batch)
        where.append(positions)
    return out, where


def _check_verdicts(guard: ReplayGuard, batches: list[list[Item]], where: list[set[int]]) -> None:
    for batch, positions in zip(batches, where, strict=True):
        verdicts = guard.check_batch(batch, NOW)
        refused = {i for i, v in enumerate(verdicts) if v is not None}
        check(refused == positions, f"exactly the {len(positions)} replays of a batch refused")
        check(
            all(isinstance(verdicts[i], ReplayError) for i in positions)
            and all(getattr(verdicts[i], "reason", None) == "replayed" for i in positions),
            "every replay refused as replayed",
        )


def _check_all(guard: ReplayGuard, batches: list[list[Item]]) -> int:
    checked = 0
    for batch in batches:
        checked += len(guard.check_batch(batch, NOW))
    return checked


def _broker_reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5672), 2):
            return True
    except OSError:
        return False


async def _transport_run(
    transport: AmqpTransport, sub: Subscription, messages: list[bytes]
) -> float:
    """Seconds from the first publish to the last ack, through ``AmqpTransport``."""

    async def take() -> int:
        got = 0
        async for delivery in sub:
            await delivery.ack()
            got += 1
            if got == len(messages):
                break
        return got

    start = time.perf_counter()
    consumer = asyncio.create_task(take())
    await asyncio.gather(*(transport.publish("intents", "bench.run", m) for m in messages))
    got = await consumer
    elapsed = time.perf_counter() - start
    check(got == len(messages), f"the transport delivered all {len(messages):,} messages")
    return elapsed


async def _raw_run(
    exchange: aio_pika.abc.AbstractExchange,
    iterator: aio_pika.abc.AbstractQueueIterator,
    messages: list[bytes],
) -> float:
    """Seconds from the first publish to the last ack, with raw aio-pika."""
    window = asyncio.Semaphore(WINDOW)

    async def publish(data: bytes) -> None:
        async with window:
            await exchange.publish(
                aio_pika.Message(data, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key="bench.run",
                mandatory=True,
            )

    async def take() -> int:
        got = 0
        async for message in iterator:
            await message.ack()
            got += 1
            if got == len(messages):
                break
        return got

    start = time.perf_counter()
    consumer = asyncio.create_task(take())
    await asyncio.gather(*(publish(m) for m in messages))
    got = await consumer
    elapsed = time.perf_counter() - start
    check(got == len(messages), f"raw aio-pika delivered all {len(messages):,} messages")
    return elapsed


async def _amqp_rates(url: str, count: int, runs: int, size: int) -> tuple[float, float]:
    """(transport rate, raw aio-pika rate), messages per second, medians of ``runs``."""
    prefix = f"vsm-bench-{uuid.uuid4().hex[:8]}"
    messages = [os.urandom(size) for _ in range(count)]
    transport = await AmqpTransport.connect(url, prefix=prefix, max_in_flight=WINDOW)
    raw = await aio_pika.connect_robust(url)
    try:
        sub = await transport.subscribe("intents", "bench.#", "subject", prefetch=PREFETCH)
        publishing = await raw.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await publishing.declare_exchange(
            f"{prefix}.raw", aio_pika.ExchangeType.TOPIC, durable=True
        )
        consuming = await raw.channel()
        await consuming.set_qos(prefetch_count=PREFETCH)
        queue = await consuming.declare_queue(
            f"{prefix}.raw", durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.bind(f"{prefix}.raw", routing_key="bench.#")
        times: dict[str, list[float]] = {"subject": [], "raw": []}
        async with queue.iterator() as iterator:
            for _ in range(runs):
                times["subject"].append(await _transport_run(transport, sub, messages))
                times["raw"].append(await _raw_run(exchange, iterator, messages))
        await sub.close()
        await consuming.queue_delete(f"{prefix}.raw")
        await consuming.exchange_delete(f"{prefix}.raw")
        for name in ("subject", "dead"):
            await consuming.queue_delete(f"{prefix}.{name}")
        for name in [*EXCHANGES, "dead"]:
            await consuming.exchange_delete(f"{prefix}.{name}")
    finally:
        await transport.close()
        await raw.close()
    return count / median(times["subject"]), count / median(times["raw"])


def run(quick: bool) -> Report:
    """Run the seal/unseal and replay workloads and return their figures."""
    say = Progress()
    count = QUICK_ENVELOPES if quick else FULL_ENVELOPES
    batches = QUICK_BATCHES if quick else FULL_BATCHES
    runs = QUICK_RUNS if quick else RUNS
    rng = random.Random(SEED)  # a repeatable workload

    say(f"replay guard: recording {GUARD_ENTRIES:,} entries")
    guard, recorded = _prefilled_guard(rng)

    say(f"seal+unseal ed25519: {count:,} envelopes, {runs} runs")
    ed = Identity.generate("bench-ed25519")
    ed_keys = KeyStore()
    ed_keys.add(ed.key_id, ed.public_key_bytes())
    ed_rate, ed_raw = _seal_figures("ed25519", ed, ed_keys, _raw_ed25519, count, runs, guard)

    say(f"seal+unseal hmac: {count:,} envelopes, {runs} runs")
    hm = HmacIdentity.generate("bench-hmac")
    hm_keys = KeyStore()
    hm_keys.add_hmac(hm.key_id, hm.secret)
    hm_rate, hm_raw = _seal_figures("hmac", hm, hm_keys, _raw_hmac, count, runs, guard)

    replays = int(BATCH * REPLAY_FRACTION)
    say(f"replay: {batches} batches of {BATCH:,} ({replays} replays each in the second set)")
    fresh, none = _replay_batches(rng, recorded, batches, 0)
    mixed, where = _replay_batches(rng, recorded, batches, replays)
    _check_verdicts(guard, fresh, none)
    _check_verdicts(guard, mixed, where)
    times = time_interleaved(
        {"fresh": lambda: _check_all(guard, fresh), "mixed": lambda: _check_all(guard, mixed)},
        runs,
    )
    items = batches * BATCH
    fresh_rate = items / median(times["fresh"])
    mixed_rate = items / median(times["mixed"])
    check(len(guard) == GUARD_ENTRIES, "check_batch recorded nothing")

    amqp: tuple[Figure, ...] = ()
    messages = QUICK_MESSAGES if quick else FULL_MESSAGES
    amqp_runs = QUICK_AMQP_RUNS if quick else AMQP_RUNS
    if _broker_reachable(AMQP_URL):
        size = len(seal(_envelopes(ed.key_id, 1)[0], ed))
        say(f"amqp: {messages:,} messages of {size} B, {amqp_runs} runs, transport vs raw")
        amqp_rate, raw_rate = asyncio.run(_amqp_rates(AMQP_URL, messages, amqp_runs, size))
        amqp = (
            Figure(
                "amqp_ratio",
                amqp_rate / raw_rate,
                "x",
                "AmqpTransport publish+confirm+consume+ack rate / raw aio-pika's",
                AMQP_RATIO_TARGET,
                ">=",
            ),
            Figure("amqp_msgs_per_s", amqp_rate, "1", "AmqpTransport messages per second"),
            Figure("amqp_raw_msgs_per_s", raw_rate, "1", "raw aio-pika messages per second"),
        )
        amqp_size = (
            f"; amqp: {messages:,} messages of {size} B, window {WINDOW}, prefetch "
            f"{PREFETCH}, quorum queues, median of {amqp_runs} interleaved runs"
        )
    else:
        say(f"amqp: RabbitMQ unreachable at {AMQP_URL}; amqp_ratio not measured")
        amqp_size = f"; `amqp_ratio` not measured: RabbitMQ unreachable at {AMQP_URL}"

    return Report(
        bench="protocol",
        quick=quick,
        size=(
            f"seal+unseal: {count:,} intent envelopes per run (4 params, 1 meta entry), one "
            f"sender, guard of {GUARD_ENTRIES:,} entries, nothing recorded; replay: {batches} "
            f"batches of {BATCH:,} items against {GUARD_ENTRIES:,} recorded entries; median of "
            f"{runs} runs{amqp_size}"
        ),
        baseline=(
            "`seal_unseal_ratio_*` divide the seal+unseal rate by raw sign+verify of the same "
            "signed bytes (`cryptography` Ed25519; `hmac.new(..., sha256)` + `compare_digest`), "
            "interleaved in the same run; `replay_checks_per_s` is absolute; `amqp_ratio` "
            "divides AmqpTransport's publish-confirm-consume-ack rate by raw aio-pika doing the "
            "same on the same broker, interleaved"
        ),
        figures=(
            Figure(
                "seal_unseal_ratio_ed25519",
                ed_rate / ed_raw,
                "x",
                "seal+unseal rate / raw Ed25519 sign+verify rate",
                SEAL_RATIO_TARGET,
                ">=",
            ),
            Figure(
                "seal_unseal_per_s_ed25519",
                ed_rate,
                "1",
                "envelopes sealed and unsealed per second, Ed25519",
            ),
            Figure(
                "seal_unseal_ratio_hmac",
                hm_rate / hm_raw,
                "x",
                "seal+unseal rate / raw HMAC-SHA256 sign+verify rate",
                SEAL_RATIO_TARGET,
                ">=",
            ),
            Figure(
                "seal_unseal_per_s_hmac",
                hm_rate,
                "1",
                "envelopes sealed and unsealed per second, HMAC-SHA256",
            ),
            Figure(
                "replay_checks_per_s",
                fresh_rate,
                "1",
                f"check_batch items/s, batches of {BATCH:,} fresh items",
                REPLAY_RATE_TARGET,
                ">=",
            ),
            Figure(
                "replay_checks_per_s_1pct_replays",
                mixed_rate,
                "1",
                "the same with 1% replays per batch (each refused)",
            ),
            *amqp,
        ),
    )
