"""The messages Systems send one another: a closed union, one frozen class per kind.

Facts are past tense (``UnitDied``), commands imperative (``PatchPolicy``). Each class names the
System it goes to in its docstring. Hosts dispatch on the class with ``match``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Any

from vsm._record import record
from vsm.address import Address, SystemId
from vsm.intents import Intent, Outcome
from vsm.registry import RegistryDelta
from vsm.spec import NodeSpec, PolicySpec

__all__ = [
    "Algedonic",
    "Assign",
    "AuditProbe",
    "AuditReport",
    "AuditTick",
    "CancelIntent",
    "ChildSpawned",
    "ChildStarted",
    "ClaimDecided",
    "ClaimResource",
    "Coordinate",
    "DeadlineExpired",
    "DigestOffer",
    "Dispatch",
    "Escalated",
    "EventsObserved",
    "GossipTick",
    "Heartbeat",
    "HeartbeatTick",
    "IntentFinished",
    "IntentProgress",
    "KernelFinished",
    "Measured",
    "Message",
    "ParentPolicy",
    "PatchPolicy",
    "PatchRules",
    "PolicyTick",
    "ProposeSpawn",
    "Redeliver",
    "RegistryGossip",
    "Released",
    "ReportStrain",
    "Resend",
    "Routes",
    "SpawnFailed",
    "Started",
    "SubmitIntent",
    "SweepTick",
    "Throttle",
    "ThrottleEnded",
    "UnitDied",
    "UnitDown",
    "UnitLost",
    "Unroutable",
    "Watch",
]


# ---------------------------------------------------------------- lifecycle


@record
class Started:
    """To every System of a viable system once, when its host starts it."""


# ---------------------------------------------------------------- the intent path


@record
class SubmitIntent:
    """To S5: an intent arrives (``reply_to`` is ``None`` for an outside client)."""

    intent: Intent
    reply_to: Address | None = None


@record
class Dispatch:
    """To S1: an intent S5 admitted, to classify and route."""

    intent: Intent
    reply_to: Address | None
    deadline: float


@record
class Coordinate:
    """To S2: rate-limit an intent and pick one of ``candidates`` to serve it."""

    intent: Intent
    capability: str
    candidates: tuple[str, ...]


@record
class Assign:
    """To S1: S2 chose ``unit`` for an intent (``unit`` is ``None`` when S2 refused it)."""

    intent_id: str
    capability: str
    unit: str | None
    outcome: Outcome | None = None


@record
class Released:
    """To S2: a unit finished (or lost) one intent it was assigned."""

    unit: str


@record
class IntentFinished:
    """To whoever forwarded an intent: its terminal outcome."""

    outcome: Outcome


@record
class IntentProgress:
    """To whoever forwarded an intent: a step on its way (not an outcome)."""

    intent_id: str
    path: str
    stage: str
    detail: str = ""


@record
class KernelFinished:
    """To S1: a kernel run for an intent ended (``error`` set when it raised)."""

    intent_id: str
    result: Any = None
    error: str | None = None


@record
class DeadlineExpired:
    """To S1 (a timer): an intent's deadline passed."""

    intent_id: str


@record
class Resend:
    """To S1 (a timer): resend an intent to its child unit if it is still unanswered."""

    intent_id: str


@record
class Redeliver:
    """To S1 from S5: an intent arrived again; answer again if it has already ended."""

    intent_id: str
    reply_to: Address | None


@record
class Unroutable:
    """To S4: S1 has no unit for this intent, or it is composite."""

    intent: Intent
    reply_to: Address | None
    deadline: float
    capability: str | None


@record
class Routes:
    """To S1: the capabilities each unit offers now, and their descriptions (from S4)."""

    units: Mapping[str, frozenset[str]]
    descriptions: Mapping[str, str]


# ---------------------------------------------------------------- coordination and control


@record
class Heartbeat:
    """To S2 of the parent: a child unit is alive, with its load (intents in flight)."""

    unit: str
    load: int = 0


@record
class HeartbeatTick:
    """To S2 (a timer): time to send this viable system's heartbeat to its parent."""


@record
class SweepTick:
    """To S2 (a timer): time to sweep the failure detector."""


@record
class UnitDown:
    """To S1: a unit is dead; move or fail its work."""

    unit: str


@record
class ClaimResource:
    """To S2: ``unit`` claims ``resource``; S2 resolves competing claims."""

    resource: str
    unit: str
    reply_to: Address


@record
class ClaimDecided:
    """To the claimer: whether ``unit`` now holds ``resource`` (and who does)."""

    resource: str
    unit: str
    granted: bool
    owner: str


@record
class Measured:
    """To S3: one intent a unit served ended; feeds the unit's KPIs."""

    unit: str
    capability: str
    ok: bool
    latency: float


@record
class UnitDied:
    """To S3: a unit (a child viable system) died; decide restart or escalation."""

    unit: str
    reason: str


@record
class UnitLost:
    """To S2: the host saw a unit's process die (a death-watch fired); treat it as dead now.

    S2 acts as when its own heartbeat sweep declares a unit dead: the unit's work leaves S2's
    load, S1 stops routing to it, S3 decides restart or escalation.
    """

    unit: str
    reason: str


