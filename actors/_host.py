"""The host: a thin async Ray actor that runs viable systems and carries out their effects.

A host decides nothing. It holds one or more *components* — a viable system and the Systems
of it this actor serves — delivers messages to them, and performs what they return.

Rules:
    1. Placement decides what a host holds: placement ``node``, one viable system with its
       five Systems; ``system``, one System of one viable system; ``pooled``, many viable
       systems (the host is a pool actor). Nothing else changes with placement.
    2. Messages between Systems hosted together are delivered at once, in order, before the
       host takes its next call. Messages to Systems elsewhere are one-way actor calls to the
       host that holds them (:mod:`actors._naming`), batched: what one turn of the event loop
       produced for one host goes in one call, in order; Ray keeps one caller's calls to one
       actor in order. A message to a host that is gone is lost, as on any network; the
       model resends what matters.
    3. ``now`` is wall-clock seconds (``time.time()``): registries compare leases across
       processes.
    4. Spawning follows the model: a ``Spawn`` effect starts the child's host (an actor this
       host creates and so owns: Ray kills it with its owner) or asks the pool to host it.
       The host of a viable system's S5 carries out every ``Spawn`` and ``Stop`` of it (other
       Systems' hosts forward theirs), so one actor owns all its children.
       Each child gets a death-watch: a call outstanding on the child's host that returns
       when the child is dropped on purpose and fails when the host's process dies; then
       the parent's host tells its own S2 (``UnitLost``) and the model's S3 decides restart
       or escalation. A restart is a new incarnation under the same name.
    5. ``Stop`` kills the child's actors (its whole subtree goes with them) and drops its
       pooled descendants from every pool.
    6. The client desk is the host of the root's S5: ``submit`` waits there for the intent's
       one outcome (the first terminal reply; later ones are only counted), until its
       deadline plus a grace, then answers with a deadline refusal. Replies and progress for
       the client that another host produces are forwarded to the desk.
    7. Kernels run as Ray tasks asking for their capability's ``cpus`` — a parallel kernel
       as one task per chunk, sized from free resources (:mod:`actors._kernels`); their result
       comes back to the System that asked as ``KernelFinished``. A capability with
       ``cpus = 0`` runs its (trivial) kernel inside the host instead. ``StopKernel`` (an
       intent cancelled or past its deadline) cancels the kernel's Ray tasks still running.
    8. Checkpoints: every ``CHECKPOINT_EVERY`` seconds a host saves, to the tree's SQLite
       file, the checkpoint of each component whose state changed (only the parts of the
       Systems it holds); a component that starts finds its last checkpoint there and
       restores it before it runs (:meth:`vsm.systems.ViableSystem.restore`).
    9. Signed intents: a tree whose spec says ``clients.signed`` takes intents only sealed
       as aMCP envelopes (``submit_sealed``) by a key in ``clients.keys``; the intent runs as
       the user its key id names, and the desk's replay guard refuses a second delivery.
    10. Timers: a background timer (a heartbeat, a gossip or policy tick, an audit) fires on
        the host's next tick (every ``TICK`` seconds of the event loop's clock) after it is
        due, with every other one due by then; their messages leave in one batch per
        destination host. A pool of hundreds of viable systems thus sends a few calls per
        tick instead of one per timer. Deadlines and resends fire when due.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import math
import os
import sqlite3
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import ray
import ray.exceptions

from actors._bridge import BRIDGE
from actors._kernels import KernelRunner
from actors._logs import logger_for
from actors._metrics import HostMetrics
from actors._naming import (
    PREFIX,
    actor_name,
    find_actor,
    host_name,
    namespace_of,
    pool_index,
    pool_name,
    spec_at,
)
from actors._store import CheckpointStore
from actors._tracing import IntentTracer
from protocol import (
    IntentBody,
    KeyStore,
    ProtocolError,
    ReplayGuard,
    replay_id,
    unseal,
)
from vsm.address import Address, SystemId, is_within, parent_of
from vsm.effects import (
    Cancel,
    Effect,
    Emit,
    Event,
    Notify,
    Reply,
    RunKernel,
    Schedule,
    Send,
    Spawn,
    Stop,
    StopKernel,
)
from vsm.errors import MalformedDataError
from vsm.intents import Intent, Outcome, Refusal, Status
from vsm.kernels import BUILTIN_KERNELS, run_kernel
from vsm.messages import (
    CancelIntent,
    ChildSpawned,
    IntentFinished,
    IntentProgress,
    KernelFinished,
    Message,
    PatchRules,
    SpawnFailed,
    Started,
    SubmitIntent,
    UnitLost,
)
from vsm.spec import LimitsSpec, NodeSpec, Placement, PolicySpec, TreeSpec
from vsm.systems import ViableSystem

__all__ = ["CLIENT_GRACE", "Host", "HostActor"]


CLIENT_GRACE = 5.0
"""Seconds past an intent's deadline before the desk answers it with a deadline refusal."""
CHECKPOINT_EVERY = 2.0
"""Seconds between checkpoint rounds; a round saves only the components that changed."""
BRIDGE_TTL = 5.0
"""Seconds a host reuses the bridge's handle before it looks the name up again. Ray restarts
the bridge in place (the handle stays good), but one made again under its name (after
``ray.kill(..., no_restart=True)``) is a new actor that only a new lookup finds."""
MAX_CONCURRENCY = 100_000
"""Calls a host runs at once. Every client waiting at the desk holds one until its outcome;
with Ray's default (1,000), a thousand pipelined intents would leave no room for the calls
that bring their outcomes back (the federation bridge's, a child's)."""

