"""System 5, policy: identity and closure.

Rules:
    1. Every intent passes S5 first. It is refused (POLICY) when its user is not granted its
       zone, it carries more parameters than allowed, or its deadline has already passed, or a
       client sends an id with ``/`` (reserved for the steps of plans, ``plan/k``). An
       intent id S5 has seen (until its deadline) is never run twice: the repeat goes to S1 as
       ``Redeliver``, which answers again if the intent has ended (the first answer may have
       been lost) and otherwise ignores it.
    2. The effective policy is the parent's, tightened by the local one (never loosened). A
       patch must raise the version; it applies to intents admitted after it, never to those in
       flight, and is passed down to the children — at once, and again every gossip period
       (a background timer), so a lost message only delays it.
    3. The recursion guard: a spawn is refused when the child (or its static subtree) would be
       deeper than ``max_depth`` (DEPTH_GUARD) or while the spawn circuit breaker is open
       (CIRCUIT_OPEN). The breaker counts ``SpawnFailed`` reports and closes again on a spawned
       child's first heartbeat (``ChildStarted``), not on the decision to spawn.
    4. The homeostat: every proposal (S4 wanting change, S3 wanting stability) is decided here
       and recorded with its reason. While S3's latest strain report is fresh (two audit
       periods), S5 holds steady: S4's spawn proposals are refused (POLICY) with S3's reason.
    5. Algedonic signals are recorded here, and forwarded to the parent's S5 while their
       intensity reaches the parent's threshold. A federated root sends the signals of its own
       tree that reach the federation's threshold to its peers' roots (a peer's signal does
       not go back out).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from vsm.address import SystemId, depth, is_within
from vsm.effects import Effect, Emit, Event, Reply, Schedule, Send, Spawn
from vsm.intents import Outcome, Refusal, Status
from vsm.mechanisms import CircuitBreaker
from vsm.messages import (
    Algedonic,
    CancelIntent,
    ChildSpawned,
    ChildStarted,
    Dispatch,
    Message,
    ParentPolicy,
    PatchPolicy,
    PolicyTick,
    ProposeSpawn,
    Redeliver,
    ReportStrain,
    SpawnFailed,
    Started,
    SubmitIntent,
    UnitDown,
)
from vsm.spec import PolicySpec
from vsm.systems._node import Node

__all__ = ["Decision", "System5"]


@dataclass(frozen=True, slots=True)
class Decision:
    """One homeostat decision: what was proposed, by whom, and why it went as it did."""

    at: float
    by: SystemId
    proposal: str
    accepted: bool
    why: str


class System5:
    """Policy, recursion guard, homeostat and algedonic receiver of one viable system."""

    __slots__ = (
        "_breaker",
        "_local",
        "_refused",
        "_seen",
        "_seen_expiry",
        "_steady",
        "decisions",
        "node",
        "parent_policy",
        "policy",
        "signals",
    )

    def __init__(self, node: Node) -> None:
        self.node = node
        self._local: PolicySpec | None = node.spec.policy
        self.parent_policy = node.parent_policy
        self.policy = node.policy
        self._breaker = CircuitBreaker(
            self.policy.spawn_failure_threshold, self.policy.spawn_reset_after
        )
        self._seen: set[str] = set()
        self._seen_expiry: list[tuple[float, str]] = []
        self.decisions: list[Decision] = []
        self._refused: list[tuple[str, str]] = []
        self._prune_children()
        self._steady: tuple[float, str] = (float("-inf"), "")
        self.signals: list[Algedonic] = []

    def handle(self, message: Message, now: float) -> list[Effect]:
        """Handle one message; return the effects for the host."""
        match message:
            case SubmitIntent():
                return self._submit(message, now)
            case CancelIntent():
                return [Send(to=self.node.at(SystemId.S1), message=message)]
            case Started():
                return [*self._start_children(now), self._policy_tick()]
            case PolicyTick():
                return [*self._tell_children(), self._policy_tick()]
            case ProposeSpawn():
                return self._propose_spawn(message, now)
            case SpawnFailed(path=path, reason=reason):
                self._breaker.record_failure(now)
                self.node.children.pop(path, None)
                return [
                    self._emit("spawn.failed", now, path=path, reason=reason),
                    # Work already routed to the child that never started moves or fails now.
                    Send(to=self.node.at(SystemId.S1), message=UnitDown(unit=path)),
                ]
            case Algedonic():
                return self._algedonic(message, now)
            case PatchPolicy(policy=policy):
                return self._patch(policy, now)
            case ChildStarted():
                self._breaker.record_success(now)
                return []
            case ParentPolicy(policy=policy):
                if policy == self.parent_policy or policy.version < self.parent_policy.version:
                    return []  # a repeat, or a delayed older one: never roll back
                self.parent_policy = policy
                return self._recompute(now)
            case ReportStrain(level=level, detail=detail):
                self._steady = (now + 2 * self.node.limits.audit_every, detail)
                self.decisions.append(
                    Decision(now, SystemId.S3, f"hold steady (strain {level:.2f})", True, detail)
                )
                return [self._emit("homeostat.steady", now, level=level, detail=detail)]
            case _:
                return []

    def _prune_children(self) -> None:
        """Drop static children that would break the depth guard (rule 3), before S1 sees them."""
        guard = self.policy.max_depth
        for path, spec in sorted(self.node.children.items()):
            deepest = depth(path) + spec.height()
            if deepest > guard:
                del self.node.children[path]
                why = f"{path} would reach depth {deepest}; the guard is {guard}"
                self._refused.append((path, why))

    def _start_children(self, now: float) -> list[Effect]:
        """The static children start with their parent; refused ones are reported."""
        effects: list[Effect] = []
        for path, why in self._refused:
            self.decisions.append(Decision(now, SystemId.S5, f"start {path}", False, why))
            effects.append(self._emit("spawn.refused", now, path=path, reason=why))
        self._refused.clear()
        effects += [Spawn(path=p, spec=spec) for p, spec in sorted(self.node.children.items())]
        return effects

    # ------------------------------------------------------------------ intents

    def _submit(self, message: SubmitIntent, now: float) -> list[Effect]:
        intent, reply_to = message.intent, message.reply_to
        self._expire(now)
        if intent.id in self._seen:
            redeliver = Redeliver(intent_id=intent.id, reply_to=reply_to)
            return [Send(to=self.node.at(SystemId.S1), message=redeliver)]
        policy = self.policy
        problem = None
        if reply_to is None and "/" in intent.id:
            problem = f"intent id {intent.id!r} contains '/', which is reserved for plan steps"
        elif not policy.grants(intent.user, intent.zone):
            problem = f"user {intent.user!r} is not granted zone {intent.zone!r}"
        elif len(intent.params) > policy.max_params:
            problem = f"{len(intent.params)} parameters; the policy allows {policy.max_params}"
        deadline = intent.deadline if intent.deadline is not None else now + policy.default_deadline
        if problem is None and deadline <= now:
            problem = f"deadline {deadline} has already passed (now {now})"
        if problem is not None:
            outcome = Outcome.refused(
                intent.id, Status.REJECTED, Refusal.POLICY, SystemId.S5, self.node.path, problem
            )
            return [Reply(to=reply_to, outcome=outcome), self._emit_outcome(outcome, now)]
        self._seen.add(intent.id)
        heapq.heappush(self._seen_expiry, (deadline, intent.id))
        return [
            self._emit("intent.accepted", now, intent=intent.id, user=intent.user),
            Send(
                to=self.node.at(SystemId.S1),
                message=Dispatch(intent=intent, reply_to=reply_to, deadline=deadline),
            ),
        ]

    def _expire(self, now: float) -> None:
        expiry = self._seen_expiry
        while expiry and expiry[0][0] < now:
            self._seen.discard(heapq.heappop(expiry)[1])

    # ------------------------------------------------------------------ recursion guard

    def _propose_spawn(self, message: ProposeSpawn, now: float) -> list[Effect]:
        node = self.node
        path = f"{node.path}/{message.template.name}"
        proposal = f"spawn {path} ({message.why})"
        effects: list[Effect] = []
        refusal: tuple[Refusal, str] | None = None
        if path in node.children:
            # Running already (a concurrent proposal won): make sure S1 routes to it again.
            why = "already running"
            offers = frozenset(node.children[path].offered())
            effects.append(
                Send(to=node.at(SystemId.S1), message=ChildSpawned(path=path, offers=offers))
            )
        elif (deepest := depth(path) + message.template.height()) > self.policy.max_depth:
            refusal = (
                Refusal.DEPTH_GUARD,
                f"{path} would reach depth {deepest}; the guard is {self.policy.max_depth}",
            )
        elif now < self._steady[0]:
            refusal = (Refusal.POLICY, f"holding steady while S3 reports: {self._steady[1]}")
        elif not self._breaker.allow(now):
            refusal = (Refusal.CIRCUIT_OPEN, "spawning failed too often; the breaker is open")
        if refusal is None:
            if path not in node.children:
                node.children[path] = message.template
                why = "demand without a unit"
                offers = frozenset(message.template.offered())
                effects += [
                    Spawn(path=path, spec=message.template),
                    self._emit("spawn", now, path=path, by=str(message.by)),
                    *(
                        Send(to=node.at(s), message=ChildSpawned(path=path, offers=offers))
                        for s in (SystemId.S1, SystemId.S2, SystemId.S3, SystemId.S4)
                    ),
                ]
            accepted = True
            if message.intent is not None:
                effects.append(
                    Send(
                        to=node.at(SystemId.S1),
                        message=Dispatch(
                            intent=message.intent,
                            reply_to=message.reply_to,
                            deadline=message.deadline,
                        ),
                    )
                )
        else:
            accepted, (reason, why) = False, refusal
            effects.append(self._emit("spawn.refused", now, path=path, reason=str(reason)))
            if message.intent is not None:
                outcome = Outcome.refused(
                    message.intent.id, Status.REJECTED, reason, SystemId.S5, node.path, why
                )
                effects.append(Reply(to=message.reply_to, outcome=outcome))
        self.decisions.append(Decision(now, message.by, proposal, accepted, why))
        return effects

    # ------------------------------------------------------------------ policy

    def _patch(self, policy: PolicySpec, now: float) -> list[Effect]:
        current = self._local.version if self._local is not None else self.policy.version
        if policy.version <= current:
            why = f"patch version {policy.version} does not raise the current {current}"
            return [self._emit("policy.refused", now, reason=why)]
        self._local = policy
        return self._recompute(now)

    def _recompute(self, now: float) -> list[Effect]:
        self.policy = self.parent_policy.tighten(self._local)
        return [
            self._emit("policy.patched", now, version=self.policy.version),
            *self._tell_children(),
        ]

    def _tell_children(self) -> list[Effect]:
        told = ParentPolicy(policy=self.policy)
        return [
            Send(to=self.node.at(SystemId.S5, c), message=told) for c in sorted(self.node.children)
        ]

    def _policy_tick(self) -> Schedule:
        return Schedule(
            delay=self.node.limits.gossip_every,
            to=self.node.at(SystemId.S5),
            message=PolicyTick(),
            background=True,
        )

    # ------------------------------------------------------------------ algedonic

    def _algedonic(self, signal: Algedonic, now: float) -> list[Effect]:
        self.signals.append(signal)
        effects: list[Effect] = [
            self._emit("algedonic", now, source=signal.source, intensity=signal.intensity)
        ]
        node = self.node
        parent = node.parent
        if parent is not None and abs(signal.intensity) >= self.parent_policy.algedonic_threshold:
            effects.append(Send(to=node.at(SystemId.S5, parent), message=signal))
        elif (
            parent is None
            and node.peers
            and abs(signal.intensity) >= node.federation_threshold
            and is_within(signal.source, node.path)  # a peer's signal does not echo back
        ):
            effects += [Send(to=node.at(SystemId.S5, peer), message=signal) for peer in node.peers]
        return effects

    # ------------------------------------------------------------------ events

    def _emit(self, kind: str, now: float, **data: object) -> Emit:
        return Emit(event=Event(kind=kind, path=self.node.path, at=now, data=data))

    def _emit_outcome(self, outcome: Outcome, now: float) -> Emit:
        return self._emit(
            f"intent.{outcome.status}",
            now,
            intent=outcome.intent_id,
            reason=str(outcome.reason),
            by=str(outcome.by),
        )