@record
class Escalated:
    """To S3 of the parent: a child exceeded its restart intensity or failed to recover."""

    path: str
    reason: str


@record
class AuditTick:
    """To S3 (a timer): time for an S3* audit."""


@record
class AuditProbe:
    """To S1 of a unit, straight from the parent's S3 (S3*, bypassing S2)."""

    audit_id: str
    auditor: Address


@record
class AuditReport:
    """To the auditing S3: what the audited S1 reports of itself."""

    audit_id: str
    unit: str
    in_flight: int
    completed: int
    failed: int


# ---------------------------------------------------------------- intelligence


@record
class RegistryGossip:
    """To S4: registry deltas from a neighbour (``origin``)."""

    delta: RegistryDelta
    origin: str


@record
class DigestOffer:
    """To S4: a neighbour's registry digest, for anti-entropy."""

    digest: tuple[bytes, ...]
    origin: str


@record
class GossipTick:
    """To S4 (a timer): ship pending deltas to the parent, now and then with a digest."""


# ---------------------------------------------------------------- policy


@record
class Algedonic:
    """To S5: pain (< 0) or pleasure (> 0) from ``source``; |intensity| <= 1."""

    source: str
    intensity: float
    detail: str = ""


@record
class PatchPolicy:
    """To S5: replace the local policy (it is tightened by the parent's, never loosened)."""

    policy: PolicySpec


@record
class ParentPolicy:
    """To a child's S5: the parent's effective policy changed."""

    policy: PolicySpec


@record
class PolicyTick:
    """To S5 (a timer): repeat the effective policy to the children (messages may be lost)."""


@record
class ProposeSpawn:
    """To S5: a System proposes spawning ``template`` for an intent (the homeostat decides)."""

    template: NodeSpec
    by: SystemId
    why: str
    intent: Intent | None = None
    reply_to: Address | None = None
    deadline: float = 0.0


@record
class ReportStrain:
    """To S5 from S3: the units are failing; S3 proposes holding steady (no growth)."""

    level: float
    detail: str


@record
class SpawnFailed:
    """To S5: the host could not start a child."""

    path: str
    reason: str


@record
class ChildStarted:
    """To S5 from S2: a spawned child sent its first heartbeat, so the spawn succeeded."""

    path: str


@record
class ChildSpawned:
    """To S1 and S4: a child viable system now exists at ``path``."""

    path: str
    offers: frozenset[str] = field(default_factory=frozenset)


@record
class Throttle:
    """To S2: hold a user or a capability (``target``) named ``key`` to ``rate`` per second.

    For ``seconds``; a rule's response, ``why`` names the rule.
    """

    target: str
    key: str
    rate: float
    seconds: float
    why: str = ""


@record
class ThrottleEnded:
    """To S2 (a timer): the throttle on ``target`` ``key`` set at ``since`` is over."""

    target: str
    key: str
    since: float


@record
class EventsObserved:
    """To S3: events the other Systems of this viable system emitted, for its rules.

    ``events`` are :class:`vsm.effects.Event` (typed loosely: that module imports this one).
    """

    events: tuple[Any, ...]


@record
class PatchRules:
    """To S3: change its rule set at run time.

    The rules (JSON form) are added, or replace the rule of their name; then the names in
    ``remove`` are removed.
    """

    rules: tuple[Mapping[str, Any], ...] = ()
    remove: tuple[str, ...] = ()


@record
class CancelIntent:
    """To S5, then S1: the requester cancels ``intent_id`` (see S1 rule 8).

    S5 passes it to its S1; S1 ends the intent (``CANCELLED``) if it is in flight there and
    passes the cancel on to the unit serving it, so it travels down the tree and across
    clusters as far as the intent went.
    """

    intent_id: str
    reason: str = ""


@record
class Watch:
    """From S3 to the other Systems: whether S3 runs rules, so their events must reach it.

    The viable system takes it (:meth:`vsm.systems.ViableSystem.handle`), not the System: with
    each System in its own actor, this is how the others learn of a rule set patched at run
    time (S3 rule 6).
    """

    on: bool


Message = (
    Started
    | SubmitIntent
    | Dispatch
    | Coordinate
    | Assign
    | Released
    | IntentFinished
    | IntentProgress
    | KernelFinished
    | DeadlineExpired
    | Resend
    | Redeliver
    | Unroutable
    | Routes
    | Heartbeat
    | HeartbeatTick
    | SweepTick
    | UnitDown
    | ClaimResource
    | ClaimDecided
    | Measured
    | UnitDied
    | UnitLost
    | Escalated
    | AuditTick
    | AuditProbe
    | AuditReport
    | RegistryGossip
    | DigestOffer
    | GossipTick
    | Algedonic
    | PatchPolicy
    | ParentPolicy
    | PolicyTick
    | ProposeSpawn
    | ReportStrain
    | SpawnFailed
    | ChildSpawned
    | ChildStarted
    | Throttle
    | ThrottleEnded
    | EventsObserved
    | PatchRules
    | Watch
    | CancelIntent
)
"""Every message a System handles."""
