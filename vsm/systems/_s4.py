"""System 4, intelligence: the there-and-then — the registry, plans, proposals.

Rules:
    1. S4 keeps this viable system's replica of the capability registry, scoped to its own
       recursion: the adverts of the viable systems within its subtree (itself and those
       below), which is all it routes by (rule 2). It advertises its own leaf capabilities and
       renews them on a fixed grid of time (every ``RENEW_EVERY`` seconds, on the multiples),
       so renewals across the tree cluster and the registries settle between them. It ships
       deltas up, to its parent, through a delta outbox (what came from a child goes on up),
       and offers its digest to its parent every few gossip ticks. A parent answers a child's
       offer with the part of its own replica within that child's subtree and that part's
       digest, so anything lost either way is repaired. So each advert reaches its provider's
       ancestors only: a tree of ``n`` viable systems of depth ``d`` holds about ``n·d``
       adverts in all, not ``n²``, and the root's replica holds the whole tree.
    2. From the registry it tells S1 which unit offers what: a live advert whose provider lies
       under child ``c`` makes ``c`` a unit for it. Static children count from the spec on, so
       routing works before the first gossip arrives. At a federated root, an advert of a peer
       tree (merged from the peer's signed announcements) makes that peer's root a unit.
    3. A composite intent becomes a plan: its steps are submitted to this viable system's own
       S5 (so policy applies to each), in sequence or in parallel, and the plan completes with
       the list of step results, or fails with the first step that did not complete.
    4. Demand for a capability no unit offers: if a template can serve it, S4 proposes a spawn
       to S5 (which decides); otherwise the intent is rejected (NO_CAPABILITY).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from vsm.address import Address, SystemId
from vsm.effects import Effect, Emit, Event, Reply, Schedule, Send
from vsm.errors import VsmError
from vsm.intents import Intent, Outcome, Refusal, Status
from vsm.messages import (
    ChildSpawned,
    DigestOffer,
    GossipTick,
    IntentFinished,
    Message,
    ProposeSpawn,
    RegistryGossip,
    Routes,
    Started,
    SubmitIntent,
    Unroutable,
)
from vsm.registry import Advert, CapabilityRegistry, DeltaOutbox, RegistryDelta
from vsm.systems._node import LOCAL, Node

__all__ = ["System4"]

RENEW_EVERY = 30.0  # adverts are renewed on a grid of this period, so renewals cluster
LEASE = 2 * RENEW_EVERY  # an advert outlives one missed renewal
DIGEST_EVERY = 3  # gossip ticks between digest offers


@dataclass(slots=True)
class _Plan:
    intent: Intent
    reply_to: Address | None
    deadline: float
    steps: list[Intent]
    results: dict[int, object] = field(default_factory=dict)
    next: int = 0


def _ms(now: float) -> int:
    return int(now * 1000)


class System4:
    """Intelligence of one viable system.

    Args:
        node: The shared context.
        incarnation: Which start of this viable system this is; keeps a restarted replica from
            reissuing registry dots (see ``vsm.registry`` rule 5).
    """

    __slots__ = (
        "_next_expiry",
        "_outbox",
        "_plans",
        "_renew_at",
        "_routes",
        "_step_of",
        "_ticks",
        "node",
        "registry",
    )

    def __init__(self, node: Node, incarnation: int = 0) -> None:
        self.node = node
        self.registry = CapabilityRegistry(node.path, buckets=16, epoch=incarnation)
        parent = node.parent
        self._outbox: DeltaOutbox[RegistryDelta] = DeltaOutbox([parent] if parent else [])
        self._plans: dict[str, _Plan] = {}
        self._step_of: dict[str, tuple[str, int]] = {}
        self._routes: Routes | None = None
        self._renew_at = 0.0
        self._ticks = 0
        self._next_expiry = -math.inf  # the first tick recomputes the table

    def handle(self, message: Message, now: float) -> list[Effect]:
        """Handle one message; return the effects for the host."""
        match message:
            case Started():
                return [
                    *self._advertise(now),
                    *self._refresh(now),
                    *self._ship(now, digest=False),
                    self._tick(),
                ]
            case GossipTick():
                self._ticks += 1
                renewed = self._advertise(now) if now >= self._renew_at else []
                digest = self._ticks % DIGEST_EVERY == 0
                expired = _ms(now) >= self._next_expiry  # only then can a route have gone
                return [
                    *renewed,
                    *self._ship(now, digest=digest),
                    *(self._refresh(now) if expired or renewed else []),
                    self._tick(),
                ]
            case RegistryGossip(delta=delta, origin=origin):
                return self._merge(delta, origin, now)
            case DigestOffer(digest=digest, origin=origin):
                return self._anti_entropy(list(digest), origin, now)
            case Unroutable():
                return self._unroutable(message, now)
            case IntentFinished(outcome=outcome):
                return self._step_finished(outcome, now)
            case ChildSpawned():
                return self._refresh(now)
            case _:
                return []

    # ------------------------------------------------------------------ registry

    def _advertise(self, now: float) -> list[Effect]:
        """Write (or renew) this viable system's own adverts."""
        if not self.node.spec.capabilities:
            return []
        self._renew_at = (math.floor(now / RENEW_EVERY) + 1) * RENEW_EVERY
        lease_end = self._renew_at + RENEW_EVERY
        for cap in self.node.spec.capabilities:
            advert = Advert(
                capability=cap.name,
                provider=self.node.path,
                endpoint=f"vsm:{self.node.path}",
                cost=cap.cost,
                zone=cap.zone,
                description=cap.description,
                lease_expires_ms=_ms(lease_end),
            )
            self._outbox.record(self.registry.advertise(advert, _ms(now)))
        count = len(self.node.spec.capabilities)
        return [self._emit("registry.changed", now, origin=self.node.path, adverts=count)]

    def _ship(self, now: float, *, digest: bool) -> list[Effect]:
        effects: list[Effect] = []
        for peer in self._outbox.peers:  # the parent, if any (rule 1)
            delta = self._outbox.take(peer)
            to = self.node.at(SystemId.S4, peer)
            if delta is not None:
                effects.append(
                    Send(to=to, message=RegistryGossip(delta=delta, origin=self.node.path))
                )
            if digest or peer in self._outbox.behind():
                self._outbox.resynced(peer)
                offer = DigestOffer(digest=tuple(self.registry.digest()), origin=self.node.path)
                effects.append(Send(to=to, message=offer))
        return effects

    def _merge(self, delta: RegistryDelta, origin: str, now: float) -> list[Effect]:
        try:
            self.registry.apply(delta, _ms(now))
        except VsmError as exc:
            return [self._emit("registry.refused", now, origin=origin, reason=str(exc))]
        self._outbox.record(delta, origin=origin)
        return [
            self._emit("registry.changed", now, origin=origin, adverts=len(delta)),
            *self._refresh_with(delta.adverts(), now),
        ]

    def _anti_entropy(self, digest: list[bytes], origin: str, now: float) -> list[Effect]:
        """Answer a digest offer with what differs, and this side's digest (rule 1).

        A replica below this one holds its own subtree only: it is compared with that part of
        this one.
        """
        scope = origin if origin.startswith(self.node.path + "/") else None
        if len(digest) != self.registry.buckets:
            return [
                self._emit(
                    "registry.refused",
                    now,
                    origin=origin,
                    reason=f"digest of {len(digest)} buckets",
                )
            ]
        differing = self.registry.differing(digest, scope)
        if not differing:
            return []
        to = self.node.at(SystemId.S4, origin)
        delta = self.registry.bucket_delta(differing, scope)
        mine = tuple(self.registry.digest(scope))
        return [
            Send(to=to, message=RegistryGossip(delta=delta, origin=self.node.path)),
            Send(to=to, message=DigestOffer(digest=mine, origin=self.node.path)),
        ]

    def _refresh(self, now: float) -> list[Effect]:
        """Recompute the unit table for S1 (rule 2); send it only when it changed."""
        node = self.node
        units: dict[str, set[str]] = {c: set(spec.offered()) for c, spec in node.children.items()}
        descriptions: dict[str, str] = {}
        next_expiry = math.inf
        for advert in self.registry.adverts(_ms(now)):
            next_expiry = min(next_expiry, advert.lease_expires_ms)
            unit = node.unit_of(advert.provider)
            if unit is not None:
                units.setdefault(unit, set()).add(advert.capability)
            if advert.description:
                descriptions.setdefault(advert.capability, advert.description)
        self._next_expiry = next_expiry
        return self._send_routes(units, descriptions)

    def _refresh_with(self, adverts: list[Advert], now: float) -> list[Effect]:
        """Add what newly merged ``adverts`` offer to the unit table; a withdrawal recomputes.

        Only the merged keys can have changed, so the table grows from the last one sent; a
        key whose winner is no longer live (withdrawn, or a lease already over) may take a
        unit away, which only a full :meth:`_refresh` can tell.
        """
        if self._routes is None:
            return self._refresh(now)
        now_ms = _ms(now)
        units = {u: set(c) for u, c in self._routes.units.items()}
        descriptions = dict(self._routes.descriptions)
        for merged in adverts:
            advert = self.registry._advert(merged.key)
            if advert is None or not advert.live(now_ms):
                return self._refresh(now)
            self._next_expiry = min(self._next_expiry, advert.lease_expires_ms)
            unit = self.node.unit_of(advert.provider)
            if unit is not None:
                units.setdefault(unit, set()).add(advert.capability)
            if advert.description:
                descriptions.setdefault(advert.capability, advert.description)
        return self._send_routes(units, descriptions)

    def _send_routes(
        self, units: dict[str, set[str]], descriptions: dict[str, str]
    ) -> list[Effect]:
        node = self.node
        routes = Routes(
            units={u: frozenset(c) for u, c in units.items() if u != LOCAL},
            descriptions=descriptions,
        )
        if routes == self._routes:
            return []
        self._routes = routes
        return [Send(to=node.at(SystemId.S1), message=routes)]

    # ------------------------------------------------------------------ plans and proposals

    def _unroutable(self, message: Unroutable, now: float) -> list[Effect]:
        intent = message.intent
        if intent.composite:
            if intent.id in self._plans:
                return []
            steps = [
                dataclasses.replace(
                    step, id=f"{intent.id}/{k}", user=intent.user, deadline=message.deadline
                )
                for k, step in enumerate(intent.plan)
            ]
            plan = _Plan(intent, message.reply_to, message.deadline, steps)
            self._plans[intent.id] = plan
            if intent.parallel:
                return [self._submit_step(plan, k) for k in range(len(steps))]
            return [self._submit_step(plan, 0)]
        capability = message.capability
        for template in self.node.spec.templates:
            if capability is not None and capability in template.offered():
                return [
                    Send(
                        to=self.node.at(SystemId.S5),
                        message=ProposeSpawn(
                            template=template,
                            by=SystemId.S4,
                            why=f"demand for {capability!r} and no unit offers it",
                            intent=intent,
                            reply_to=message.reply_to,
                            deadline=message.deadline,
                        ),
                    )
                ]
        asked = repr(capability) if capability is not None else f"text {intent.text!r}"
        outcome = Outcome.refused(
            intent.id,
            Status.REJECTED,
            Refusal.NO_CAPABILITY,
            SystemId.S4,
            self.node.path,
            f"no unit offers {asked} and no template can",
        )
        return [Reply(to=message.reply_to, outcome=outcome)]

    def _submit_step(self, plan: _Plan, k: int) -> Send:
        step = plan.steps[k]
        self._step_of[step.id] = (plan.intent.id, k)
        plan.next = max(plan.next, k + 1)
        return Send(
            to=self.node.at(SystemId.S5),
            message=SubmitIntent(intent=step, reply_to=self.node.at(SystemId.S4)),
        )

    def _step_finished(self, outcome: Outcome, now: float) -> list[Effect]:
        owner = self._step_of.pop(outcome.intent_id, None)
        if owner is None:
            return []
        plan = self._plans.get(owner[0])
        if plan is None:
            return []
        k = owner[1]
        if outcome.status is not Status.COMPLETED:
            del self._plans[plan.intent.id]
            for other in plan.steps:
                self._step_of.pop(other.id, None)
            failed = Outcome(
                intent_id=plan.intent.id,
                status=outcome.status if outcome.status is Status.REJECTED else Status.FAILED,
                reason=outcome.reason,
                by=outcome.by,
                path=outcome.path,
                detail=f"step {k} ({outcome.intent_id}) did not complete: {outcome.detail}",
            )
            return [Reply(to=plan.reply_to, outcome=failed)]
        plan.results[k] = outcome.result
        if len(plan.results) == len(plan.steps):
            del self._plans[plan.intent.id]
            results = [plan.results[i] for i in range(len(plan.steps))]
            done = Outcome.completed(plan.intent.id, results, self.node.path)
            return [Reply(to=plan.reply_to, outcome=done)]
        if not plan.intent.parallel:
            return [self._submit_step(plan, plan.next)]
        return []

    # ------------------------------------------------------------------ helpers

    def _tick(self) -> Schedule:
        return Schedule(
            delay=self.node.limits.gossip_every,
            to=self.node.at(SystemId.S4),
            message=GossipTick(),
            background=True,
        )

    def _emit(self, kind: str, now: float, **data: object) -> Emit:
        return Emit(event=Event(kind=kind, path=self.node.path, at=now, data=data))
