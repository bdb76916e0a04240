"""The bridge: one supervised Ray actor per federated tree, joining it to peer trees over AMQP.

The pure half is :class:`protocol.Federation` (what crosses, what is refused); this actor adds
the broker, the replay guard, retries, and the calls into the tree's hosts.

Rules:
    1. Hosts send the bridge every message addressed into a peer tree (a path outside this
       tree whose root is a peer's), as they send other hosts messages: ``deliver_batch``.
       The bridge seals each (``Federation.outbound``) and queues it for its peer; what does
       not cross is counted (``unsupported``) and dropped.
    2. One sender per peer publishes its queue on the peer's exchanges (the peer's prefix;
       publisher confirms), up to ``SEND_WINDOW`` at a time in queue order, awaiting their
       confirms together. A publish that fails (broker away, no queue bound yet) goes back to
       the front and is retried every ``RETRY_EVERY`` seconds until the envelope expires:
       queued envelopes go out after a partition heals; expired ones are counted
       (``expired_unsent``) and dropped (the model has already answered for them: an
       intent's deadline fails it). Order is not promised: the model needs none.
    3. The bridge consumes its own exchanges (its prefix), up to the prefetch of deliveries
       at once. Each delivery is unsealed (signature, expiry, replay) and checked
       (``Federation.inbound``); a refusal is dead-lettered with its reason and counted, and
       changes nothing. What is accepted is delivered to the hosts of this tree, one call per
       host for all the envelopes taken in one turn of the event loop; only when that call
       returned is an envelope recorded in the replay guard, kept in the replay log and
       acked, so a crash in between redelivers it and the model's idempotence (S5 sees an
       intent once, S1 ends one once) absorbs the repeat. A redelivery of an envelope still
       being handled waits.
    4. Every ``announce_every`` seconds the bridge reads the root's registry part for this
       tree (a valid registry delta) and, when it changed or every ``REANNOUNCE`` rounds
       (anti-entropy after a partition), announces it to every peer; with it goes a
       checkpoint of the root's audit chain head, signed with the cluster's key, when the
       chain grew.
    5. The broker may be down at start or go away later: the bridge keeps trying to connect
       every ``RETRY_EVERY`` seconds, and the tree runs meanwhile (remote intents fail at
       their deadline, with the reason).
    6. Restart: the replay window survives it. With a ``storage`` file (the tree's SQLite
       checkpoint file) every recorded envelope is kept in its :class:`ReplayLog` before it
       is acked, all recorded in one turn of the event loop in one transaction, and a bridge
       starting (Ray restarts it) loads the unexpired ones into its guard: an envelope taken
       before the restart is refused as replayed after it. Expired rows are pruned at each
       announcement round. Without storage the window lives in memory only.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, TypeVar

import ray

from actors._logs import logger_for
from actors._naming import PREFIX, find_actor, host_in, namespace_of
from actors._store import ReplayLog
from actors._tracing import IntentTracer
from protocol import (
    AmqpTransport,
    Envelope,
    Identity,
    ProtocolError,
    ReplayError,
    ReplayGuard,
    TransportError,
    replay_id,
    unseal,
)
from protocol._federation import Federation, Outgoing, Refused, Unsupported, peers_of
from vsm.address import SystemId
from vsm.audit import Checkpoint
from vsm.messages import Message
from vsm.registry import RegistryDelta
from vsm.spec import FederationSpec, TreeSpec

__all__ = ["BRIDGE", "Bridge", "BridgeActor", "bridge_queue"]


T = TypeVar("T")

BRIDGE = f"{PREFIX}#bridge"
"""The bridge's actor name in its tree's namespace (no viable system's: ``#`` is in no path)."""

RETRY_EVERY = 0.5
"""Seconds between attempts to connect, or to publish an envelope that failed."""

REANNOUNCE = 5
"""Announcement rounds after which the registry part is announced even if unchanged."""

PUBLISH_TIMEOUT = 5.0
"""Seconds one publish may take before it is retried."""

SEND_WINDOW = 128
"""Envelopes a peer's sender publishes at once, awaiting their confirms together."""

QUEUES = (("intents", "#"), ("announcements", ""), ("algedonic", "#"), ("audit", "#"))
"""The bridge's own exchanges it consumes, with their binding patterns."""


def bridge_queue(cluster: str, exchange: str) -> str:
    """The name (after the prefix) of the queue a cluster's bridge consumes ``exchange`` by."""
    return f"{cluster}.bridge.{exchange}"


class _PerTurn(Generic[T]):
    """Items added in one turn of the event loop, handled together by one call of ``flush``.

    :meth:`add` returns once that call returned, or raises what it raised.
    """

    def __init__(self, flush: Callable[[list[T]], Awaitable[None]]) -> None:
        self._flush = flush
        self._pending: tuple[list[T], asyncio.Future[None]] | None = None
        self._running: set[asyncio.Task[None]] = set()  # held, or they may be collected

    async def add(self, items: Iterable[T]) -> None:
        if self._pending is None:
            loop = asyncio.get_running_loop()
            self._pending = ([], loop.create_future())
            loop.call_soon(self._start)
        batch, done = self._pending
        batch.extend(items)
        await asyncio.shield(done)

    def _start(self) -> None:
        assert self._pending is not None
        batch, done = self._pending
        self._pending = None
        task = asyncio.get_running_loop().create_task(self._run(batch, done))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[T], done: asyncio.Future[None]) -> None:
        try:
            await self._flush(batch)
        except Exception as exc:
            done.set_exception(exc)
        else:
            done.set_result(None)


