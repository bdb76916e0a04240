"""System 1, operations: classify each intent, route it to a unit, track it to its end.

Rules:
    1. An intent S1 has in flight ends exactly once: the first of its unit's outcome, its
       deadline, or the loss of every unit able to serve it. Anything arriving for an intent no
       longer in flight (a late or duplicated answer) is dropped.
    2. At least once to children: an intent forwarded to a child is resent every
       ``resend_every`` seconds until it is answered or its deadline passes (the child's S5
       never runs it twice). An ended intent's outcome is kept until its deadline, so a repeat
       (``Redeliver``) is answered again: a lost answer is recovered by the next resend.
    3. S1 tracks every intent S5 admits, from dispatch to outcome: what it cannot route (no
       candidate, or a composite plan) it hands to S4, which answers S1 (never the requester
       directly), so the deadline, the single answer and its repetition hold for all.
    4. A unit is ``local`` (this viable system's own kernel) or a child viable system; a child
       is asked through its S5, so recursion is just routing.
    5. S1 picks the capability (by exact name, else its classifier over the descriptions) and
       the candidate units; S2 rate-limits and picks among the candidates.
    6. Progress streams back: each routing step sends ``IntentProgress`` to the requester, and
       progress from a child is passed up while the intent is in flight here.
    7. S3* audits reach S1 directly (``AuditProbe``), bypassing S2.
    8. A cancel (``CancelIntent``, through S5) ends an intent in flight here as ``CANCELLED``
       at once, and goes on to the unit serving it (a child's or a peer's S5), so every
       viable system the intent reached ends it too; the unit's late answer is dropped
       (rule 1). A kernel of this viable system's own still running for it is stopped
       (``StopKernel``); so is one whose intent ran past its deadline.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from dataclasses import dataclass

from vsm.address import Address, SystemId
from vsm.classify import BM25Classifier, ChainClassifier, Classifier, ExactClassifier
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
    StopKernel,
)
from vsm.intents import Intent, Outcome, Refusal, Status
from vsm.messages import (
    Assign,
    AuditProbe,
    AuditReport,
    CancelIntent,
    ChildSpawned,
    ClaimDecided,
    Coordinate,
    DeadlineExpired,
    Dispatch,
    IntentFinished,
    IntentProgress,
    KernelFinished,
    Measured,
    Message,
    Redeliver,
    Released,
    Resend,
    Routes,
    SubmitIntent,
    UnitDown,
    Unroutable,
)
from vsm.systems._node import LOCAL, Node

__all__ = ["System1"]

HANDED_OFF = "#S4"
"""The unit of an intent S1 handed to S4 (a plan, a spawn, or a refusal to come)."""


@dataclass(slots=True)
class _Flight:
    intent: Intent
    reply_to: Address | None
    deadline: float
    capability: str
    unit: str | None
    started: float


class System1:
    """The operations of one viable system.

    Args:
        node: The shared context.
        classifier: Turns free text into a capability; exact names, then BM25, by default.
    """

    __slots__ = (
        "_arrivals",
        "_classifier",
        "_cpus",
        "_descriptions",
        "_ended",
        "_ended_expiry",
        "_flights",
        "_kernels",
        "_routes",
        "_spawnable",
        "_units",
        "completed",
        "failed",
        "node",
    )

    def __init__(self, node: Node, classifier: Classifier | None = None) -> None:
        self.node = node
        self._kernels = {c.name: c.kernel for c in node.spec.capabilities}
        self._cpus = {c.name: c.cpus for c in node.spec.capabilities}
        self._descriptions = node.spec.descriptions()
        self._spawnable = {c for t in node.spec.templates for c in t.offered()}
        self._units: dict[str, frozenset[str]] = {}
        if self._kernels:
            self._units[LOCAL] = frozenset(self._kernels)
        for path, spec in node.children.items():
            self._units[path] = frozenset(spec.offered())
        self._routes: dict[str, tuple[str, ...]] = {}
        self._classifier = classifier or ChainClassifier(ExactClassifier(), BM25Classifier())
        self._refit()
        self._flights: dict[str, _Flight] = {}
        self._ended: dict[str, tuple[Outcome, float]] = {}
        self._ended_expiry: list[tuple[float, str]] = []
        self._arrivals: Counter[str] = Counter()
        self.completed = 0
        self.failed = 0

    # ------------------------------------------------------------------ views

    @property
    def in_flight(self) -> int:
        """Intents S1 is tracking now."""
        return len(self._flights)

    def capabilities(self) -> frozenset[str]:
        """Capabilities some unit offers now."""
        return frozenset(self._routes)

    def units(self) -> dict[str, frozenset[str]]:
        """Unit -> capabilities it offers."""
        return dict(self._units)

    def variety(self) -> dict[str, float]:
        """Variety in (distinct intent kinds and their entropy) against variety answerable."""
        total = sum(self._arrivals.values())
        entropy = (
            -sum((n / total) * math.log2(n / total) for n in self._arrivals.values() if n)
            if total
            else 0.0
        )
        answerable = len(self._routes)
        kinds = len(self._arrivals)
        return {
            "arriving_kinds": float(kinds),
            "arriving_entropy_bits": entropy,
            "answerable_kinds": float(answerable),
            "units": float(len(self._units)),
            "ratio": (answerable / kinds) if kinds else math.inf,
        }

    # ------------------------------------------------------------------ handling

    def handle(self, message: Message, now: float) -> list[Effect]:
        """Handle one message; return the effects for the host."""
        match message:
            case Dispatch():
                return self._dispatch(message, now)
            case Assign():
                return self._assign(message, now)
            case KernelFinished(intent_id=intent_id, result=result, error=error):
                if error is None:
                    outcome = Outcome.completed(intent_id, result, self.node.path)
                else:
                    outcome = Outcome.refused(
                        intent_id,
                        Status.FAILED,
                        Refusal.UNIT_FAILED,
                        SystemId.S1,
                        self.node.path,
                        f"kernel raised: {error}",
                    )
                return self._finish(intent_id, outcome, now, kernel_done=True)
            case IntentFinished(outcome=outcome):
                return self._finish(outcome.intent_id, outcome, now)
            case IntentProgress(intent_id=intent_id):
                flight = self._flights.get(intent_id)
                if flight is None:
                    return []
                return [Notify(to=flight.reply_to, progress=message)]
            case DeadlineExpired(intent_id=intent_id):
                flight = self._flights.get(intent_id)
                if flight is None:
                    return []
                detail = f"no outcome by the deadline {flight.deadline}"
                if flight.unit is not None:
                    detail += f" (unit {flight.unit})"
                outcome = Outcome.refused(
                    intent_id, Status.FAILED, Refusal.DEADLINE, SystemId.S1, self.node.path, detail
                )
                return self._finish(intent_id, outcome, now)
            case UnitDown(unit=unit):
                return self._unit_down(unit, now)
            case CancelIntent():
                return self._cancel(message, now)
            case Resend(intent_id=intent_id):
                flight = self._flights.get(intent_id)
                if flight is None or flight.unit is None or flight.unit == LOCAL:
                    return []
                return [self._start(flight), self._resend_timer(intent_id)]
            case Redeliver(intent_id=intent_id, reply_to=reply_to):
                self._expire(now)
                ended = self._ended.get(intent_id)
                if ended is None:
                    return []
                return [Reply(to=reply_to, outcome=ended[0])]
            case Routes(units=units, descriptions=descriptions):
                keep = {LOCAL: self._units[LOCAL]} if LOCAL in self._units else {}
                self._units = {**keep, **{u: c for u, c in units.items() if u != LOCAL}}
                self._descriptions = {**dict(descriptions), **self.node.spec.descriptions()}
                self._refit()
                return []
            case ChildSpawned(path=path, offers=offers):
                self._units[path] = offers
                self._refit()
                return []
            case AuditProbe(audit_id=audit_id, auditor=auditor):
                report = AuditReport(
                    audit_id=audit_id,
                    unit=self.node.path,
                    in_flight=len(self._flights),
                    completed=self.completed,
                    failed=self.failed,
                )
                return [Send(to=auditor, message=report)]
            case ClaimDecided():
                return [
                    self._emit(
                        "claim.decided",
                        now,
                        resource=message.resource,
                        granted=message.granted,
                        owner=message.owner,
                    )
                ]
            case _:
                return []

    def _refit(self) -> None:
        routes: dict[str, list[str]] = {}
        for unit in sorted(self._units):
            for capability in self._units[unit]:
                routes.setdefault(capability, []).append(unit)
        self._routes = {c: tuple(units) for c, units in routes.items()}
        # Text may ask for what only a template offers: S4 then proposes spawning it.
        known = set(self._routes) | self._spawnable
        self._classifier.fit({c: self._descriptions.get(c, c) for c in sorted(known)})

    def _dispatch(self, message: Dispatch, now: float) -> list[Effect]:
        intent = message.intent
        flight = self._flights.get(intent.id)
        effects: list[Effect] = []
        if flight is None:
            flight = _Flight(intent, message.reply_to, message.deadline, "", None, now)
            self._flights[intent.id] = flight
            effects.append(
                Schedule(
                    delay=max(0.0, message.deadline - now),
                    to=self.node.at(SystemId.S1),
                    message=DeadlineExpired(intent_id=intent.id),
                    key=f"deadline:{intent.id}",
                )
            )
        elif flight.unit != HANDED_OFF:
            return []  # a duplicate of an intent being served
        capability = intent.capability
        if capability is None and intent.text and not intent.composite:
            found = self._classifier.classify(intent.text)
            capability = found.capability if found is not None else None
        if flight.unit is None:
            self._arrivals[capability or ("<plan>" if intent.composite else "<unclassified>")] += 1
        flight.capability = capability or ""
        candidates = self._routes.get(capability, ()) if capability is not None else ()
        if intent.composite or not candidates:
            # S4 decides (plan, spawn or refusal) and answers S1, which answers the requester.
            flight.unit = HANDED_OFF
            handoff = Unroutable(
                intent=intent,
                reply_to=self.node.at(SystemId.S1),
                deadline=flight.deadline,
                capability=capability,
            )
            effects.append(Send(to=self.node.at(SystemId.S4), message=handoff))
            return effects
        assert capability is not None
        flight.unit = None
        effects.append(
            Send(
                to=self.node.at(SystemId.S2),
                message=Coordinate(intent=intent, capability=capability, candidates=candidates),
            )
        )
        return effects

    def _assign(self, message: Assign, now: float) -> list[Effect]:
        flight = self._flights.get(message.intent_id)
        if flight is None:
            # The intent ended while S2 decided: give the unit back.
            return [self._release(message.unit)] if message.unit is not None else []
        if message.unit is None:
            assert message.outcome is not None
            return self._finish(message.intent_id, message.outcome, now)
        if message.unit != LOCAL and message.unit not in self._units:
            return self._reroute(flight, message.unit, now)  # it went away while S2 decided
        flight.unit = message.unit
        progress = IntentProgress(
            intent_id=flight.intent.id, path=self.node.path, stage="routed", detail=message.unit
        )
        effects: list[Effect] = [
            self._emit("intent.routed", now, intent=flight.intent.id, unit=message.unit),
            Notify(to=flight.reply_to, progress=progress),
            self._start(flight),
        ]
        if message.unit != LOCAL:
            effects.append(self._resend_timer(flight.intent.id))
        return effects

    def _resend_timer(self, intent_id: str) -> Schedule:
        return Schedule(
            delay=self.node.limits.resend_every,
            to=self.node.at(SystemId.S1),
            message=Resend(intent_id=intent_id),
            key=f"resend:{intent_id}",
        )

    def _expire(self, now: float) -> None:
        expiry = self._ended_expiry
        while expiry and expiry[0][0] < now:
            self._ended.pop(heapq.heappop(expiry)[1], None)

    def _start(self, flight: _Flight) -> Effect:
        if flight.unit == LOCAL:
            return RunKernel(
                kernel=self._kernels[flight.capability],
                params=flight.intent.params,
                intent_id=flight.intent.id,
                reply_to=self.node.at(SystemId.S1),
                cpus=self._cpus[flight.capability],
            )
        assert flight.unit is not None
        forwarded = flight.intent
        if forwarded.deadline != flight.deadline or forwarded.capability != flight.capability:
            forwarded = Intent(
                id=forwarded.id,
                capability=flight.capability,
                text=forwarded.text,
                params=forwarded.params,
                user=forwarded.user,
                zone=forwarded.zone,
                deadline=flight.deadline,
            )
        return Send(
            to=self.node.at(SystemId.S5, flight.unit),
            message=SubmitIntent(intent=forwarded, reply_to=self.node.at(SystemId.S1)),
        )

    def _finish(
        self, intent_id: str, outcome: Outcome, now: float, kernel_done: bool = False
    ) -> list[Effect]:
        flight = self._flights.pop(intent_id, None)
        if flight is None:
            return []
        ok = outcome.status is Status.COMPLETED
        if ok:
            self.completed += 1
        else:
            self.failed += 1
        self._ended[intent_id] = (outcome, flight.deadline)
        heapq.heappush(self._ended_expiry, (flight.deadline, intent_id))
        self._expire(now)
        effects: list[Effect] = [
            Reply(to=flight.reply_to, outcome=outcome),
            Cancel(key=f"deadline:{intent_id}"),
            Cancel(key=f"resend:{intent_id}"),
        ]
        if flight.unit == LOCAL and not kernel_done:  # rule 8: its result is not wanted now
            effects.append(StopKernel(intent_id=intent_id))
        if flight.unit is not None and flight.unit != HANDED_OFF:
            effects += [
                self._release(flight.unit),
                Send(
                    to=self.node.at(SystemId.S3),
                    message=Measured(
                        unit=flight.unit,
                        capability=flight.capability,
                        ok=ok,
                        latency=now - flight.started,
                    ),
                ),
            ]
        effects.append(
            self._emit(
                f"intent.{outcome.status}",
                now,
                intent=intent_id,
                reason=str(outcome.reason),
                by=str(outcome.by),
                user=flight.intent.user,
                capability=flight.capability,
                unit=flight.unit if flight.unit not in (None, HANDED_OFF) else None,
                seconds=now - flight.started,
            )
        )
        return effects

    def _cancel(self, message: CancelIntent, now: float) -> list[Effect]:
        intent_id = message.intent_id
        flight = self._flights.get(intent_id)
        if flight is None:
            return []
        unit = flight.unit
        detail = "cancelled by the requester" + (f": {message.reason}" if message.reason else "")
        outcome = Outcome.refused(
            intent_id, Status.FAILED, Refusal.CANCELLED, SystemId.S1, self.node.path, detail
        )
        effects = self._finish(intent_id, outcome, now)
        if unit is not None and unit not in (LOCAL, HANDED_OFF):
            effects.append(Send(to=self.node.at(SystemId.S5, unit), message=message))
        return effects

    def _unit_down(self, unit: str, now: float) -> list[Effect]:
        self._units.pop(unit, None)
        self._refit()
        effects: list[Effect] = []
        for flight in [f for f in self._flights.values() if f.unit == unit]:
            effects += self._reroute(flight, unit, now)
        return effects

    def _reroute(self, flight: _Flight, gone: str, now: float) -> list[Effect]:
        """Move a flight off a unit that is gone: to another candidate, or fail it."""
        effects: list[Effect] = [self._release(gone)]
        candidates = self._routes.get(flight.capability, ())
        if candidates:
            flight.unit = None
            coordinate = Coordinate(
                intent=flight.intent, capability=flight.capability, candidates=candidates
            )
            return [*effects, Send(to=self.node.at(SystemId.S2), message=coordinate)]
        flight.unit = gone  # so _finish releases nothing twice
        outcome = Outcome.refused(
            flight.intent.id,
            Status.FAILED,
            Refusal.UNIT_LOST,
            SystemId.S1,
            self.node.path,
            f"unit {gone} is gone and no other unit offers {flight.capability!r}",
        )
        return self._finish(flight.intent.id, outcome, now)

    def _release(self, unit: str) -> Send:
        return Send(to=self.node.at(SystemId.S2), message=Released(unit=unit))

    def _emit(self, kind: str, now: float, **data: object) -> Emit:
        return Emit(event=Event(kind=kind, path=self.node.path, at=now, data=data))
