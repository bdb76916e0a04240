"""System 3, control: the here-and-now of the units — KPIs, supervision, S3* audits.

Rules:
    1. KPIs per unit: intents served, errors (and their rate), mean latency, throughput —
       fed by S1's ``Measured`` reports.
    2. Supervision (OTP): a dead child is restarted from its spec at most ``restart_max`` times
       in ``restart_within`` seconds; past that it is stopped and the failure escalates to the
       parent's S3, which treats this viable system as its failed unit. At the root an
       escalation becomes algedonic pain at S5.
    3. S3* audits: every ``audit_every`` seconds one child (in turn) is probed straight at its
       S1, bypassing S2; its report and S3's own view go into the audit chain.
    4. Every supervision decision and audit is appended to the hash-chained audit log; with a
       signer, a signed checkpoint follows each audit round.
    5. Each audit period, if at least ``STRAIN_MIN_SERVED`` intents ended and at least
       ``STRAIN_LEVEL`` of them failed, S3 proposes to S5 that the system hold steady (the
       stability side of the homeostat; S4's spawn proposals are the change side).
    6. Rules (GoldRush, :mod:`vsm.rules`): S3 runs the node's rule set over the events of its
       viable system — those the other Systems emit (``EventsObserved``) and its own. A
       match becomes the rule's response: an algedonic signal to S5 (pain of the rule's
       intensity), a ``Throttle`` to S2, an S3* audit of the unit the event names (a child,
       or the child above it), a policy patch proposed to S5 (the current policy with the
       patch, one version up; S5 tightens it by the parent's as any patch), or a new event.
       Windows hold while their situation lasts, so a rule fires at most once per
       ``RULE_COOLDOWN`` seconds for the same key (the throttled user, the audited unit).
       Events S3 makes in response (``rule.*`` and emitted ones) are not evaluated again, so
       rules cannot feed themselves. ``PatchRules`` changes the set at run time; the rules are
       part of S3's checkpoint. After a patch, and at every audit tick while the set's having
       rules differs from the spec's, S3 tells the other Systems (``Watch``) whether their
       events must reach it: with each System in its own actor they cannot see S3's set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vsm.address import SystemId
from vsm.audit import AuditChain, Checkpoint, Signer
from vsm.effects import Effect, Emit, Event, Schedule, Send, Spawn, Stop
from vsm.mechanisms import Decision, RestartIntensity
from vsm.messages import (
    Algedonic,
    AuditProbe,
    AuditReport,
    AuditTick,
    ChildSpawned,
    Escalated,
    EventsObserved,
    Measured,
    Message,
    PatchPolicy,
    PatchRules,
    ReportStrain,
    Started,
    Throttle,
    UnitDied,
    Watch,
)
from vsm.rules import Algedonic as AlgedonicResponse
from vsm.rules import Audit as AuditResponse
from vsm.rules import EmitEvent as EmitResponse
from vsm.rules import Match, Rule, RuleSet
from vsm.rules import ProposePatch as PatchResponse
from vsm.rules import Throttle as ThrottleResponse
from vsm.spec import PolicySpec
from vsm.systems._node import Node

__all__ = ["Kpi", "System3"]

STRAIN_LEVEL = 0.5
STRAIN_MIN_SERVED = 5
RULE_COOLDOWN = 5.0
"""Seconds before a rule fires again for the same key (rule 6)."""
MAX_FIRED = 10_000
"""(rule, key) pairs remembered for the cooldown before the cooled ones are forgotten."""


@dataclass(slots=True)
class Kpi:
    """One unit's key performance indicators."""

    served: int = 0
    errors: int = 0
    latency_total: float = 0.0
    first_at: float | None = None
    last_at: float | None = None

    @property
    def mean_latency(self) -> float:
        """Mean latency of the intents served (0 when none)."""
        return self.latency_total / self.served if self.served else 0.0

    @property
    def throughput(self) -> float:
        """Intents served per second between the first and the last (0 until two)."""
        if self.first_at is None or self.last_at is None or self.last_at <= self.first_at:
            return 0.0
        return (self.served - 1) / (self.last_at - self.first_at)

    @property
    def error_rate(self) -> float:
        """Share of the intents served that failed."""
        return self.errors / self.served if self.served else 0.0