MAX_EVENTS = 10_000
MAX_PROGRESS = 10_000
"""Intents whose progress the desk keeps (the newest)."""
MAX_OUTCOMES = 100_000
"""Intents whose outcome and reply count the desk keeps (the newest)."""
TICK = 0.25
"""Seconds between a host's ticks: background timers (heartbeats, gossip, audits) wait for the
next one, so the many viable systems of a pool fire theirs together and send in one batch."""
MAX_PLACEMENTS = 100_000
SPAWN_RETRIES = 20
SPAWN_RETRY_DELAY = 0.25


@dataclass(slots=True, eq=False)
class _Timer:
    """A timer a component set (rule 10); cancelling it before it fires makes it a no-op."""

    path: str
    incarnation: int
    effect: Schedule
    handle: asyncio.TimerHandle | None = None
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True
        if self.handle is not None:
            self.handle.cancel()


@dataclass(slots=True)
class _Component:
    vs: ViableSystem
    systems: frozenset[SystemId]
    incarnation: int


def _keep_newest(table: dict[Any, Any], limit: int) -> None:
    """Drop the oldest entries of ``table`` (insertion order) beyond ``limit``."""
    while len(table) > limit:
        del table[next(iter(table))]


def _registry_summary(vs: ViableSystem) -> dict[str, Any]:
    """How many adverts the replica holds, and a fingerprint of its state (equal iff equal)."""
    digest = hashlib.blake2b(b"".join(vs.s4.registry.digest()), digest_size=16).hexdigest()
    return {"adverts": len(vs.s4.registry), "digest": digest}