class Bridge:
    """The bridge of one federated tree (see the module docstring).

    Args:
        tree: The tree's spec; ``tree.federation`` must be set.
        storage: The SQLite file that keeps the replay window across restarts (rule 6);
            ``None`` keeps it in memory only.
    """

    def __init__(self, tree: TreeSpec, storage: str | None = None) -> None:
        if tree.federation is None:
            raise ValueError(f"tree {tree.name!r} has no federation spec")
        self.tree = tree
        self.spec: FederationSpec = tree.federation
        self.namespace = namespace_of(tree.name)
        self._log = logger_for(__name__, vsm_tree=tree.name, vsm_cluster=self.spec.cluster)
        self._tracer = IntentTracer(tree, BRIDGE.removeprefix("vsm:"))
        identity = Identity.load(self.spec.identity, self.spec.key_id)
        self.identity = identity
        self.federation = Federation(
            self.spec.cluster, tree.root.name, identity, peers_of(self.spec.peers)
        )
        self.counts: Counter[str] = Counter()
        self.guard = ReplayGuard(max_entries=1_000_000)
        self.replay_log = None if storage is None else ReplayLog(storage, tree.name)
        if self.replay_log is not None:  # rule 6
            kept = self.replay_log.live(time.time())
            for item in kept:
                self.guard.record(*item)
            self.counts["replay_window_loaded"] = len(kept)
        self._recorded: _PerTurn[tuple[str, bytes, float]] = _PerTurn(self._save_recorded)
        self.refused: Counter[str] = Counter()
        self.peer_checkpoints: dict[str, list[Any]] = {}
        self.peer_announced: dict[str, float] = {}
        self._own: AmqpTransport | None = None
        self._out: dict[str, AmqpTransport] = {}
        self._queues: dict[str, deque[Outgoing]] = {p.cluster: deque() for p in self.spec.peers}
        self._wake: dict[str, asyncio.Event] = {p.cluster: asyncio.Event() for p in self.spec.peers}
        self._tasks: list[asyncio.Task[Any]] = []
        self._handles: dict[str, Any] = {}
        self._handling: set[str] = set()
        self._inbound: _PerTurn[tuple[str, SystemId, Message]] = _PerTurn(self._deliver_now)
        self._last_part: dict[str, Any] | None = None
        self._last_audit = -1
        self._rounds = 0
        self._connected = asyncio.Event()
        with contextlib.suppress(RuntimeError):  # as a Ray actor, also after a restart
            asyncio.get_running_loop()
            self._start_tasks()

    def __repr__(self) -> str:
        return f"{BRIDGE}({self.spec.cluster})"

    # ------------------------------------------------------------------ remote methods

    async def start(self) -> None:
        """Start connecting, consuming, sending and announcing (returns at once; idempotent)."""
        self._start_tasks()

    def _start_tasks(self) -> None:
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._connect()))
        for peer in self.spec.peers:
            self._tasks.append(loop.create_task(self._send(peer.cluster)))
        self._tasks.append(loop.create_task(self._announce()))

    async def ready(self, timeout: float = 30.0) -> bool:
        """Whether the bridge is connected to the broker (waits up to ``timeout`` s)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)
        return self._connected.is_set()

    async def deliver_batch(self, batch: list[tuple[str, SystemId, Message]]) -> None:
        """Take messages the hosts address into peer trees (rule 1)."""
        now = time.time()
        for path, system, message in batch:
            try:
                outgoing = self.federation.outbound(path, system, message, now)
            except Unsupported:
                self.counts["unsupported"] += 1
                continue
            self._queue(outgoing)

    async def deliver(self, path: str, system: SystemId, message: Message) -> None:
        """One message, as :meth:`deliver_batch`."""
        await self.deliver_batch([(path, system, message)])

    async def status(self) -> dict[str, Any]:
        """Counters, refusals by reason, queued envelopes, what peers announced and signed."""
        transports = [t for t in (self._own, *self._out.values()) if t is not None]
        return {
            "cluster": self.spec.cluster,
            "connected": self._connected.is_set(),
            "reconnects": sum(t.statistics().reconnects for t in transports),
            "republished": sum(t.statistics().republished for t in transports),
            "counts": dict(self.counts),
            "refused": dict(self.refused),
            "queued": {peer: len(queue) for peer, queue in self._queues.items()},
            "peer_announced": dict(self.peer_announced),
            "peer_checkpoints": dict(self.peer_checkpoints),
        }

    async def ping(self) -> str:
        """The bridge's name (a liveness check)."""
        return repr(self)

    async def close(self) -> None:
        """Stop the tasks and close the connections."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for transport in [self._own, *self._out.values()]:
            if transport is not None:
                with contextlib.suppress(Exception):
                    await transport.close()

    # ------------------------------------------------------------------ out (rules 1, 2)

    def _queue(self, outgoing: Outgoing) -> None:
        self._queues[outgoing.peer].append(outgoing)
        self._wake[outgoing.peer].set()

    async def _send(self, peer: str) -> None:
        queue, wake = self._queues[peer], self._wake[peer]
        while True:
            if not queue:
                wake.clear()
                await wake.wait()
                continue
            transport = self._out.get(peer)
            if transport is None:
                await asyncio.sleep(RETRY_EVERY)
                continue
            now = time.time()
            batch: list[Outgoing] = []
            while queue and len(batch) < SEND_WINDOW:
                outgoing = queue.popleft()
                if outgoing.envelope.expires <= now:
                    self.counts["expired_unsent"] += 1
                else:
                    batch.append(outgoing)
            results = await asyncio.gather(
                *(self._publish(transport, outgoing) for outgoing in batch),
                return_exceptions=True,
            )
            failed = []
            for outgoing, result in zip(batch, results, strict=True):
                if isinstance(result, TransportError | TimeoutError | ConnectionError):
                    failed.append(outgoing)
                elif isinstance(result, BaseException):  # not the broker's doing: never sendable
                    self._log.error(
                        "%r: cannot publish %s: %r",
                        self,
                        outgoing.envelope.id,
                        result,
                        extra={"envelope_id": outgoing.envelope.id},
                    )
                    self.counts["publish_errors"] += 1
                else:
                    self.counts[f"sent_{outgoing.envelope.kind}"] += 1
                    if self._tracer.enabled:  # from when it was sealed to its confirm
                        sealed_ns = outgoing.envelope.hlc[0] * 1_000_000
                        self._tracer.envelope(
                            "send", outgoing.envelope, peer, sealed_ns, time.time_ns()
                        )
            if failed:
                queue.extendleft(reversed(failed))  # back in front, in their order
                self.counts["publish_retries"] += len(failed)
                await asyncio.sleep(RETRY_EVERY)

    @staticmethod
    async def _publish(transport: AmqpTransport, outgoing: Outgoing) -> None:
        await asyncio.wait_for(
            transport.publish(outgoing.exchange, outgoing.route, outgoing.data), PUBLISH_TIMEOUT
        )

    # ------------------------------------------------------------------ connection (rule 5)

    async def _connect(self) -> None:
        url = self.spec.amqp_url
        while self._own is None:
            try:
                own = await AmqpTransport.connect(
                    url, prefix=self.spec.prefix, publish_timeout=PUBLISH_TIMEOUT
                )
            except (TransportError, OSError, TimeoutError) as exc:
                self.counts["connect_retries"] += 1
                self._log.info("%r: the broker at %s is not reachable (%s)", self, url, exc)
                await asyncio.sleep(RETRY_EVERY)
                continue
            self._own = own
        for peer in self.spec.peers:
            while peer.cluster not in self._out:
                try:
                    self._out[peer.cluster] = await AmqpTransport.connect(
                        url, prefix=peer.prefix, publish_timeout=PUBLISH_TIMEOUT
                    )
                except (TransportError, OSError, TimeoutError):
                    self.counts["connect_retries"] += 1
                    await asyncio.sleep(RETRY_EVERY)
        loop = asyncio.get_running_loop()
        cluster = self.spec.cluster
        for exchange, pattern in QUEUES:
            while True:  # the broker may go away between connecting and subscribing
                try:
                    subscription = await self._own.subscribe(
                        exchange, pattern, bridge_queue(cluster, exchange), prefetch=64
                    )
                    break
                except Exception as exc:  # aio-pika/aiormq raise their own kinds here too
                    self.counts["connect_retries"] += 1
                    self._log.info("%r: subscribing to %s failed (%s)", self, exchange, exc)
                    await asyncio.sleep(RETRY_EVERY)
            self._tasks.append(loop.create_task(self._consume(subscription)))
        self._connected.set()

    # ------------------------------------------------------------------ in (rule 3)

    async def _consume(self, subscription: Any) -> None:
        """Take deliveries concurrently (at most the prefetch are unsettled at once)."""
        loop = asyncio.get_running_loop()
        running: set[asyncio.Task[None]] = set()
        async for delivery in subscription:
            task = loop.create_task(self._take(delivery))
            running.add(task)
            task.add_done_callback(running.discard)

    async def _take(self, delivery: Any) -> None:
        taken_ns = time.time_ns()
        try:
            envelope = unseal(delivery.data, self.federation.keys, self.guard, time.time())
            accepted = self.federation.inbound(envelope)
        except ReplayError as exc:
            if exc.reason == "replayed":
                self.counts["replayed"] += 1
                await delivery.ack()
            else:
                await delivery.nack(requeue=True)
            return
        except ProtocolError as exc:  # Refused included: dead-lettered with the reason
            self.refused[exc.reason] += 1
            await delivery.dead_letter(exc.reason)
            return
        if envelope.id in self._handling:  # a redelivery of one being handled: later
            await asyncio.sleep(RETRY_EVERY)
            await delivery.nack(requeue=True)
            return
        self._handling.add(envelope.id)
        try:
            await self._apply(envelope, accepted.peer, accepted)
        except Refused as exc:
            self.refused[exc.reason] += 1
            await delivery.dead_letter(exc.reason)
            return
        except Exception:  # the tree is away for a moment: the envelope comes back
            self._log.warning(
                "%r: delivering %s failed",
                self,
                envelope.id,
                exc_info=True,
                extra={"envelope_id": envelope.id},
            )
            self.counts["deliver_retries"] += 1
            await asyncio.sleep(RETRY_EVERY)
            await delivery.nack(requeue=True)
            return
        finally:
            self._handling.discard(envelope.id)
        recorded = replay_id(envelope)
        self.guard.record(*recorded)
        if self.replay_log is not None:
            try:
                await self._recorded.add([recorded])  # rule 6
            except Exception:  # applied but not kept: redelivered, and taken as a replay
                self._log.warning(
                    "%r: keeping %s failed",
                    self,
                    envelope.id,
                    exc_info=True,
                    extra={"envelope_id": envelope.id},
                )
                self.counts["replay_log_failures"] += 1
                await delivery.nack(requeue=True)
                return
        await delivery.ack()
        self.counts[f"received_{envelope.kind}"] += 1
        if self._tracer.enabled:
            self._tracer.envelope("receive", envelope, accepted.peer, taken_ns, time.time_ns())

    async def _save_recorded(self, items: list[tuple[str, bytes, float]]) -> None:
        """Keep what one turn recorded in the replay log, in one transaction (rule 6)."""
        assert self.replay_log is not None
        self.replay_log.add(items)  # a small transaction: cheaper than a thread hop

    async def _apply(self, envelope: Envelope, peer: str, accepted: Any) -> None:
        if accepted.checkpoint is not None:
            self._keep_checkpoint(peer, accepted.checkpoint)
            return
        if envelope.kind == "registry":
            self.peer_announced[peer] = time.time()
        await self._deliver(accepted.messages)

    async def _deliver(self, messages: tuple[tuple[str, SystemId, Message], ...]) -> None:
        """Hand ``messages`` to their hosts with what other deliveries of this turn carry.

        One ``deliver_batch`` call per host per turn of the event loop (rule 3); returns once
        that call returned, or raises what it raised.
        """
        await self._inbound.add(messages)

    async def _deliver_now(self, items: list[tuple[str, SystemId, Message]]) -> None:
        by_host: dict[str, list[tuple[str, SystemId, Message]]] = {}
        for path, system, message in items:
            by_host.setdefault(self._host_name(path, system), []).append((path, system, message))
        try:
            calls = []
            for name, batch in by_host.items():
                handle = self._host(name)
                if handle is None:
                    raise RuntimeError(f"no host {name!r} for {batch[0][0]!r} is running")
                calls.append(handle.deliver_batch.remote(batch))
            await asyncio.gather(*calls)
        except Exception:
            self._handles.clear()  # a host may have been replaced: look it up again
            raise

    def _keep_checkpoint(self, peer: str, data: dict[str, Any]) -> None:
        try:
            checkpoint = Checkpoint.from_data(data.get("checkpoint"))
        except Exception as exc:
            raise Refused("undecodable", f"{peer!r} sent a bad checkpoint: {exc}") from exc
        if not checkpoint.verify(self.federation.keys.audit_verifier()):
            raise Refused("bad-signature", f"{peer!r} sent a checkpoint that does not verify")
        kept = self.peer_checkpoints.get(peer)
        if kept is None or checkpoint.length >= kept[1]:
            self.peer_checkpoints[peer] = checkpoint.to_data()

    def _host_name(self, path: str, system: SystemId) -> str:
        return host_in(self.tree, path, system, max(self.tree.pool_size, 1))

    def _host(self, name: str) -> Any:
        return find_actor(name, self.namespace, self._handles)

    # ------------------------------------------------------------------ announcements (rule 4)

    async def _announce(self) -> None:
        root = self.tree.root.name
        while True:
            await asyncio.sleep(self.spec.announce_every)
            if not self._connected.is_set():
                continue
            self._rounds += 1
            try:
                part_data, audit = await self._read_root(root)
            except Exception:  # the root is restarting: next round
                self._handles.clear()
                self.counts["announce_skipped"] += 1
                continue
            now = time.time()
            if self.replay_log is not None:
                self.replay_log.prune(now)
            if part_data != self._last_part or self._rounds % REANNOUNCE == 0:
                self._last_part = part_data
                for outgoing in self.federation.announcement(
                    RegistryDelta.from_data(part_data), now
                ):
                    self._queue(outgoing)
            if audit is not None and audit[1] > self._last_audit:
                chain, length, head = audit
                self._last_audit = length
                checkpoint = Checkpoint.sign(chain, length, head, now, self.identity)
                for outgoing in self.federation.checkpoint(
                    {"checkpoint": checkpoint.to_data()}, now
                ):
                    self._queue(outgoing)

    async def _read_root(self, root: str) -> tuple[Any, tuple[str, int, bytes] | None]:
        s4 = self._host(self._host_name(root, SystemId.S4))
        s3 = self._host(self._host_name(root, SystemId.S3))
        if s4 is None or s3 is None:
            raise RuntimeError("the root is not running")
        part = await s4.registry_part.remote(root)
        audit = await s3.audit_head.remote(root)
        return part, audit


BridgeActor: Any = ray.remote(num_cpus=0, max_concurrency=1000)(Bridge)  # type: ignore[call-overload]