class System3:
    """Control of one viable system's units.

    Args:
        node: The shared context.
        signer: Signs audit checkpoints (optional).
    """

    __slots__ = (
        "_audits",
        "_fired",
        "_intensity",
        "_rules",
        "_turn",
        "_window",
        "chain",
        "checkpoints",
        "kpis",
        "node",
        "signer",
        "watching",
    )

    def __init__(self, node: Node, signer: Signer | None = None) -> None:
        self.node = node
        self.signer = signer
        self.kpis: dict[str, Kpi] = {}
        self._intensity: dict[str, RestartIntensity] = {}
        self.chain = AuditChain(node.path)
        self.checkpoints: list[Checkpoint] = []
        self._turn = 0
        self._audits = 0
        self._window = Kpi()  # this audit period, for strain (rule 5)
        self.watching = False
        """Whether S3 runs rules, so the other Systems' events must reach it (rule 6)."""
        self.rules = RuleSet(Rule.from_data(r) for r in node.spec.rules)
        self._fired: dict[tuple[str, object], float] = {}  # (rule, key) -> when (rule 6)

    @property
    def rules(self) -> RuleSet:
        """The rule set S3 runs (rule 6)."""
        return self._rules

    @rules.setter
    def rules(self, rules: RuleSet) -> None:
        self._rules = rules
        self.watching = bool(rules.rules)

    def handle(self, message: Message, now: float) -> list[Effect]:
        """Handle one message; return the effects for the host."""
        if isinstance(message, EventsObserved):
            return self._evaluate(message.events, now)  # responses are not evaluated again
        effects = self._handle(message, now)
        if not self.watching:
            return effects
        own = [e.event for e in effects if isinstance(e, Emit)]
        return effects + self._evaluate(own, now) if own else effects

    def _handle(self, message: Message, now: float) -> list[Effect]:
        match message:
            case PatchRules(rules=rules, remove=remove):
                return self._patch_rules(rules, remove, now)
            case Measured(unit=unit, ok=ok, latency=latency):
                for kpi in (self.kpis.setdefault(unit, Kpi()), self._window):
                    kpi.served += 1
                    kpi.errors += 0 if ok else 1
                    kpi.latency_total += latency
                    if kpi.first_at is None:
                        kpi.first_at = now
                    kpi.last_at = now
                return []
            case UnitDied(unit=unit, reason=reason) | Escalated(path=unit, reason=reason):
                return self._supervise(unit, reason, now)
            case AuditTick():
                watch = self._watch() if self.watching != bool(self.node.spec.rules) else []
                return [*self._strain(), *self._audit(now), *watch, self._tick(now)]
            case AuditReport():
                return self._record_audit(message, now)
            case ChildSpawned():
                return []
            case Started():
                return [self._tick(now)]
            case _:
                return []

    def _supervise(self, unit: str, reason: str, now: float) -> list[Effect]:
        node = self.node
        spec = node.children.get(unit)
        if spec is None:
            return []
        limits = node.limits
        window = self._intensity.setdefault(
            unit, RestartIntensity(limits.restart_max, limits.restart_within)
        )
        decision = window.record(now)
        self.chain.append(
            "supervision",
            f"{node.path}#S3",
            {"unit": unit, "reason": reason, "decision": str(decision)},
            now,
        )
        event = Event(
            kind=f"unit.{decision.name.lower()}",
            path=node.path,
            at=now,
            data={"unit": unit, "reason": reason},
        )
        if decision is Decision.RESTART:
            spawned = ChildSpawned(path=unit, offers=frozenset(spec.offered()))
            return [
                Spawn(path=unit, spec=spec),
                Emit(event=event),
                Send(to=node.at(SystemId.S1), message=spawned),
                Send(to=node.at(SystemId.S2), message=spawned),
            ]
        why = (
            f"{unit} failed {limits.restart_max + 1} times within "
            f"{limits.restart_within}s: {reason}"
        )
        node.children.pop(unit, None)
        effects: list[Effect] = [Stop(path=unit, reason=why), Emit(event=event)]
        parent = node.parent
        if parent is not None:
            effects.append(
                Send(to=node.at(SystemId.S3, parent), message=Escalated(path=node.path, reason=why))
            )
        else:
            effects.append(
                Send(
                    to=node.at(SystemId.S5),
                    message=Algedonic(source=node.path, intensity=-1.0, detail=why),
                )
            )
        return effects

    def _strain(self) -> list[Effect]:
        window, self._window = self._window, Kpi()
        if window.served < STRAIN_MIN_SERVED or window.errors / window.served < STRAIN_LEVEL:
            return []
        level = window.errors / window.served
        detail = f"{window.errors} of {window.served} intents failed this audit period"
        return [
            Send(to=self.node.at(SystemId.S5), message=ReportStrain(level=level, detail=detail))
        ]

    def _audit(self, now: float) -> list[Effect]:
        children = sorted(self.node.children)
        if not children:
            return []
        unit = children[self._turn % len(children)]
        self._turn += 1
        return [self._probe(unit)]

    def _probe(self, unit: str) -> Send:
        self._audits += 1
        probe = AuditProbe(
            audit_id=f"{self.node.path}:{self._audits}", auditor=self.node.at(SystemId.S3)
        )
        return Send(to=self.node.at(SystemId.S1, unit), message=probe)

    def _record_audit(self, report: AuditReport, now: float) -> list[Effect]:
        kpi = self.kpis.get(report.unit, Kpi())
        self.chain.append(
            "audit",
            f"{self.node.path}#S3",
            {
                "audit": report.audit_id,
                "unit": report.unit,
                "reported": [report.in_flight, report.completed, report.failed],
                "observed": [kpi.served, kpi.errors],
            },
            now,
        )
        if self.signer is not None:
            self.checkpoints.append(self.chain.checkpoint(self.signer, now))
        return [
            Emit(
                event=Event(
                    kind="audit",
                    path=self.node.path,
                    at=now,
                    data={"unit": report.unit, "in_flight": report.in_flight},
                )
            )
        ]

    # ------------------------------------------------------------------ rules (rule 6)

    def _evaluate(self, events: tuple[Event, ...] | list[Event], now: float) -> list[Effect]:
        effects: list[Effect] = []
        for event in events:
            for match in self.rules.evaluate(event):
                effects += self._respond(match, now)
        return effects

    def _respond(self, match: Match, now: float) -> list[Effect]:
        response, fields, node = match.response, match.fields, self.node
        key: object = None
        if isinstance(response, ThrottleResponse):
            key = response.key_of(fields)
        elif isinstance(response, AuditResponse):
            key = response.unit_of(fields)
        last = self._fired.get((match.rule, key))
        if last is not None and now - last < RULE_COOLDOWN:
            return []
        if len(self._fired) >= MAX_FIRED:  # keep only what still cools down
            self._fired = {k: t for k, t in self._fired.items() if now - t < RULE_COOLDOWN}
        self._fired[(match.rule, key)] = now
        why = f"rule {match.rule!r}"
        effect: Effect | None = None
        match response:
            case AlgedonicResponse(intensity=intensity, detail=detail):
                signal = Algedonic(
                    source=node.path, intensity=-intensity, detail=f"{why}: {detail}"
                )
                effect = Send(to=node.at(SystemId.S5), message=signal)
            case ThrottleResponse(target=target, rate=rate, seconds=seconds):
                if isinstance(key, str):
                    throttle = Throttle(target=target, key=key, rate=rate, seconds=seconds, why=why)
                    effect = Send(to=node.at(SystemId.S2), message=throttle)
            case AuditResponse():
                unit = node.child_of(key) if isinstance(key, str) else None
                if unit is not None and unit in node.children:
                    effect = self._probe(unit)
            case PatchResponse(patch=patch):
                policy = node.policy
                try:
                    patched = PolicySpec.model_validate(
                        {**policy.model_dump(), **patch, "version": policy.version + 1}
                    )
                except ValueError:  # the patch does not fit this policy: unanswered
                    patched = None
                if patched is not None:
                    effect = Send(to=node.at(SystemId.S5), message=PatchPolicy(policy=patched))
            case EmitResponse(kind=kind, data=data):
                event = Event(kind=kind, path=node.path, at=now, data={**data, "rule": match.rule})
                effect = Emit(event=event)
        fired = Event(
            kind="rule.matched" if effect is not None else "rule.unanswered",
            path=node.path,
            at=now,
            data={"rule": match.rule, "version": match.version, "response": response.tag},
        )
        return [Emit(event=fired), *([effect] if effect is not None else [])]

    def _patch_rules(
        self, rules: tuple[Any, ...], remove: tuple[str, ...], now: float
    ) -> list[Effect]:
        try:
            parsed = [Rule.from_data(r) for r in rules]
        except ValueError as exc:
            event = Event(kind="rules.refused", path=self.node.path, at=now, data={"why": str(exc)})
            return [Emit(event=event)]
        for rule in parsed:
            if rule.name in self._rule_names():
                self.rules.replace(rule)
            else:
                self.rules.add(rule)
        for name in remove:
            if name in self._rule_names():
                self.rules.remove(name)
        self.rules = self.rules  # re-reads whether any rule is left (watching)
        data = {"version": self.rules.version, "rules": [r.name for r in self.rules.rules]}
        event = Event(kind="rules.patched", path=self.node.path, at=now, data=data)
        return [Emit(event=event), *self._watch()]

    def _watch(self) -> list[Effect]:
        """Tell the other Systems whether their events must reach S3 (rule 6)."""
        return [
            Send(to=self.node.at(system), message=Watch(on=self.watching))
            for system in SystemId
            if system is not SystemId.S3
        ]

    def _rule_names(self) -> set[str]:
        return {rule.name for rule in self.rules.rules}

    def _tick(self, now: float) -> Schedule:
        return Schedule(
            delay=self.node.limits.audit_every,
            to=self.node.at(SystemId.S3),
            message=AuditTick(),
            background=True,
        )