class Host:
    """A Ray actor hosting components (see the module rules). Create it with :data:`HostActor`.

    Args:
        tree: The tree's spec (every host has it, to find any path's spec and placement).
        label: What this host holds, for people: ``root/a``, ``root/a#S3``, ``pool/2``.
        pool_size: The tree's pool size (rule 2 of :mod:`actors._naming`).
        storage: The tree's checkpoint file (rule 8), or ``None`` for no checkpoints.
    """

    def __init__(
        self, tree: TreeSpec, label: str, pool_size: int, storage: str | None = None
    ) -> None:
        self.tree = tree
        self.storage = storage
        self._store: CheckpointStore | None = None
        self._saved: dict[str, tuple[object, ...]] = {}
        self._checkpointing: asyncio.Task[None] | None = None
        self.label = label
        self._log = logger_for(__name__, vsm_tree=tree.name, vsm_host=label)
        self.pool_size = pool_size
        self.namespace = namespace_of(tree.name)
        self._components: dict[str, _Component] = {}
        self._local: deque[tuple[str, SystemId, Message]] = deque()
        self._outgoing: dict[str, list[tuple[str, SystemId, Message]]] = {}
        self._flush_pending = False
        self._handles: dict[str, Any] = {}
        self._bridge_looked_up = 0.0  # when the bridge's handle was last looked up by name
        self._owned: dict[str, list[Any]] = {}  # child path -> the actors this host made for it
        self._incarnations: dict[str, int] = {}
        self._timers: dict[tuple[str, str], _Timer] = {}
        self._ticks: dict[float, list[_Timer]] = {}  # tick time -> background timers due
        self._placements: dict[str, Placement] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._waiters: dict[str, asyncio.Future[Outcome]] = {}
        self._outcomes: dict[str, Outcome] = {}
        self._replies: Counter[str] = Counter()
        self._progress: dict[str, list[IntentProgress]] = {}
        self._events: deque[Event] = deque(maxlen=MAX_EVENTS)
        self._gone: dict[tuple[str, int], asyncio.Event] = {}
        self._keys: KeyStore | None = None
        self._client_guard = ReplayGuard(max_entries=1_000_000)
        self._kernels = KernelRunner()
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}  # (path, intent) -> kernel
        self._metrics = HostMetrics()
        self._tracer = IntentTracer(tree, label)
        self.processed = 0

    def __repr__(self) -> str:
        return f"vsm:{self.label}"

    # ------------------------------------------------------------------ remote methods

    async def start(
        self,
        path: str,
        spec: NodeSpec,
        limits: LimitsSpec,
        parent_policy: PolicySpec,
        incarnation: int,
        systems: tuple[SystemId, ...],
        parent: Any = None,
    ) -> None:
        """Host (a part of) the viable system at ``path`` and run its start (replacing any).

        ``parent`` is the handle of the parent's host, so replies reach the live incarnation.
        """
        vs = ViableSystem(
            path,
            spec,
            limits=limits,
            parent_policy=parent_policy,
            incarnation=incarnation,
            federation=self.tree.federation if path == self.tree.root.name else None,
        )
        self._drop(path)
        self._components[path] = _Component(vs, frozenset(systems), incarnation)
        now = time.time()
        store = self._checkpoints()
        saved = store.load(self.tree.name, path) if store is not None else None
        if saved is not None:
            try:
                self._carry_out(path, vs.restore(saved, incarnation, now))
            except MalformedDataError:
                self._log.exception(
                    "%r: the checkpoint of %s is unreadable; starting fresh",
                    self,
                    path,
                    extra={"vsm_path": path},
                )
        parent_path = parent_of(path)
        if parent is not None and parent_path is not None:  # the host of the parent's S5
            self._handles[self._name_for(Address(parent_path, SystemId.S5))] = parent
        for system in SystemId:
            if system in systems:
                self._carry_out(path, vs.handle(system, Started(), now))
        self._drain()
        if store is not None and self._checkpointing is None:
            self._checkpointing = asyncio.get_running_loop().create_task(self._checkpoint_loop())

    async def deliver(self, path: str, system: SystemId, message: Message) -> None:
        """Hand ``message`` to ``system`` of the viable system at ``path``, if hosted here."""
        self._local.append((path, system, message))
        self._drain()

    async def deliver_batch(self, batch: list[tuple[str, SystemId, Message]]) -> None:
        """Hand over several messages, in order (what another host produced in one turn)."""
        self._local.extend(batch)
        self._drain()

    async def submit_sealed(self, data: bytes) -> Outcome:
        """The client desk for signed intents (rule 9): unseal, then as :meth:`submit`.

        The intent runs as the user its key id names. An envelope that does not unseal (an
        unknown key, a bad signature, expired, replayed, not an intent) is answered with a
        POLICY refusal that gives the reason; nothing runs.
        """
        now = time.time()
        try:
            envelope = unseal(data, self._client_keys(), self._client_guard, now)
            if not isinstance(envelope.body, IntentBody):
                raise ValueError(f"expected an intent, got a {envelope.kind} envelope")
            intent = envelope.body.intent()
        except (ProtocolError, ValueError) as exc:
            reason = getattr(exc, "reason", "invalid")
            return Outcome.refused(
                "<sealed>",
                Status.REJECTED,
                Refusal.POLICY,
                SystemId.S5,
                "<desk>",
                f"the signed intent was refused ({reason}): {exc}",
            )
        # Recorded before it runs: a second copy arriving meanwhile is a replay, not a rerun.
        self._client_guard.record(*replay_id(envelope))
        return await self._submit(dataclasses.replace(intent, user=envelope.sender.key_id))

    async def submit(self, intent: Intent) -> Outcome:
        """The client desk (rule 6): submit ``intent`` to the root and wait for its outcome.

        Raises:
            PermissionError: the tree takes signed intents only (``clients.signed``).
        """
        if self.tree.clients.signed:
            raise PermissionError(
                f"tree {self.tree.name!r} takes signed intents only: give the client an "
                "identity whose public key is in the spec's clients.keys"
            )
        return await self._submit(intent)

    def _client_keys(self) -> KeyStore:
        if self._keys is None:
            self._keys = KeyStore()
            for key_id, public in self.tree.clients.keys.items():
                self._keys.add(key_id, bytes.fromhex(public))
        return self._keys

    async def _submit(self, intent: Intent) -> Outcome:
        started, started_ns = time.monotonic(), time.time_ns()
        outcome = await self._await_outcome(intent)
        self._metrics.outcome(outcome, time.monotonic() - started)
        if self._tracer.enabled:
            self._tracer.intent(intent, outcome, started_ns, time.time_ns())
        return outcome

    async def _await_outcome(self, intent: Intent) -> Outcome:
        root = self.tree.root.name
        if intent.id in self._waiters or intent.id in self._outcomes:
            raise ValueError(f"intent id {intent.id!r} was already submitted")
        if "/" in intent.id:
            raise ValueError(f"intent id {intent.id!r} contains '/', reserved for plan steps")
        now = time.time()
        policy = self.tree.policy.tighten(self.tree.root.policy)
        deadline = intent.deadline if intent.deadline is not None else now + policy.default_deadline
        waiter: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiters[intent.id] = waiter
        self._route(root, Address(root, SystemId.S5), SubmitIntent(intent=intent, reply_to=None))
        self._drain()
        try:
            return await asyncio.wait_for(
                asyncio.shield(waiter), max(0.0, deadline - time.time()) + CLIENT_GRACE
            )
        except TimeoutError:
            outcome = Outcome.refused(
                intent.id,
                Status.FAILED,
                Refusal.DEADLINE,
                SystemId.S5,
                "<client>",
                "no answer from the tree before the deadline",
            )
            self._outcomes.setdefault(intent.id, outcome)
            return self._outcomes[intent.id]
        finally:
            self._waiters.pop(intent.id, None)

    async def client_reply(self, outcome: Outcome) -> None:
        """A terminal outcome for the client, forwarded from another host (rule 6)."""
        self._reply_to_client(outcome)

    async def client_progress(self, progress: IntentProgress) -> None:
        """Progress for the client, forwarded from another host (rule 6)."""
        self._progress_to_client(progress)

    async def cancel(self, intent_id: str, reason: str = "") -> None:
        """Cancel ``intent_id`` (the desk): ``CancelIntent`` to the root's S5 (S1 rule 8)."""
        root = self.tree.root.name
        cancel = CancelIntent(intent_id=intent_id, reason=reason)
        self._route(root, Address(root, SystemId.S5), cancel)
        self._drain()

    async def outcome(self, intent_id: str) -> Outcome | None:
        """The outcome the desk holds for ``intent_id`` (``None`` while there is none)."""
        return self._outcomes.get(intent_id)

    async def progress(self, intent_id: str) -> list[IntentProgress]:
        """The progress the desk received for ``intent_id``, in order."""
        return list(self._progress.get(intent_id, ()))

    async def replies(self) -> dict[str, int]:
        """Intent id -> terminal outcomes the tree sent the client (more than 1: a bug)."""
        return dict(self._replies)

    async def events(self, since: float = 0.0) -> list[Event]:
        """The events this host's components emitted after ``since`` (the last ``MAX_EVENTS``)."""
        return [e for e in self._events if e.at > since]

    async def describe(self, full: bool = True) -> list[dict[str, Any]]:
        """One summary per hosted component (``full=False``: without the registry summary)."""
        out = []
        for path, component in sorted(self._components.items()):
            vs = component.vs
            out.append(
                {
                    "path": path,
                    "host": self.label,
                    "systems": sorted(s.name for s in component.systems),
                    "placement": vs.node.spec.placement,
                    "incarnation": component.incarnation,
                    "in_flight": vs.s1.in_flight if SystemId.S1 in component.systems else None,
                    "units": sorted(vs.s1.units()) if SystemId.S1 in component.systems else None,
                    "children": sorted(vs.node.children),
                    "health": {
                        child: str(vs.s2.health(child, time.time()))
                        for child in sorted(vs.node.children)
                    }
                    if SystemId.S2 in component.systems
                    else None,
                    "registry": _registry_summary(vs)
                    if full and SystemId.S4 in component.systems
                    else None,
                    "pid": os.getpid(),
                }
            )
        return out

    async def watch(self, path: str) -> None:
        """Return once ``path`` is no longer hosted here; fail when this host dies (rule 4)."""
        component = self._components.get(path)
        if component is None:
            return
        await self._gone.setdefault((path, component.incarnation), asyncio.Event()).wait()

    async def drop_within(self, path: str) -> int:
        """Stop hosting every component at or below ``path``; return how many went."""
        gone = [p for p in self._components if is_within(p, path)]
        for p in gone:
            self._drop(p)
        return len(gone)

    async def spawn_child(self, parent: str, path: str, spec: NodeSpec) -> None:
        """Carry out a ``Spawn`` another System of ``parent`` decided (system placement)."""
        if self._holds(parent, SystemId.S5):
            self._spawn_child(parent, path, spec)

    async def stop_child(self, path: str) -> None:
        """Carry out a ``Stop`` another System of the parent decided (system placement)."""
        self._stop_child(path)

    async def forget(self, path: str) -> None:
        """Drop cached handles of the hosts of ``path`` (they were replaced)."""
        for name in [n for n in self._handles if n.split("#", 1)[0] == actor_name(path)]:
            del self._handles[name]

    async def spec(self) -> TreeSpec:
        """The tree's spec (how a client that knows only the tree's name finds the rest)."""
        return self.tree

    async def registry(self, path: str | None = None) -> list[dict[str, Any]]:
        """The live adverts of the registry replica of ``path`` (the root by default)."""
        component = self._components.get(path or self.tree.root.name)
        if component is None or SystemId.S4 not in component.systems:
            return []
        adverts = component.vs.s4.registry.adverts(int(time.time() * 1000))
        fields = ("capability", "provider", "endpoint", "version", "cost", "zone", "description")
        return [
            {**{f: getattr(a, f) for f in fields}, "lease_expires_ms": a.lease_expires_ms}
            for a in adverts
        ]

    async def registry_part(self, path: str) -> dict[str, Any] | None:
        """The part of ``path``'s registry replica about its own subtree, as delta data.

        For the bridge (``actors/_bridge.py``): what a federated root announces to its peers.
        """
        if not self._holds(path, SystemId.S4):
            return None
        return self._components[path].vs.s4.registry.part(path).to_data()

    async def registry_digest(self, path: str) -> list[bytes] | None:
        """The anti-entropy digest of ``path``'s whole registry replica.

        Equal states have equal digests: how tests see two federated roots converge.
        """
        if not self._holds(path, SystemId.S4):
            return None
        return self._components[path].vs.s4.registry.digest()

    async def audit_head(self, path: str) -> tuple[str, int, bytes] | None:
        """(chain, length, head) of ``path``'s S3 audit chain, for a signed checkpoint."""
        if not self._holds(path, SystemId.S3):
            return None
        chain = self._components[path].vs.s3.chain
        return chain.name, len(chain), chain.head

    async def variety(self, path: str) -> dict[str, object]:
        """The variety report of ``path`` (see :meth:`ViableSystem.variety`), if hosted here."""
        component = self._components.get(path)
        if component is None or SystemId.S1 not in component.systems:
            return {}
        return component.vs.variety()

    async def kernel_metrics(self) -> dict[str, Any]:
        """The tunnel controller's metrics and current dispatch frequency (rule 7)."""
        metrics = self._kernels.controller.metrics()
        return {
            "successful_tunnels": metrics.successful_tunnels,
            "failed_tunnels": metrics.failed_tunnels,
            "average_frequency": metrics.average_frequency,
            "utilisation_histogram": list(metrics.utilisation_histogram),
            "frequency": self._kernels.controller.frequency,
            "stopped_tasks": self._kernels.stopped,
        }

    async def metrics(self) -> dict[str, Any]:
        """What this host counted (:mod:`actors._metrics`), with its kernels and load."""
        in_flight = [
            [path, component.vs.s1.in_flight]
            for path, component in sorted(self._components.items())
            if SystemId.S1 in component.systems
        ]
        return {
            "host": self.label,
            "processed": self.processed,
            "in_flight": in_flight,
            "kernels": await self.kernel_metrics(),
            **self._metrics.snapshot(),
        }

    async def processed_count(self) -> int:
        """Messages this host has handed to its components."""
        return self.processed

    async def ping(self) -> str:
        """The host's label (a liveness check)."""
        return self.label

    async def pid(self) -> int:
        """The host's worker process id (for chaos tests)."""
        return os.getpid()

    async def audit_chain(self, path: str) -> dict[str, Any] | None:
        """The audit chain of ``path``'s S3 as plain data, if it is hosted here."""
        if not self._holds(path, SystemId.S3):
            return None
        return self._components[path].vs.s3.chain.to_data()

    async def rules(self, path: str) -> dict[str, Any] | None:
        """The rule set of ``path``'s S3 (its rules' JSON form and counters), if hosted here."""
        if not self._holds(path, SystemId.S3):
            return None
        rules = self._components[path].vs.s3.rules
        stats = rules.statistics()
        return {
            "path": path,
            "rules": [rule.to_data() for rule in rules.rules],
            "version": stats["version"],
            "offered": stats["offered"],
            "stats": stats["rules"],
        }

    async def patch_rules(
        self, path: str, rules: list[dict[str, Any]], remove: list[str]
    ) -> dict[str, Any] | None:
        """Hand ``PatchRules`` to ``path``'s S3 if hosted here; its rule set afterwards.

        The rules were checked by the caller; S3 checks them again (a refusal is an event).
        """
        if not self._holds(path, SystemId.S3):
            return None
        patch = PatchRules(rules=tuple(rules), remove=tuple(remove))
        self._local.append((path, SystemId.S3, patch))
        self._drain()
        return await self.rules(path)

    # ------------------------------------------------------------------ checkpoints

    def _checkpoints(self) -> CheckpointStore | None:
        if self.storage is not None and self._store is None:
            self._store = CheckpointStore(self.storage)
        return self._store

    async def _checkpoint_loop(self) -> None:
        """Save each component whose state changed, every ``CHECKPOINT_EVERY`` seconds."""
        while True:
            await asyncio.sleep(CHECKPOINT_EVERY)
            try:
                self._save_changed()
            except sqlite3.Error:  # a full disk or a locked file: try again next round
                self._log.exception(
                    "%r: checkpointing failed; retrying in %ss", self, CHECKPOINT_EVERY
                )

    def _save_changed(self) -> None:
        store = self._checkpoints()
        if store is None:
            return
        for path, component in list(self._components.items()):
            vs = component.vs
            mark = (
                component.incarnation,
                vs.s5.policy.version,
                len(vs.node.children),
                vs.s4.registry.clock.last,
                len(vs.s4.registry),
                len(vs.s3.chain),
            )
            if self._saved.get(path) == mark:
                continue
            store.save(
                self.tree.name, path, component.incarnation, vs.checkpoint(component.systems)
            )
            self._saved[path] = mark

    # ------------------------------------------------------------------ delivery

    def _drain(self) -> None:
        local, components = self._local, self._components
        while local:
            path, system, message = local.popleft()
            component = components.get(path)
            if component is None or system not in component.systems:
                continue  # not (or no longer) hosted here: lost, as on a network
            self.processed += 1
            self._carry_out(path, component.vs.handle(system, message, time.time()))

    def _route(self, src: str, to: Address, message: Message) -> None:
        component = self._components.get(to.path)
        if component is not None and to.system in component.systems:
            self._local.append((to.path, to.system, message))
            return
        name = self._name_for(to)
        self._outgoing.setdefault(name, []).append((to.path, to.system, message))
        if not self._flush_pending:  # one call per destination host per turn of the loop
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Send what this turn of the event loop produced: one actor call per destination."""
        self._flush_pending = False
        outgoing, self._outgoing = self._outgoing, {}
        for name, batch in outgoing.items():
            handle = self._lookup(name)
            if handle is None:
                self._log.debug(
                    "%r: no host %s; %d messages lost",
                    self,
                    name,
                    len(batch),
                    extra={"vsm_path": batch[0][0]},
                )
            elif len(batch) == 1:
                handle.deliver.remote(*batch[0])
            else:
                handle.deliver_batch.remote(batch)

    def _handle_for(self, to: Address) -> Any:
        return self._lookup(self._name_for(to))

    def _name_for(self, to: Address) -> str:
        if self.tree.federation is not None and not is_within(to.path, self.tree.root.name):
            return BRIDGE  # into a peer tree (actors/_bridge.py)
        return host_name(to.path, to.system, self._placement(to.path), self.pool_size)

    def _lookup(self, name: str) -> Any:
        if name == BRIDGE and time.monotonic() - self._bridge_looked_up > BRIDGE_TTL:
            self._handles.pop(BRIDGE, None)  # a bridge made again under its name is found
            self._bridge_looked_up = time.monotonic()
        return find_actor(name, self.namespace, self._handles)

    def _placement(self, path: str) -> Placement:
        placement = self._placements.get(path)
        if placement is None:
            spec = spec_at(self.tree, path)
            placement = spec.placement if spec is not None else "node"
            if len(self._placements) >= MAX_PLACEMENTS:
                self._placements.clear()
            self._placements[path] = placement
        return placement

    # ------------------------------------------------------------------ effects

    def _carry_out(self, path: str, effects: list[Effect]) -> None:
        for effect in effects:
            kind = type(effect)
            if kind is Send:
                assert isinstance(effect, Send)
                self._route(path, effect.to, effect.message)
            elif kind is Emit:
                assert isinstance(effect, Emit)
                self._events.append(effect.event)
                self._metrics.count(effect.event)
                if self._tracer.enabled:
                    self._tracer.ended(effect.event)
            elif kind is Schedule:
                assert isinstance(effect, Schedule)
                self._schedule(path, effect)
            elif kind is Cancel:
                assert isinstance(effect, Cancel)
                timer = self._timers.pop((path, effect.key), None)
                if timer is not None:
                    timer.cancel()
            elif kind is Reply:
                assert isinstance(effect, Reply)
                if effect.to is None:
                    self._reply_to_client(effect.outcome)
                else:
                    self._route(path, effect.to, IntentFinished(outcome=effect.outcome))
            elif kind is Notify:
                assert isinstance(effect, Notify)
                if effect.to is None:
                    self._progress_to_client(effect.progress)
                else:
                    self._route(path, effect.to, effect.progress)
            elif kind is RunKernel:
                assert isinstance(effect, RunKernel)
                if effect.cpus == 0:  # trivial work: inside the host, no task
                    result, error = run_kernel(BUILTIN_KERNELS, effect.kernel, effect.params)
                    done = KernelFinished(intent_id=effect.intent_id, result=result, error=error)
                    self._route(path, effect.reply_to, done)
                else:
                    key = (path, effect.intent_id)
                    task = self._spawn_task(self._run_kernel(path, effect))
                    self._running[key] = task
                    task.add_done_callback(functools.partial(self._ran, key))
            elif kind is StopKernel:
                assert isinstance(effect, StopKernel)
                running = self._running.pop((path, effect.intent_id), None)
                if running is not None:
                    running.cancel()  # the runner cancels its Ray tasks (actors._kernels)
            elif kind is Spawn:
                assert isinstance(effect, Spawn)
                if self._holds(path, SystemId.S5):
                    self._spawn_child(path, effect.path, effect.spec)
                else:  # one owner for all children of a path: the host of its S5
                    self._handle_for(Address(path, SystemId.S5)).spawn_child.remote(
                        path, effect.path, effect.spec
                    )
            elif kind is Stop:
                assert isinstance(effect, Stop)
                if self._holds(path, SystemId.S5):
                    self._stop_child(effect.path)
                else:
                    self._handle_for(Address(path, SystemId.S5)).stop_child.remote(effect.path)
            else:
                raise TypeError(f"unknown effect {effect!r}")

    def _schedule(self, path: str, effect: Schedule) -> None:
        """Set a timer (rule 10): background ones fire on the host's tick, together."""
        timer = _Timer(path, self._components[path].incarnation, effect)
        if effect.key is not None:
            old = self._timers.pop((path, effect.key), None)
            if old is not None:
                old.cancel()
            self._timers[(path, effect.key)] = timer
        loop = asyncio.get_running_loop()
        if not effect.background:
            timer.handle = loop.call_later(max(0.0, effect.delay), self._fire, [timer])
            return
        due = loop.time() + max(0.0, effect.delay)
        tick = math.ceil(due / TICK) * TICK
        due_then = self._ticks.get(tick)
        if due_then is None:
            self._ticks[tick] = due_then = []
            loop.call_at(tick, self._fire_tick, tick)
        due_then.append(timer)

    def _fire_tick(self, tick: float) -> None:
        self._fire(self._ticks.pop(tick, []))

    def _fire(self, timers: list[_Timer]) -> None:
        """Deliver what ``timers`` carry, then drain once: their sends leave batched."""
        for timer in timers:
            if timer.cancelled:
                continue
            effect = timer.effect
            if effect.key is not None and self._timers.get((timer.path, effect.key)) is timer:
                del self._timers[(timer.path, effect.key)]
            current = self._components.get(timer.path)
            if current is None or current.incarnation != timer.incarnation:
                continue  # the component it was set for is gone
            self._route(timer.path, effect.to, effect.message)
        self._drain()

    async def _run_kernel(self, path: str, effect: RunKernel) -> None:
        started_ns = time.time_ns()
        result, error = await self._kernels.run(effect.kernel, effect.params, effect.cpus)
        if self._tracer.enabled:
            ended_ns = time.time_ns()
            self._tracer.kernel(path, effect.intent_id, effect.kernel, started_ns, ended_ns, error)
        done = KernelFinished(intent_id=effect.intent_id, result=result, error=error)
        self._route(path, effect.reply_to, done)
        self._drain()

    def _ran(self, key: tuple[str, str], task: asyncio.Task[None]) -> None:
        if self._running.get(key) is task:
            del self._running[key]

    def _spawn_task(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ children

    def _spawn_child(self, parent: str, path: str, spec: NodeSpec) -> None:
        owner = self._components.get(parent)
        if owner is None:
            return
        self._incarnations[path] = incarnation = self._incarnations.get(path, 0) + 1
        limits = owner.vs.node.limits
        policy = owner.vs.s5.policy
        self._spawn_task(self._start_child(parent, path, spec, limits, policy, incarnation))

    async def _start_child(
        self,
        parent: str,
        path: str,
        spec: NodeSpec,
        limits: LimitsSpec,
        policy: PolicySpec,
        incarnation: int,
    ) -> None:
        self._kill_owned(path)
        me = ray.get_runtime_context().current_actor
        placement = spec.placement
        try:
            if placement == "pooled":
                pool = self._lookup(pool_name(pool_index(path, self.pool_size)))
                if pool is None:
                    raise RuntimeError("the tree's pool is not running")
                await pool.start.remote(
                    path, spec, limits, policy, incarnation, tuple(SystemId), me
                )
                handles = [pool]
            else:
                parts = (
                    [(actor_name(path, s), (s,)) for s in SystemId]
                    if placement == "system"
                    else [(actor_name(path), tuple(SystemId))]
                )
                handles = []
                for name, _ in parts:
                    handle = await self._create(name, name[len(PREFIX) :])
                    handles.append(handle)
                    self._handles[name] = handle
                self._owned[path] = handles
                await asyncio.gather(
                    *(
                        h.start.remote(path, spec, limits, policy, incarnation, systems, me)
                        for h, (_, systems) in zip(handles, parts, strict=True)
                    )
                )
            self._tell_siblings(parent, path)
        except (ray.exceptions.RayError, RuntimeError, ValueError) as exc:
            if self._incarnations.get(path) == incarnation:
                failed = SpawnFailed(path=path, reason=f"{type(exc).__name__}: {exc}")
                self._route(parent, Address(parent, SystemId.S5), failed)
                self._drain()
            return
        for handle in handles:
            self._spawn_task(self._watch(parent, path, handle, incarnation))
        # The model gave the child its grace when it decided the spawn; starting a process can
        # take longer than that on a busy machine, so the grace starts again now that it runs.
        started = ChildSpawned(path=path, offers=frozenset(spec.offered()))
        self._route(parent, Address(parent, SystemId.S2), started)
        self._drain()

    async def _create(self, name: str, label: str) -> Any:
        """Create a control actor named ``name``, owned by this host (retrying a taken name)."""
        for attempt in range(SPAWN_RETRIES):
            try:
                return HostActor.options(name=name, namespace=self.namespace).remote(
                    self.tree, label, self.pool_size, self.storage
                )
            except ValueError:  # the name is still held by a dying incarnation
                if attempt == SPAWN_RETRIES - 1:
                    raise
                await asyncio.sleep(SPAWN_RETRY_DELAY)
        raise AssertionError("unreachable")

    async def _watch(self, parent: str, path: str, handle: Any, incarnation: int) -> None:
        """Death-watch (rule 4): report the child lost when its host dies."""
        try:
            await handle.watch.remote(path)
        except ray.exceptions.RayError as exc:
            if self._incarnations.get(path) != incarnation or parent not in self._components:
                return  # replaced or stopped on purpose
            reason = f"its host died ({type(exc).__name__})"
            self._route(parent, Address(parent, SystemId.S2), UnitLost(unit=path, reason=reason))
            self._drain()

    def _tell_siblings(self, parent: str, path: str) -> None:
        """Make the other hosts of a ``system``-placed ``parent`` forget ``path``'s old handles.

        Only this host (the one of the parent's S5) created the new ones.
        """
        if self._placement(parent) != "system":
            return
        for system in SystemId:
            if system is not SystemId.S5:
                sibling = self._lookup(actor_name(parent, system))
                if sibling is not None:
                    sibling.forget.remote(path)

    def _stop_child(self, path: str) -> None:
        self._incarnations[path] = self._incarnations.get(path, 0) + 1  # disarm the watches
        store = self._checkpoints()
        if store is not None:  # stopped for good: a later spawn starts afresh
            store.forget(self.tree.name, path)
        self._kill_owned(path)
        parent = parent_of(path)
        if parent is not None:
            self._tell_siblings(parent, path)
        for p in list(self._owned):
            if is_within(p, path):
                self._kill_owned(p)
        for index in range(self.pool_size):  # 0 when the tree has no pool
            pool = self._lookup(pool_name(index))
            if pool is not None:
                pool.drop_within.remote(path)

    def _kill_owned(self, path: str) -> None:
        for handle in self._owned.pop(path, []):
            with contextlib.suppress(Exception):
                ray.kill(handle, no_restart=True)
        for name in [n for n in self._handles if n.split("#", 1)[0] == actor_name(path)]:
            del self._handles[name]

    def _drop(self, path: str) -> None:
        component = self._components.pop(path, None)
        if component is None:
            return
        gone = self._gone.pop((path, component.incarnation), None)
        if gone is not None:
            gone.set()
        for key in [k for k in self._timers if k[0] == path]:
            self._timers.pop(key).cancel()

    # ------------------------------------------------------------------ the client desk

    def _reply_to_client(self, outcome: Outcome) -> None:
        if not self._is_desk():
            desk = self._desk()
            if desk is not None:
                desk.client_reply.remote(outcome)
            return
        intent_id = outcome.intent_id
        self._replies[intent_id] += 1
        if intent_id in self._outcomes:
            return
        self._outcomes[intent_id] = outcome
        _keep_newest(self._outcomes, MAX_OUTCOMES)
        _keep_newest(self._replies, MAX_OUTCOMES)
        waiter = self._waiters.get(intent_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)

    def _progress_to_client(self, progress: IntentProgress) -> None:
        if not self._is_desk():
            desk = self._desk()
            if desk is not None:
                desk.client_progress.remote(progress)
            return
        self._progress.setdefault(progress.intent_id, []).append(progress)
        _keep_newest(self._progress, MAX_PROGRESS)

    def _holds(self, path: str, system: SystemId) -> bool:
        component = self._components.get(path)
        return component is not None and system in component.systems

    def _is_desk(self) -> bool:
        return self._holds(self.tree.root.name, SystemId.S5)

    def _desk(self) -> Any:
        return self._handle_for(Address(self.tree.root.name, SystemId.S5))


HostActor: Any = ray.remote(num_cpus=0, max_restarts=0, max_concurrency=MAX_CONCURRENCY)(Host)  # type: ignore[call-overload]
"""The Ray actor class of :class:`Host`: a control actor (``num_cpus=0``)."""
