"""System 4, intelligence: composite plans, spawn proposals, the gossiped capability registry."""

from __future__ import annotations

import pytest

from tests.strategies_model import cap, events, of, replied, sends_to, sent, viable
from vsm.address import Address, SystemId
from vsm.crdt import LWWRegister, ORMap, Stamp
from vsm.effects import Effect, Reply, Schedule, Send
from vsm.intents import Intent, Outcome, Refusal, Status
from vsm.messages import (
    DigestOffer,
    GossipTick,
    IntentFinished,
    ProposeSpawn,
    RegistryGossip,
    Routes,
    Started,
    SubmitIntent,
    Unroutable,
)
from vsm.registry import Advert, CapabilityRegistry, RegistryDelta
from vsm.spec import NodeSpec
from vsm.systems import ViableSystem

TEMPLATE = NodeSpec(name="t", capabilities=(cap("t.echo", description="make patterns"),))
CHILD = NodeSpec(name="a", capabilities=(cap("a.x", description="child work"),))
SPEC = NodeSpec(
    name="root",
    capabilities=(cap("root.x", description="root work"),),
    children=(CHILD,),
    templates=(TEMPLATE,),
)
CLIENT = Address("up", SystemId.S1)
S4 = Address("root", SystemId.S4)
S5 = Address("root", SystemId.S5)


def unroutable(vs, intent: Intent, capability: str | None, now: float = 0.0, deadline=20.0):
    message = Unroutable(intent=intent, reply_to=CLIENT, deadline=deadline, capability=capability)
    return vs.s4.handle(message, now)


def finished(vs, outcome: Outcome, now: float = 1.0):
    return vs.s4.handle(IntentFinished(outcome=outcome), now)


def plan(parallel: bool) -> Intent:
    return Intent(
        id="p",
        user="alice",
        parallel=parallel,
        plan=(
            Intent(id="s0", capability="root.x", params={"n": 0}),
            Intent(id="s1", capability="a.x", params={"n": 1}, user="mallory"),
            Intent(id="s2", text="root work"),
        ),
    )


# ---------------------------------------------------------------- plans (rule 3)


def test_sequential_plan_runs_steps_one_after_another_and_aggregates_in_order():
    """A sequential plan submits step k+1 only after step k completed; results in step order."""
    vs = viable(SPEC)
    effects = unroutable(vs, plan(parallel=False), None, deadline=20.0)
    for k in range(3):
        assert sends_to(effects, SubmitIntent) == [S5]
        (submit,) = sent(effects, SubmitIntent)
        step = submit.intent
        assert (step.id, step.user, step.deadline, submit.reply_to) == (f"p/{k}", "alice", 20.0, S4)
        assert step.params == plan(False).plan[k].params
        effects = finished(vs, Outcome.completed(step.id, f"r{k}", "root"))
    assert of(effects, Reply) == [
        Reply(to=CLIENT, outcome=Outcome.completed("p", ["r0", "r1", "r2"], "root"))
    ]


def test_parallel_plan_submits_every_step_at_once_and_aggregates_in_step_order():
    """A parallel plan submits all steps at once; results come back in step order, not arrival."""
    vs = viable(SPEC)
    effects = unroutable(vs, plan(parallel=True), None)
    assert [s.intent.id for s in sent(effects, SubmitIntent)] == ["p/0", "p/1", "p/2"]
    assert finished(vs, Outcome.completed("p/2", "r2", "root")) == []
    assert finished(vs, Outcome.completed("p/0", "r0", "root")) == []
    effects = finished(vs, Outcome.completed("p/1", "r1", "root/a"))
    assert replied(effects) == [Outcome.completed("p", ["r0", "r1", "r2"], "root")]


@pytest.mark.parametrize("parallel", [False, True])
def test_failing_step_fails_the_plan_naming_the_step(parallel):
    """A step that fails fails the plan with its reason, naming the step; later steps are moot."""
    vs = viable(SPEC)
    unroutable(vs, plan(parallel), None)
    finished(vs, Outcome.completed("p/0", "r0", "root"))
    failure = Outcome.refused(
        "p/1", Status.FAILED, Refusal.UNIT_FAILED, SystemId.S1, "root/a", "kernel raised: boom"
    )
    effects = finished(vs, failure)
    (outcome,) = replied(effects)
    assert (outcome.intent_id, outcome.status, outcome.reason, outcome.by, outcome.path) == (
        "p",
        Status.FAILED,
        Refusal.UNIT_FAILED,
        SystemId.S1,
        "root/a",
    )
    assert "step 1 (p/1)" in outcome.detail
    assert "boom" in outcome.detail
    assert not sent(effects, SubmitIntent)
    # Whatever the other steps do now is dropped: the plan has its one outcome.
    assert finished(vs, Outcome.completed("p/2", "r2", "root")) == []


