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
"""

from __future__ import annotations

from dataclasses import dataclass

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
    Measured,
    Message,
    ReportStrain,
    Started,
    UnitDied,
)
from vsm.systems._node import Node

__all__ = ["Kpi", "System3"]

STRAIN_LEVEL = 0.5
STRAIN_MIN_SERVED = 5


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
        "_intensity",
        "_turn",
        "_window",
        "chain",
        "checkpoints",
        "kpis",
        "node",
        "signer",
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

    def handle(self, message: Message, now: float) -> list[Effect]:
        """Handle one message; return the effects for the host."""
        match message:
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
                return [*self._strain(), *self._audit(now), self._tick(now)]
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
        self._audits += 1
        probe = AuditProbe(
            audit_id=f"{self.node.path}:{self._audits}", auditor=self.node.at(SystemId.S3)
        )
        return [Send(to=self.node.at(SystemId.S1, unit), message=probe)]

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

    def _tick(self, now: float) -> Schedule:
        return Schedule(
            delay=self.node.limits.audit_every,
            to=self.node.at(SystemId.S3),
            message=AuditTick(),
            background=True,
        )
