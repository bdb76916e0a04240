"""System 2, coordination: damps oscillation between the units of System 1.

Rules:
    1. Every intent takes a token from its user's bucket and from its capability's bucket;
       an empty bucket rejects it (RATE_LIMIT). Capability rates follow load: at every sweep
       they fall while units are busy past the target utilisation and recover when they are
       not.
    2. Of the candidate units, S2 picks the healthiest (healthy, then warning, then zombie —
       never dead), then the one with the least work in flight, then the fewest assignments so
       far, then by name: work spreads across units that offer the same capability, and a
       zombie only gets work when no better unit offers it (it may be merely cut off; S1's
       resends and deadline bound the cost). ``local`` kernels are always healthy.
    3. Children send heartbeats; the failure detector moves a silent unit from healthy to
       warning, zombie and dead. A child is tracked from its start (or restart), so one that
       never sends a heartbeat is declared dead too. A dead unit is reported to S1 (which
       moves its work) and to S3 (which decides restart or escalation).
    4. Competing claims on one resource: the current holder keeps it unless it is dead; the
       first claim on a free resource wins.
    5. Throttles (a rule's response, ``Throttle``): for ``seconds``, a user or a capability
       also takes a token from a bucket of the throttled rate (burst: one second of it); a
       newer throttle of the same key replaces the older. Refusals name the throttle.
"""

from __future__ import annotations

from collections import Counter

from vsm.address import SystemId
from vsm.effects import Effect, Emit, Event, Schedule, Send
from vsm.intents import Outcome, Refusal, Status
from vsm.mechanisms import AdaptiveRate, FailureDetector, Health, TokenBucket, TokenBuckets
from vsm.messages import (
    Assign,
    ChildSpawned,
    ChildStarted,
    ClaimDecided,
    ClaimResource,
    Coordinate,
    Heartbeat,
    HeartbeatTick,
    Message,
    Released,
    Started,
    SweepTick,
    Throttle,
    ThrottleEnded,
    UnitDied,
    UnitDown,
    UnitLost,
)
from vsm.systems._node import LOCAL, Node

__all__ = ["System2"]

_RANK = {Health.HEALTHY: 0, Health.WARNING: 1, Health.ZOMBIE: 2, Health.DEAD: 3}