def test_rejected_step_rejects_the_plan():
    """A step rejected (say by policy) makes the plan rejected, with the step's reason."""
    vs = viable(SPEC)
    unroutable(vs, plan(parallel=False), None)
    refusal = Outcome.refused("p/0", Status.REJECTED, Refusal.POLICY, SystemId.S5, "root", "zone")
    (outcome,) = replied(finished(vs, refusal))
    assert (outcome.status, outcome.reason, outcome.by) == (
        Status.REJECTED,
        Refusal.POLICY,
        SystemId.S5,
    )


def test_duplicate_plan_and_stray_step_outcomes_are_ignored():
    """A plan already running is not started twice; outcomes of unknown steps change nothing."""
    vs = viable(SPEC)
    unroutable(vs, plan(parallel=True), None)
    assert unroutable(vs, plan(parallel=True), None) == []
    assert finished(vs, Outcome.completed("zzz/0", 1, "root")) == []
    assert finished(vs, Outcome.completed("p/0", "r0", "root")) == []
    assert finished(vs, Outcome.completed("p/0", "again", "root")) == []


# ---------------------------------------------------------------- demand (rule 4)


def test_demand_for_a_template_capability_proposes_a_spawn_to_s5():
    """Demand nobody serves but a template can: S4 proposes spawning it, with the intent."""
    vs = viable(SPEC)
    intent = Intent(id="i", capability="t.echo")
    effects = unroutable(vs, intent, "t.echo", 3.0, deadline=9.0)
    assert sends_to(effects, ProposeSpawn) == [S5]
    (proposal,) = sent(effects, ProposeSpawn)
    assert (proposal.template, proposal.by, proposal.intent) == (TEMPLATE, SystemId.S4, intent)
    assert (proposal.reply_to, proposal.deadline) == (CLIENT, 9.0)
    assert "'t.echo'" in proposal.why
    assert not replied(effects)


@pytest.mark.parametrize(
    ("intent", "capability", "named"),
    [
        (Intent(id="i", capability="nobody.offers"), "nobody.offers", "'nobody.offers'"),
        (Intent(id="i", text="zebra quantum"), None, "'zebra quantum'"),
    ],
)
def test_demand_no_template_serves_is_rejected_no_capability(intent, capability, named):
    """Demand no unit and no template serves is rejected (NO_CAPABILITY) by S4, naming it."""
    vs = viable(SPEC)
    effects = unroutable(vs, intent, capability)
    assert not sent(effects, ProposeSpawn)
    (reply,) = of(effects, Reply)
    assert reply.to == CLIENT
    outcome = reply.outcome
    assert (outcome.status, outcome.reason, outcome.by, outcome.path) == (
        Status.REJECTED,
        Refusal.NO_CAPABILITY,
        SystemId.S4,
        "root",
    )
    assert named in outcome.detail


# ---------------------------------------------------------------- the registry (rules 1, 2)


def exchange(nodes: dict[str, ViableSystem], effects: dict[str, list[Effect]], now: float) -> None:
    """Deliver every S4-to-S4 message between ``nodes`` until nobody has anything to say."""
    pending = [e for out in effects.values() for e in out]
    rounds = 0
    while pending:
        rounds += 1
        assert rounds < 10_000
        effect = pending.pop(0)
        if isinstance(effect, Send) and effect.to.system is SystemId.S4:
            target = nodes.get(effect.to.path)
            if target is not None:
                pending += target.s4.handle(effect.message, now)


def pair() -> dict[str, ViableSystem]:
    root = viable(SPEC)
    child = root.child("root/a", CHILD)
    return {"root": root, "root/a": child}


def tick_all(nodes, now: float) -> None:
    exchange(nodes, {p: vs.s4.handle(GossipTick(), now) for p, vs in nodes.items()}, now)


def scoped_equal(parent: CapabilityRegistry, child: CapabilityRegistry) -> bool:
    """The child's replica is exactly the parent's part within the child's subtree."""
    whole = child.bucket_delta(range(child.buckets))
    return whole == child.part(child.replica) == parent.part(child.replica)


def test_gossip_carries_a_childs_adverts_up_and_keeps_the_child_scoped():
    """The child's adverts reach the parent; the child holds only its own subtree (rule 1)."""
    nodes = pair()
    exchange(nodes, {p: vs.s4.handle(Started(), 0.0) for p, vs in nodes.items()}, 0.0)
    root, child = nodes["root"].s4.registry, nodes["root/a"].s4.registry
    assert {(a.capability, a.provider) for a in root.adverts(0)} == {
        ("root.x", "root"),
        ("a.x", "root/a"),
    }
    assert {(a.capability, a.provider) for a in child.adverts(0)} == {("a.x", "root/a")}
    assert scoped_equal(root, child)


def test_digest_anti_entropy_repairs_lost_deltas():
    """When the first deltas are lost, the periodic digest offer brings the replicas together."""
    nodes = pair()
    for vs in nodes.values():
        vs.s4.handle(Started(), 0.0)  # every delta of the start is lost
    assert not scoped_equal(nodes["root"].s4.registry, nodes["root/a"].s4.registry)
    for now in (1.0, 2.0, 3.0):
        tick_all(nodes, now)
    assert scoped_equal(nodes["root"].s4.registry, nodes["root/a"].s4.registry)
    assert len(nodes["root"].s4.registry.adverts(3_000)) == 2


