"""The deterministic simulator: a whole tree of viable systems in one process, on virtual time.

Rules:
    1. One seed, one history: every random choice (loss, duplication, delay) comes from one
       seeded generator, and events at equal times run in the order they were queued.
    2. Messages between the Systems of one viable system are local: in order, never lost, and
       delivered at once (before the next timed event), as a node host's function calls are.
       Messages between viable systems cross the network, which may drop, duplicate, delay
       (and so reorder) them, and cuts partitioned subtrees apart.
    3. A crashed viable system loses its state; messages and timers addressed to it are dropped
       until it is restarted (by ``restart``, or by its parent's S3 through ``Spawn``).
    4. The simulation is the client: ``submit`` hands an intent to the root's S5, and the first
       terminal outcome the tree returns for it is *the* outcome. A client-side timeout (the
       deadline plus a grace) records the intent as lost; later answers only show in replies().
    5. ``run_until_quiet`` runs until nothing but background timers (heartbeats, sweeps,
       gossip) is pending and no registry has changed for a settle window.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from vsm.address import Address, SystemId, depth, is_within, parent_of
from vsm.audit import Signer
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
from vsm.intents import Intent, Outcome, Refusal, Status
from vsm.kernels import BUILTIN_KERNELS, Kernel, run_kernel
from vsm.messages import (
    Algedonic,
    CancelIntent,
    IntentFinished,
    IntentProgress,
    KernelFinished,
    Message,
    PatchPolicy,
    SpawnFailed,
    SubmitIntent,
)
from vsm.sim._network import Network, NetworkConfig
from vsm.spec import PolicySpec, TreeSpec
from vsm.systems import ViableSystem

__all__ = ["Simulation"]

_CHANGES = ("registry.changed", "spawn", "unit.")  # events that restart the settle window
CLIENT_GRACE = 5.0  # seconds past an intent's deadline before the client calls it lost
KERNEL_LATENCY = 0.002


_Queued = tuple[float, int, Address, Message, int, bool]
"""A timed event: ``(at, seq, to, message, incarnation, background)``; ``seq`` breaks ties."""


@dataclass(slots=True)
class _ClientIntent:
    intent: Intent
    submitted: float
    deadline: float


class Simulation:
    """Run a tree of viable systems on virtual time.

    Args:
        spec: The tree.
        seed: Seeds every random choice of the network.
        network: How hostile the network is (reliable by default).
        kernels: Kernels the leaf units run (the built-ins by default).
        signer: Signs S3 audit checkpoints (optional).
        kernel_latency: Virtual seconds a kernel takes (its result is computed when it
            starts and delivered then).
    """

    def __init__(
        self,
        spec: TreeSpec,
        *,
        seed: int = 0,
        network: NetworkConfig | None = None,
        kernels: Mapping[str, Kernel] | None = None,
        signer: Signer | None = None,
        kernel_latency: float = KERNEL_LATENCY,
    ) -> None:
        if not (math.isfinite(kernel_latency) and kernel_latency >= 0):
            raise ValueError(f"kernel_latency must be a finite number >= 0, got {kernel_latency!r}")
        self.spec = spec
        self.kernel_latency = kernel_latency
        self.seed = seed
        self.now = 0.0
        self.network = Network(network or NetworkConfig(), random.Random(seed))  # noqa: S311
        self.kernels = dict(kernels or BUILTIN_KERNELS)
        self.signer = signer
        self._queue: list[_Queued] = []
        self._local: deque[tuple[Address, Message, bool]] = deque()
        self._timers: dict[tuple[str, str], tuple[int, bool]] = {}  # key -> (seq, background)
        self._timer_keys: dict[int, tuple[str, str]] = {}  # seq -> key, while pending
        self._cancelled: set[int] = set()
        self._seq = 0
        self._foreground = 0
        self._nodes: dict[str, ViableSystem | None] = {}
        self._incarnation: dict[str, int] = {}  # a plain dict: Counter's __missing__ is slow
        self._events: list[Event] = []
        self._outcomes: dict[str, Outcome] = {}
        self._client: dict[str, _ClientIntent] = {}
        self._lost: set[str] = set()
        self._replies_to_client: Counter[str] = Counter()
        self._progress: dict[str, list[IntentProgress]] = {}
        self._failing_spawns: set[str] = set()
        self._stopped_kernels: list[tuple[str, str]] = []  # (path, intent id)
        self._last_change = 0.0
        self.processed = 0
        self.max_depth_seen = 0
        self._start(ViableSystem.root(spec, signer=signer))

    # ------------------------------------------------------------------ public API

    @property
    def root(self) -> str:
        """The root's path."""
        return self.spec.root.name

    def submit(self, intent: Intent) -> str:
        """Hand ``intent`` to the root's S5 now; return its id."""
        if intent.id in self._client:
            raise ValueError(f"intent id {intent.id!r} was already submitted")
        if "/" in intent.id:
            raise ValueError(f"intent id {intent.id!r} contains '/', reserved for plan steps")
        default = self.spec.policy.tighten(self.spec.root.policy).default_deadline
        deadline = intent.deadline if intent.deadline is not None else self.now + default
        self._client[intent.id] = _ClientIntent(intent, self.now, deadline)
        self._push(
            self.now,
            Address(self.root, SystemId.S5),
            SubmitIntent(intent=intent, reply_to=None),
            background=False,
        )
        return intent.id

    def cancel(self, intent_id: str, reason: str = "") -> None:
        """Cancel ``intent_id``: ``CancelIntent`` to the root's S5 now (S1 rule 8)."""
        message = CancelIntent(intent_id=intent_id, reason=reason)
        self._push(self.now, Address(self.root, SystemId.S5), message, False)

    def patch_policy(self, path: str, policy: PolicySpec) -> None:
        """Send a policy patch to the S5 of ``path``."""
        self._push(self.now, Address(path, SystemId.S5), PatchPolicy(policy=policy), False)

    def signal(self, path: str, intensity: float, detail: str = "") -> None:
        """Raise an algedonic signal at ``path`` (it goes straight to that S5)."""
        message = Algedonic(source=path, intensity=intensity, detail=detail)
        self._push(self.now, Address(path, SystemId.S5), message, False)

    def partition(self, a: str, b: str) -> None:
        """Cut the subtrees at ``a`` and ``b`` apart (see ``Network.partition``)."""
        self.network.partition(a, b)
        self._emit("sim.partition", a, other=b)

    def heal(self) -> None:
        """Remove every partition."""
        self.network.heal()
        self._emit("sim.heal", self.root)

    def crash(self, path: str) -> None:
        """Crash the viable system at ``path``: its state is lost (rule 3)."""
        if self._nodes.get(path) is None:
            raise KeyError(f"no running viable system at {path!r}")
        self._nodes[path] = None
        self._incarnation[path] = self._incarnation.get(path, 0) + 1
        self._emit("sim.crash", path)

    def restart(self, path: str) -> None:
        """Restart a crashed viable system from its spec."""
        if path not in self._nodes:
            raise KeyError(f"no viable system was ever at {path!r}")
        if self._nodes[path] is not None:
            raise ValueError(f"{path!r} is running; crash it first")
        self._emit("sim.restart", path)
        self._spawn(path)

    def fail_spawns(self, path: str, failing: bool = True) -> None:
        """Make every start of a child at ``path`` fail (the parent's S5 gets ``SpawnFailed``)."""
        if failing:
            self._failing_spawns.add(path)
        else:
            self._failing_spawns.discard(path)

    def run_until_quiet(self, max_time: float = 120.0, settle: float | None = None) -> bool:
        """Run until quiet (rule 5) or until ``max_time`` virtual seconds pass.

        Args:
            max_time: The most virtual time to run.
            settle: How long nothing but background chatter must happen; by default long
                enough for a silent unit to be declared dead and for anti-entropy to run.

        Returns:
            Whether the run went quiet (``False``: it stopped at ``max_time``).
        """
        if settle is None:
            limits = self.spec.limits
            settle = limits.dead_after + 2 * limits.heartbeat_every + 4 * limits.gossip_every
        stop = self.now + max_time
        quiet = False
        while self._queue and self._queue[0][0] <= stop:
            if self._foreground == 0 and self.now - self._last_change >= settle:
                quiet = True
                break
            self._step()
        else:
            self.now = stop
            quiet = self._foreground == 0 and self.now - self._last_change >= settle
        self._sweep_client()
        return quiet

    def run_for(self, seconds: float) -> None:
        """Run every event due in the next ``seconds`` of virtual time."""
        stop = self.now + seconds
        while self._queue and self._queue[0][0] <= stop:
            self._step()
        self.now = stop
        self._sweep_client()

    def outcomes(self) -> dict[str, Outcome]:
        """Intent id -> the terminal outcome the client received (rule 4)."""
        return dict(self._outcomes)

    def progress(self, intent_id: str) -> list[IntentProgress]:
        """The progress the client received for an intent, in order of arrival."""
        return list(self._progress.get(intent_id, ()))

    def stopped_kernels(self) -> list[tuple[str, str]]:
        """``(path, intent id)`` of every kernel a System stopped (``StopKernel``), in order.

        A simulated kernel has computed its result when it starts; a stopped one's
        ``KernelFinished`` still arrives, and is dropped by the System that asked.
        """
        return list(self._stopped_kernels)

    def lost(self) -> set[str]:
        """Intents the client timed out on."""
        return set(self._lost)

    def replies(self) -> dict[str, int]:
        """Intent id -> how many terminal outcomes the tree sent the client."""
        return dict(self._replies_to_client)

    def history(self) -> list[Event]:
        """Every event emitted, in order."""
        return list(self._events)

    def node(self, path: str) -> ViableSystem:
        """The running viable system at ``path``."""
        found = self._nodes.get(path)
        if found is None:
            raise KeyError(f"no running viable system at {path!r}")
        return found

    def paths(self) -> list[str]:
        """Paths of the running viable systems, sorted."""
        return sorted(p for p, n in self._nodes.items() if n is not None)

    def tree(self) -> dict[str, dict[str, Any]]:
        """Path -> a summary of each viable system, crashed ones included."""
        out: dict[str, dict[str, Any]] = {}
        for path in sorted(self._nodes):
            vs = self._nodes[path]
            out[path] = {
                "alive": vs is not None,
                "depth": depth(path),
                "parent": parent_of(path),
                "placement": vs.node.spec.placement if vs is not None else None,
                "in_flight": vs.s1.in_flight if vs is not None else 0,
                "units": sorted(vs.s1.units()) if vs is not None else [],
            }
        return out

    def statistics(self) -> dict[str, float]:
        """Messages processed, virtual time, queue length, nodes running."""
        return {
            "processed": self.processed,
            "now": self.now,
            "queued": len(self._queue),
            "running": len(self.paths()),
        }

    # ------------------------------------------------------------------ the loop

    def _step(self) -> None:
        at, seq, to, message, incarnation, background = heapq.heappop(self._queue)
        if self._timer_keys:
            key = self._timer_keys.pop(seq, None)
            if key is not None and self._timers.get(key, (0,))[0] == seq:
                del self._timers[key]
        if self._cancelled and seq in self._cancelled:
            self._cancelled.discard(seq)
            return
        if not background:
            self._foreground -= 1
        if at > self.now:
            self.now = at
        vs = self._nodes.get(to.path)
        if vs is None or self._incarnation.get(to.path, 0) != incarnation:
            return
        self.processed += 1
        self._carry_out(to.path, vs.handle(to.system, message, self.now), background)
        self._drain_local()

    def _drain_local(self) -> None:
        """Deliver the messages between Systems of one viable system, in order, now (rule 2)."""
        local, nodes = self._local, self._nodes
        while local:
            to, message, background = local.popleft()
            vs = nodes.get(to.path)
            if vs is None:
                continue
            self.processed += 1
            self._carry_out(to.path, vs.handle(to.system, message, self.now), background)

    def _push(self, at: float, to: Address, message: Message, background: bool) -> int:
        self._seq += 1
        if not background:
            self._foreground += 1
        incarnation = self._incarnation.get(to.path, 0)
        heapq.heappush(self._queue, (at, self._seq, to, message, incarnation, background))
        return self._seq

    def _carry_out(self, path: str, effects: list[Effect], background: bool) -> None:
        # Dispatch on the exact type, most frequent first: this loop runs for every message.
        for effect in effects:
            kind = type(effect)
            if kind is Send:
                effect = cast(Send, effect)
                to = effect.to
                if to.path == path:
                    self._local.append((to, effect.message, background))
                else:
                    self._send(path, to, effect.message, background)
            elif kind is Emit:
                effect = cast(Emit, effect)
                event = effect.event
                self._events.append(event)
                if event.kind.startswith(_CHANGES):
                    self._last_change = self.now
            elif kind is Schedule:
                effect = cast(Schedule, effect)
                seq = self._push(
                    self.now + effect.delay, effect.to, effect.message, effect.background
                )
                if effect.key is not None:
                    key = (path, effect.key)
                    self._timers[key] = (seq, effect.background)
                    self._timer_keys[seq] = key
            elif kind is Cancel:
                effect = cast(Cancel, effect)
                timer = self._timers.pop((path, effect.key), None)
                if timer is not None:
                    seq, timer_background = timer
                    self._timer_keys.pop(seq, None)
                    self._cancelled.add(seq)
                    if not timer_background:
                        self._foreground -= 1
            elif kind is Reply:
                effect = cast(Reply, effect)
                if effect.to is None:
                    self._reply_to_client(effect.outcome)
                else:
                    self._send(path, effect.to, IntentFinished(outcome=effect.outcome), background)
            elif kind is Notify:
                effect = cast(Notify, effect)
                if effect.to is None:
                    self._progress.setdefault(effect.progress.intent_id, []).append(effect.progress)
                else:
                    self._send(path, effect.to, effect.progress, background)
            elif kind is RunKernel:
                effect = cast(RunKernel, effect)
                result, error = run_kernel(self.kernels, effect.kernel, effect.params)
                done = KernelFinished(intent_id=effect.intent_id, result=result, error=error)
                self._push(self.now + self.kernel_latency, effect.reply_to, done, background)
            elif kind is StopKernel:
                effect = cast(StopKernel, effect)
                self._stopped_kernels.append((path, effect.intent_id))
            elif kind is Spawn:
                effect = cast(Spawn, effect)
                self._spawn(effect.path)
            elif kind is Stop:
                effect = cast(Stop, effect)
                self._stop(effect.path)
            else:
                raise TypeError(f"unknown effect {effect!r}")

    def _send(self, src: str, to: Address, message: Message, background: bool) -> None:
        if to.path == src:
            self._local.append((to, message, background))
            return
        for delay in self.network.delays(src, to.path):
            self._push(self.now + delay, to, message, background)

    # ------------------------------------------------------------------ lifecycle

    def _start(self, vs: ViableSystem) -> None:
        path = vs.path
        self._nodes[path] = vs
        self.max_depth_seen = max(self.max_depth_seen, depth(path))
        self._last_change = self.now
        self._carry_out(path, vs.start(self.now), background=False)
        self._drain_local()

    def _spawn(self, path: str) -> None:
        parent = parent_of(path)
        if parent is None:
            self._incarnation[path] = self._incarnation.get(path, 0) + 1
            inc = self._incarnation[path]
            self._start(ViableSystem.root(self.spec, signer=self.signer, incarnation=inc))
            return
        owner = self._nodes.get(parent)
        spec = owner.node.children.get(path) if owner is not None else None
        if owner is None or spec is None:
            self._emit("sim.spawn_failed", path, reason=f"parent {parent!r} cannot spawn it")
            return
        if path in self._failing_spawns:
            # The host could not start it: the parent's S5 hears so, as from a real host.
            failed = SpawnFailed(path=path, reason="the simulation was told to fail this spawn")
            self._local.append((Address(parent, SystemId.S5), failed, False))
            return
        self._incarnation[path] = self._incarnation.get(path, 0) + 1
        inc = self._incarnation[path]
        self._start(owner.child(path, spec, signer=self.signer, incarnation=inc))

    def _stop(self, path: str) -> None:
        for other in list(self._nodes):
            if is_within(other, path) and self._nodes[other] is not None:
                self._nodes[other] = None
                self._incarnation[other] = self._incarnation.get(other, 0) + 1

    # ------------------------------------------------------------------ the client

    def _reply_to_client(self, outcome: Outcome) -> None:
        intent_id = outcome.intent_id
        self._replies_to_client[intent_id] += 1
        if intent_id in self._outcomes:
            return  # a late answer: counted by replies(), never a second outcome
        self._outcomes[intent_id] = outcome

    def _sweep_client(self) -> None:
        """Record as lost every intent still unanswered past its deadline plus the grace."""
        for intent_id, asked in self._client.items():
            if intent_id in self._outcomes or asked.deadline + CLIENT_GRACE > self.now:
                continue
            self._lost.add(intent_id)
            self._outcomes[intent_id] = Outcome.refused(
                intent_id,
                Status.FAILED,
                Refusal.DEADLINE,
                SystemId.S5,
                "<client>",
                "no answer from the tree before the deadline",
            )

    def _emit(self, kind: str, path: str, **data: object) -> None:
        """Record a change the simulation made from outside; it restarts the settle window."""
        self._events.append(Event(kind=kind, path=path, at=self.now, data=data))
        self._last_change = self.now