class System2:
    """Coordination of one viable system's units."""

    __slots__ = (
        "_assigned",
        "_awaiting",
        "_capabilities",
        "_claims",
        "_current_rate",
        "_detector",
        "_in_flight",
        "_load",
        "_rate",
        "_throttles",
        "_users",
        "node",
    )

    def __init__(self, node: Node) -> None:
        self.node = node
        limits = node.limits
        self._users = TokenBuckets(limits.user_rate, limits.user_burst)
        self._capabilities = TokenBuckets(limits.capability_rate, limits.capability_burst)
        self._rate = AdaptiveRate(
            base_rate=limits.capability_rate,
            min_rate=limits.capability_rate / 20,
            max_rate=limits.capability_rate,
        )
        self._detector = FailureDetector(
            limits.warning_after, limits.zombie_after, limits.dead_after
        )
        self._in_flight: Counter[str] = Counter()
        self._load = 0
        self._assigned: Counter[str] = Counter()
        self._claims: dict[str, str] = {}
        self._awaiting: set[str] = set()
        self._current_rate = limits.capability_rate
        self._throttles: dict[tuple[str, str], tuple[TokenBucket, float, str]] = {}

    @property
    def load(self) -> int:
        """Intents assigned to units and not yet released."""
        return self._load

    def health(self, unit: str, now: float) -> Health:
        """The failure detector's view of ``unit`` (healthy if never heard of)."""
        if unit == LOCAL or unit not in self._detector.units():
            return Health.HEALTHY
        return self._detector.health(unit, now)

    def handle(self, message: Message, now: float) -> list[Effect]:
        """Handle one message; return the effects for the host."""
        match message:
            case Coordinate():
                return self._coordinate(message, now)
            case Released(unit=unit):
                if self._in_flight[unit] > 0:
                    self._in_flight[unit] -= 1
                    self._load -= 1
                return []
            case Heartbeat(unit=unit):
                self._detector.heartbeat(unit, now)
                if unit in self._awaiting:
                    self._awaiting.discard(unit)
                    return [Send(to=self.node.at(SystemId.S5), message=ChildStarted(path=unit))]
                return []
            case SweepTick():
                self._adapt(now)
                return [
                    *self._sweep(now),
                    self._tick(SweepTick(), self.node.limits.heartbeat_every),
                ]
            case HeartbeatTick():
                parent = self.node.parent
                if parent is None:
                    return []
                beat = Heartbeat(unit=self.node.path, load=self.load)
                return [
                    Send(to=self.node.at(SystemId.S2, parent), message=beat),
                    self._tick(HeartbeatTick(), self.node.limits.heartbeat_every),
                ]
            case ClaimResource():
                return self._claim(message, now)
            case Throttle():
                return self._throttle(message, now)
            case ThrottleEnded(target=target, key=key, since=since):
                held = self._throttles.get((target, key))
                if held is None or held[1] != since:
                    return []  # replaced by a newer throttle
                del self._throttles[(target, key)]
                return [self._event("throttle.ended", now, target=target, key=key)]
            case UnitLost(unit=unit, reason=reason):
                return self._lost(unit, reason, now)
            case ChildSpawned(path=path):
                # A new (or restarted) child gets a full grace period before it counts as silent;
                # its first heartbeat tells S5 the spawn worked.
                self._detector.heartbeat(path, now)
                self._awaiting.add(path)
                return []
            case Started():
                for child in sorted(self.node.children):
                    self._detector.heartbeat(child, now)
                effects: list[Effect] = [self._tick(SweepTick(), self.node.limits.heartbeat_every)]
                if self.node.parent is not None:
                    effects.append(self._tick(HeartbeatTick(), 0.0))
                return effects
            case _:
                return []

    def _coordinate(self, message: Coordinate, now: float) -> list[Effect]:
        intent, capability = message.intent, message.capability
        reply = self.node.at(SystemId.S1)
        refusal = self._throttled(("user", intent.user), now) or self._throttled(
            ("capability", capability), now
        )
        if refusal is None and not self._users.try_take(intent.user, now):
            refusal = f"user {intent.user!r} is over its rate ({self.node.limits.user_rate}/s)"
        elif refusal is None and not self._capabilities.try_take(capability, now):
            refusal = f"capability {capability!r} is over its rate"
        elif refusal is None and self._load >= self.node.limits.max_in_flight:
            refusal = (
                f"{self._load} intents in flight; the limit is {self.node.limits.max_in_flight}"
            )
        if refusal is not None:
            outcome = Outcome.refused(
                intent.id, Status.REJECTED, Refusal.RATE_LIMIT, SystemId.S2, self.node.path, refusal
            )
            return [
                Send(
                    to=reply,
                    message=Assign(
                        intent_id=intent.id, capability=capability, unit=None, outcome=outcome
                    ),
                )
            ]
        candidates = message.candidates
        if len(candidates) == 1 and candidates[0] == LOCAL:
            ranked = {LOCAL: 0}  # the common case: this viable system's own kernel
        else:
            ranked = {u: _RANK[self.health(u, now)] for u in candidates}
        alive = [u for u, rank in ranked.items() if rank < _RANK[Health.DEAD]]
        if not alive:
            outcome = Outcome.refused(
                intent.id,
                Status.FAILED,
                Refusal.UNIT_LOST,
                SystemId.S2,
                self.node.path,
                f"every unit offering {capability!r} is dead: {list(message.candidates)}",
            )
            return [
                Send(
                    to=reply,
                    message=Assign(
                        intent_id=intent.id, capability=capability, unit=None, outcome=outcome
                    ),
                )
            ]
        unit = min(alive, key=lambda u: (ranked[u], self._in_flight[u], self._assigned[u], u))
        self._in_flight[unit] += 1
        self._load += 1
        self._assigned[unit] += 1
        return [
            Send(to=reply, message=Assign(intent_id=intent.id, capability=capability, unit=unit))
        ]

    def _throttle(self, message: Throttle, now: float) -> list[Effect]:
        """Start a throttle (rule 5); it ends by a timer."""
        if message.target not in ("user", "capability") or not (
            message.rate > 0 and message.seconds > 0
        ):
            return [self._event("throttle.refused", now, target=message.target, key=message.key)]
        bucket = TokenBucket(message.rate, max(1.0, message.rate))
        self._throttles[(message.target, message.key)] = (bucket, now, message.why)
        ended = ThrottleEnded(target=message.target, key=message.key, since=now)
        return [
            self._event(
                "throttle.started",
                now,
                target=message.target,
                key=message.key,
                rate=message.rate,
                seconds=message.seconds,
                why=message.why,
            ),
            Schedule(
                delay=message.seconds, to=self.node.at(SystemId.S2), message=ended, background=True
            ),
        ]

    def _throttled(self, key: tuple[str, str], now: float) -> str | None:
        held = self._throttles.get(key)
        if held is None or held[0].try_take(now):
            return None
        bucket, _, why = held
        return f"{key[0]} {key[1]!r} is throttled to {bucket.rate:g}/s" + (
            f" ({why})" if why else ""
        )

    def _event(self, kind: str, now: float, **data: object) -> Emit:
        return Emit(event=Event(kind=kind, path=self.node.path, at=now, data=data))

    def _adapt(self, now: float) -> None:
        """Let the capability rates follow load (rule 1), once per sweep."""
        rate = self._rate.observe(self._load / self.node.limits.max_in_flight, now)
        if rate != self._current_rate:
            self._current_rate = rate
            self._capabilities.set_rate(None, rate, now)

    def _sweep(self, now: float) -> list[Effect]:
        effects: list[Effect] = []
        for unit, old, new in self._detector.sweep(now):
            effects.append(
                Emit(
                    event=Event(
                        kind="unit.health",
                        path=self.node.path,
                        at=now,
                        data={"unit": unit, "from": str(old), "to": str(new)},
                    )
                )
            )
            if new is Health.DEAD:
                self._load -= self._in_flight.pop(unit, 0)
                effects += [
                    Send(to=self.node.at(SystemId.S1), message=UnitDown(unit=unit)),
                    Send(
                        to=self.node.at(SystemId.S3),
                        message=UnitDied(unit=unit, reason="missed heartbeats"),
                    ),
                ]
        return effects

    def _lost(self, unit: str, reason: str, now: float) -> list[Effect]:
        """The host saw ``unit`` die: the same effects as a sweep declaring it dead."""
        if unit not in self.node.children:
            return []
        self._detector.forget(unit)
        self._awaiting.discard(unit)
        self._load -= self._in_flight.pop(unit, 0)
        return [
            Emit(
                event=Event(
                    kind="unit.health",
                    path=self.node.path,
                    at=now,
                    data={"unit": unit, "from": "unknown", "to": str(Health.DEAD), "why": reason},
                )
            ),
            Send(to=self.node.at(SystemId.S1), message=UnitDown(unit=unit)),
            Send(to=self.node.at(SystemId.S3), message=UnitDied(unit=unit, reason=reason)),
        ]

    def _claim(self, message: ClaimResource, now: float) -> list[Effect]:
        owner = self._claims.get(message.resource)
        if owner is None or owner == message.unit or self.health(owner, now) is Health.DEAD:
            self._claims[message.resource] = owner = message.unit
        decided = ClaimDecided(
            resource=message.resource,
            unit=message.unit,
            granted=owner == message.unit,
            owner=owner,
        )
        return [Send(to=message.reply_to, message=decided)]

    def _tick(self, message: Message, delay: float) -> Schedule:
        return Schedule(delay=delay, to=self.node.at(SystemId.S2), message=message, background=True)