def test_a_parent_gives_a_child_that_lost_its_state_back_its_subtree():
    """A grandchild's advert reaches the root; a child restarted empty gets its part back."""
    root = viable(SPEC)
    a = root.child("root/a", CHILD)
    deep = a.child("root/a/b", CHILD.model_copy(update={"name": "b"}))
    siblings = root.child("root/c", CHILD.model_copy(update={"name": "c"}))
    nodes = {vs.node.path: vs for vs in (root, a, deep, siblings)}
    exchange(nodes, {p: vs.s4.handle(Started(), 0.0) for p, vs in nodes.items()}, 0.0)
    for now in (1.0, 2.0, 3.0):
        tick_all(nodes, now)
    providers = {a.provider for a in root.s4.registry.adverts(3_000)}
    assert providers == {"root", "root/a", "root/a/b", "root/c"}
    assert {x.provider for x in a.s4.registry.adverts(3_000)} == {"root/a", "root/a/b"}
    assert {x.provider for x in siblings.s4.registry.adverts(3_000)} == {"root/c"}
    # root/a comes back with nothing (a new incarnation, no checkpoint).
    nodes["root/a"] = fresh = root.child("root/a", CHILD, incarnation=2)
    exchange(nodes, {"root/a": fresh.s4.handle(Started(), 4.0)}, 4.0)
    for now in (5.0, 6.0, 7.0):
        tick_all(nodes, now)
    assert {x.provider for x in fresh.s4.registry.adverts(7_000)} == {"root/a", "root/a/b"}
    for path, vs in nodes.items():
        if path != "root":
            assert scoped_equal(nodes[path.rsplit("/", 1)[0]].s4.registry, vs.s4.registry), path


def test_registry_tells_s1_which_child_serves_what_it_heard_of():
    """A live advert from below child ``c`` makes ``c`` a unit for it (Routes to S1)."""
    vs = viable(SPEC)
    deep = CapabilityRegistry("root/a/b")
    advert = Advert(
        "deep.x", "root/a/b", endpoint="e", description="deep work", lease_expires_ms=9_000
    )
    delta = deep.advertise(advert, 1_000)
    effects = vs.s4.handle(RegistryGossip(delta=delta, origin="root/a"), 1.0)
    (routes,) = sent(effects, Routes, Address("root", SystemId.S1))
    assert routes.units["root/a"] == frozenset({"a.x", "deep.x"})
    assert routes.descriptions["deep.x"] == "deep work"
    assert events(effects, "registry.changed")[0].data == {"origin": "root/a", "adverts": 1}
    # Once its lease has ended the advert no longer routes.
    later = vs.s4.handle(GossipTick(), 10.0)
    (routes,) = sent(later, Routes)
    assert routes.units["root/a"] == frozenset({"a.x"})


def test_foreign_written_delta_is_refused_with_an_event():
    """A delta carrying an entry written by someone other than its provider is refused whole."""
    vs = viable(SPEC)
    before = vs.s4.registry.to_data()
    forged = ORMap()
    victim = Advert("a.x", "root/a", endpoint="evil", lease_expires_ms=10**9)
    forged.update(
        "root/mallory", ("a.x", "root/a"), LWWRegister(victim, Stamp(1, 0, "root/mallory"))
    )
    effects = vs.s4.handle(RegistryGossip(delta=RegistryDelta(forged), origin="root/mallory"), 1.0)
    (event,) = events(effects, "registry.refused")
    assert event.data["origin"] == "root/mallory"
    assert event.data["reason"]
    assert not sent(effects, Routes)
    assert not events(effects, "registry.changed")
    assert vs.s4.registry.to_data() == before


def test_digest_of_the_wrong_size_is_refused_with_an_event():
    """A digest with a different number of buckets is refused, not answered."""
    vs = viable(SPEC)
    effects = vs.s4.handle(DigestOffer(digest=(b"x",), origin="root/a"), 1.0)
    assert [e.data["origin"] for e in events(effects, "registry.refused")] == ["root/a"]
    assert not of(effects, Send)


def test_adverts_are_renewed_on_the_grid():
    """Own adverts are written at start and renewed at the next multiple of the renewal period."""
    vs = viable(SPEC)
    assert events(vs.s4.handle(Started(), 0.5), "registry.changed")
    (advert,) = vs.s4.registry.lookup("root.x", 500)
    assert advert.lease_expires_ms == 60_000
    assert not events(vs.s4.handle(GossipTick(), 29.9), "registry.changed")
    assert events(vs.s4.handle(GossipTick(), 30.0), "registry.changed")
    (advert,) = vs.s4.registry.lookup("root.x", 30_000)
    assert advert.lease_expires_ms == 90_000


def test_gossip_tick_rearms_in_the_background():
    """Each gossip tick schedules the next one, as a background timer."""
    vs = viable(SPEC)
    (timer,) = of(vs.s4.handle(GossipTick(), 1.0), Schedule)
    assert (timer.message, timer.background, timer.to) == (GossipTick(), True, S4)
