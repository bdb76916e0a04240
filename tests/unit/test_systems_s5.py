"""System 5, policy: admission, hot-patched policies, the recursion guard, the homeostat, pain."""

from __future__ import annotations

import pytest

from tests.strategies_model import cap, events, of, pump, replied, sends_to, sent, viable
from vsm.address import Address, SystemId
from vsm.effects import Reply, RunKernel, Schedule, Spawn
from vsm.intents import Intent, Refusal, Status
from vsm.messages import (
    Algedonic,
    Assign,
    ChildSpawned,
    ChildStarted,
    Coordinate,
    Dispatch,
    ParentPolicy,
    PatchPolicy,
    PolicyTick,
    ProposeSpawn,
    Redeliver,
    ReportStrain,
    SpawnFailed,
    Started,
    SubmitIntent,
)
from vsm.spec import LimitsSpec, NodeSpec, PolicySpec

S1_OF_PARENT = Address("root", SystemId.S1)

TEMPLATE = NodeSpec(name="t", capabilities=(cap("t.echo"),))


def node() -> NodeSpec:
    """A leaf node with one echo capability and a template."""
    return NodeSpec(name="n", capabilities=(cap("n.echo"),), templates=(TEMPLATE,))


def system5(path: str = "root", **policy: object):
    """The S5 of a viable system at ``path`` whose parent policy has ``policy``'s fields."""
    vs = viable(node(), path, policy=PolicySpec(**policy))
    return vs.s5


def submit(s5, intent: Intent, now: float = 0.0, reply_to: Address | None = None):
    return s5.handle(SubmitIntent(intent=intent, reply_to=reply_to), now)


def only_refusal(effects):
    (outcome,) = replied(effects)
    assert outcome.status is Status.REJECTED
    assert outcome.by is SystemId.S5
    return outcome


# ---------------------------------------------------------------- admission (rule 1)


def test_zone_not_granted_is_refused_by_s5_naming_user_and_zone():
    """An intent in a zone its user is not granted is rejected (POLICY) by S5, saying why."""
    s5 = system5(zones={"alice": ("secret",)})
    effects = submit(s5, Intent(id="i", capability="n.echo", user="bob", zone="secret"), 1.0)
    outcome = only_refusal(effects)
    assert outcome.reason is Refusal.POLICY
    assert outcome.path == "root"
    assert "'bob'" in outcome.detail
    assert "'secret'" in outcome.detail
    assert not sent(effects, Dispatch)
    assert [e.data["reason"] for e in events(effects, "intent.rejected")] == ["policy"]


def test_granted_zone_is_admitted():
    """A user granted a zone beyond the open ones may act in it."""
    s5 = system5(zones={"alice": ("secret",)})
    effects = submit(s5, Intent(id="i", capability="n.echo", user="alice", zone="secret"))
    assert len(sent(effects, Dispatch)) == 1
    assert not replied(effects)


def test_too_many_params_is_refused():
    """More parameters than ``max_params`` is a POLICY rejection that gives both numbers."""
    s5 = system5(max_params=1)
    effects = submit(s5, Intent(id="i", capability="n.echo", params={"a": 1, "b": 2}))
    outcome = only_refusal(effects)
    assert outcome.reason is Refusal.POLICY
    assert "2 parameters" in outcome.detail
    assert "allows 1" in outcome.detail


@pytest.mark.parametrize("deadline", [4.0, 5.0])
def test_past_deadline_is_refused(deadline):
    """An intent whose deadline is not after ``now`` is refused (POLICY) on arrival."""
    s5 = system5()
    effects = submit(s5, Intent(id="i", capability="n.echo", deadline=deadline), 5.0)
    outcome = only_refusal(effects)
    assert outcome.reason is Refusal.POLICY
    assert "already passed" in outcome.detail


def test_accepted_intent_is_dispatched_to_s1_with_the_default_deadline():
    """An admitted intent goes to this S1 as a Dispatch due at now + default_deadline."""
    s5 = system5(default_deadline=7.5)
    intent = Intent(id="i", capability="n.echo")
    effects = submit(s5, intent, 10.0, reply_to=S1_OF_PARENT)
    assert sends_to(effects, Dispatch) == [Address("root", SystemId.S1)]
    assert sent(effects, Dispatch) == [
        Dispatch(intent=intent, reply_to=S1_OF_PARENT, deadline=17.5)
    ]
    assert [e.data["intent"] for e in events(effects, "intent.accepted")] == ["i"]


def test_explicit_deadline_is_kept():
    """An intent that carries its own deadline is dispatched with that deadline."""
    s5 = system5(default_deadline=7.5)
    effects = submit(s5, Intent(id="i", capability="n.echo", deadline=100.0), 10.0)
    assert [d.deadline for d in sent(effects, Dispatch)] == [100.0]


def test_duplicate_intent_id_is_never_run_twice_while_its_deadline_holds():
    """A resubmitted intent id is not dispatched again: S1 is asked to redeliver its answer."""
    s5 = system5(default_deadline=10.0)
    intent = Intent(id="i", capability="n.echo")
    assert len(sent(submit(s5, intent, 0.0, S1_OF_PARENT), Dispatch)) == 1
    for now in (1.0, 10.0):
        effects = submit(s5, intent, now, S1_OF_PARENT)
        assert not sent(effects, Dispatch)
        assert not replied(effects)
        assert sent(effects, Redeliver, Address("root", SystemId.S1)) == [
            Redeliver(intent_id="i", reply_to=S1_OF_PARENT)
        ]


def test_seen_intent_id_is_forgotten_after_its_deadline():
    """Once an intent's deadline has passed, its id no longer blocks a new submission."""
    s5 = system5(default_deadline=10.0)
    intent = Intent(id="i", capability="n.echo")
    submit(s5, intent, 0.0)
    assert len(sent(submit(s5, intent, 10.5), Dispatch)) == 1


def test_client_intent_id_with_a_slash_is_refused():
    """Ids ``plan/k`` belong to plan steps: a client's intent named so is refused (POLICY)."""
    s5 = system5()
    outcome = only_refusal(submit(s5, Intent(id="p/0", capability="n.echo")))
    assert outcome.reason is Refusal.POLICY
    assert "reserved" in outcome.detail
    # A parent (or S4) forwarding a step may use such an id.
    assert sent(submit(s5, Intent(id="p/1", capability="n.echo"), reply_to=S1_OF_PARENT), Dispatch)


def test_refused_intent_is_not_remembered():
    """A rejection does not mark the id as seen: a later, admissible resubmission passes."""
    s5 = system5(max_params=0)
    only_refusal(submit(s5, Intent(id="i", capability="n.echo", params={"a": 1})))
    assert len(sent(submit(s5, Intent(id="i", capability="n.echo")), Dispatch)) == 1


# ---------------------------------------------------------------- policy (rule 2)


def test_patch_must_raise_the_version():
    """A patch whose version does not raise the current one is refused, the policy unchanged."""
    s5 = system5(max_params=5, version=3)
    before = s5.policy
    for version in (1, 3):
        effects = s5.handle(PatchPolicy(policy=PolicySpec(max_params=1, version=version)), 1.0)
        (event,) = events(effects, "policy.refused")
        assert f"version {version}" in event.data["reason"]
        assert s5.policy == before
    effects = s5.handle(PatchPolicy(policy=PolicySpec(max_params=1, version=4)), 2.0)
    assert [e.data["version"] for e in events(effects, "policy.patched")] == [4]
    assert s5.policy.max_params == 1


def test_patch_version_is_compared_with_the_local_policy():
    """With a local policy, a patch must raise the local version."""
    spec = NodeSpec(name="n", policy=PolicySpec(version=5))
    s5 = viable(spec, "root", policy=PolicySpec(version=1)).s5
    assert events(s5.handle(PatchPolicy(policy=PolicySpec(version=5)), 0.0), "policy.refused")
    assert events(s5.handle(PatchPolicy(policy=PolicySpec(version=6)), 0.0), "policy.patched")


def test_patch_applies_to_new_intents_only():
    """A patch closing a zone refuses later intents, but one already in flight still completes."""
    vs = viable(node(), "root", policy=PolicySpec(open_zones=("default", "eu")))
    first = Intent(id="first", capability="n.echo", zone="eu", params={"x": 1})
    admitted = vs.s5.handle(SubmitIntent(intent=first, reply_to=None), 0.0)
    (dispatch,) = sent(admitted, Dispatch)
    # S1 routes it through S2 to the local kernel; stop before the kernel answers.
    (coordinate,) = sent(vs.s1.handle(dispatch, 0.0), Coordinate)
    (assign,) = sent(vs.s2.handle(coordinate, 0.0), Assign)
    started = vs.s1.handle(assign, 0.0)
    assert of(started, RunKernel)
    patch = PolicySpec(open_zones=("default",), version=2)
    patched = vs.s5.handle(PatchPolicy(policy=patch), 0.5)
    assert not replied(patched)
    assert vs.s1.in_flight == 1
    # The kernel answers after the patch: the intent admitted before it completes.
    finished = pump(vs, started, 1.0)
    (outcome,) = replied(finished)
    assert (outcome.intent_id, outcome.status, outcome.result) == (
        "first",
        Status.COMPLETED,
        {"x": 1},
    )
    # A new intent in the closed zone is refused.
    later = vs.s5.handle(
        SubmitIntent(intent=Intent(id="later", capability="n.echo", zone="eu")), 2.0
    )
    assert only_refusal(later).reason is Refusal.POLICY


def test_patch_cannot_loosen_the_parent_policy():
    """A local patch is tightened by the parent's policy: no zone opened, no limit raised."""
    parent = PolicySpec(
        open_zones=("default",),
        zones={"alice": ("eu",)},
        max_params=4,
        max_depth=2,
        default_deadline=10.0,
        algedonic_threshold=0.6,
    )
    s5 = system5("root/n", **parent.model_dump())
    loose = PolicySpec(
        open_zones=("default", "secret"),
        zones={"alice": ("eu", "secret"), "bob": ("eu",)},
        max_params=100,
        max_depth=30,
        default_deadline=99.0,
        algedonic_threshold=0.1,
        version=2,
    )
    s5.handle(PatchPolicy(policy=loose), 0.0)
    effective = s5.policy
    assert effective.version == 2
    assert effective.open_zones == ("default",)
    assert effective.zones == {"alice": ("eu",)}
    assert (effective.max_params, effective.max_depth) == (4, 2)
    assert effective.default_deadline == 10.0
    assert effective.algedonic_threshold == 0.6
    refused = submit(s5, Intent(id="i", capability="n.echo", user="bob", zone="eu"))
    assert only_refusal(refused).reason is Refusal.POLICY


def test_patch_is_passed_to_every_child():
    """After a patch, each child's S5 is sent the new effective policy (``ParentPolicy``)."""
    spec = NodeSpec(
        name="root",
        children=(NodeSpec(name="b", capabilities=(cap("b.x"),)), NodeSpec(name="a")),
    )
    s5 = viable(spec).s5
    effects = s5.handle(PatchPolicy(policy=PolicySpec(max_params=2, version=2)), 0.0)
    assert sends_to(effects, ParentPolicy) == [
        Address("root/a", SystemId.S5),
        Address("root/b", SystemId.S5),
    ]
    assert all(p.policy == s5.policy for p in sent(effects, ParentPolicy))
    assert s5.policy.max_params == 2


def test_parent_policy_is_tightened_by_the_local_one_and_passed_on():
    """A child given its parent's policy tightens it by the local one and passes it on."""
    local = PolicySpec(max_params=3, version=1)
    spec = NodeSpec(name="a", policy=local, children=(NodeSpec(name="x"),))
    vs = viable(spec, "root/a", policy=PolicySpec(max_params=10))
    assert vs.s5.policy.max_params == 3
    parent = PolicySpec(max_params=2, open_zones=("default", "eu"), version=7)
    effects = vs.s5.handle(ParentPolicy(policy=parent), 1.0)
    assert vs.s5.parent_policy == parent
    assert vs.s5.policy == parent.tighten(local)
    assert vs.s5.policy.max_params == 2
    assert sent(effects, ParentPolicy, Address("root/a/x", SystemId.S5)) == [
        ParentPolicy(policy=vs.s5.policy)
    ]


def test_policy_is_repeated_to_the_children_every_gossip_period():
    """A background PolicyTick repeats the effective policy to each child, so losses heal."""
    spec = NodeSpec(name="root", children=(NodeSpec(name="a"),))
    vs = viable(spec, limits=LimitsSpec(gossip_every=2.0))
    (tick,) = of(vs.s5.handle(Started(), 0.0), Schedule)
    assert (tick.delay, tick.message, tick.background) == (2.0, PolicyTick(), True)
    effects = vs.s5.handle(PolicyTick(), 2.0)
    assert sent(effects, ParentPolicy, Address("root/a", SystemId.S5)) == [
        ParentPolicy(policy=vs.s5.policy)
    ]
    assert [t.message for t in of(effects, Schedule)] == [PolicyTick()]


def test_repeated_parent_policy_changes_nothing():
    """A child told the parent policy it already holds does nothing (no event, no cascade)."""
    spec = NodeSpec(name="a", children=(NodeSpec(name="x"),))
    vs = viable(spec, "root/a", policy=PolicySpec(max_params=9))
    assert vs.s5.handle(ParentPolicy(policy=PolicySpec(max_params=9)), 1.0) == []


def test_stale_parent_policy_is_ignored():
    """A ParentPolicy older than the one in force (delayed, duplicated) does not roll it back."""
    s5 = system5("root/n", version=1)
    newer = PolicySpec(max_params=1, open_zones=("default",), version=3)
    older = PolicySpec(max_params=50, open_zones=("default", "eu"), version=2)
    s5.handle(ParentPolicy(policy=newer), 1.0)
    s5.handle(ParentPolicy(policy=older), 2.0)
    assert s5.parent_policy == newer
    assert (s5.policy.max_params, s5.policy.open_zones) == (1, ("default",))


# ---------------------------------------------------------------- the recursion guard (rule 3)


def propose(s5, now: float = 0.0, intent: Intent | None = None, template: NodeSpec = TEMPLATE):
    return s5.handle(
        ProposeSpawn(
            template=template,
            by=SystemId.S4,
            why="demand for 't.echo'",
            intent=intent,
            reply_to=S1_OF_PARENT,
            deadline=50.0,
        ),
        now,
    )


def test_started_spawns_the_static_children_in_order():
    """On start, S5 asks the host to spawn each static child, sorted by path."""
    spec = NodeSpec(name="root", children=(NodeSpec(name="b"), NodeSpec(name="a")))
    effects = viable(spec).s5.handle(Started(), 0.0)
    assert [(s.path, s.spec.name) for s in of(effects, Spawn)] == [("root/a", "a"), ("root/b", "b")]


def test_accepted_spawn_starts_the_child_and_redispatches_the_intent():
    """An accepted proposal spawns the template, tells S1 to S4, and re-dispatches the intent."""
    vs = viable(node(), "root")
    intent = Intent(id="i", capability="t.echo")
    effects = propose(vs.s5, 1.0, intent)
    assert of(effects, Spawn) == [Spawn(path="root/t", spec=TEMPLATE)]
    assert sends_to(effects, ChildSpawned) == [Address("root", s) for s in SystemId if s != "S5"]
    assert set(sent(effects, ChildSpawned)) == {
        ChildSpawned(path="root/t", offers=frozenset({"t.echo"}))
    }
    assert sent(effects, Dispatch) == [
        Dispatch(intent=intent, reply_to=S1_OF_PARENT, deadline=50.0)
    ]
    assert vs.node.children["root/t"] == TEMPLATE
    assert vs.s5.decisions[-1].accepted


def test_proposal_for_a_running_child_only_reroutes():
    """A second proposal for a child that runs already spawns nothing and re-dispatches."""
    s5 = viable(node(), "root").s5
    propose(s5, 0.0)
    effects = propose(s5, 1.0, Intent(id="j", capability="t.echo"))
    assert not of(effects, Spawn)
    assert sends_to(effects, ChildSpawned) == [Address("root", SystemId.S1)]
    assert len(sent(effects, Dispatch)) == 1
    assert s5.decisions[-1].why == "already running"


def test_spawn_past_the_depth_guard_is_refused():
    """A child deeper than ``max_depth`` is refused (DEPTH_GUARD) by S5, naming depth and guard."""
    s5 = system5("root/n", max_depth=1)
    effects = propose(s5, 2.0, Intent(id="i", capability="t.echo"))
    assert not of(effects, Spawn)
    assert not sent(effects, Dispatch)
    (outcome,) = replied(effects)
    assert (outcome.status, outcome.reason, outcome.by) == (
        Status.REJECTED,
        Refusal.DEPTH_GUARD,
        SystemId.S5,
    )
    assert "root/n/t" in outcome.detail
    assert "depth 2" in outcome.detail
    assert "guard is 1" in outcome.detail
    assert of(effects, Reply)[0].to == S1_OF_PARENT
    assert [e.data["reason"] for e in events(effects, "spawn.refused")] == ["depth_guard"]
    assert "root/n/t" not in s5.node.children


def test_spawn_whose_static_children_pass_the_guard_is_refused():
    """The guard counts a template's own static children: they would be spawned with it."""
    s5 = system5("root/n", max_depth=2)
    tall = NodeSpec(name="t", children=(NodeSpec(name="below", capabilities=(cap("x"),)),))
    effects = propose(s5, 0.0, Intent(id="i", capability="x"), template=tall)
    assert not of(effects, Spawn)
    assert [o.reason for o in replied(effects)] == [Refusal.DEPTH_GUARD]


def test_static_child_past_the_guard_is_not_started_and_says_why():
    """A static child whose subtree would pass the guard is pruned: not spawned, not routed."""
    tall = NodeSpec(name="c", children=(NodeSpec(name="g", capabilities=(cap("g.x"),)),))
    spec = NodeSpec(name="n", children=(tall, NodeSpec(name="ok", capabilities=(cap("ok.x"),))))
    vs = viable(spec, "root/n", policy=PolicySpec(max_depth=2))
    assert sorted(vs.node.children) == ["root/n/ok"]
    assert "root/n/c" not in vs.s1.units()
    effects = vs.s5.handle(Started(), 0.0)
    assert [s.path for s in of(effects, Spawn)] == ["root/n/ok"]
    (refused,) = events(effects, "spawn.refused")
    assert refused.data["path"] == "root/n/c"
    assert "depth 3" in refused.data["reason"]
    decision = vs.s5.decisions[-1]
    assert (decision.by, decision.accepted) == (SystemId.S5, False)


def test_spawn_at_the_guard_is_allowed():
    """A child exactly at ``max_depth`` may be spawned."""
    s5 = system5("root/n", max_depth=2)
    assert of(propose(s5, 0.0), Spawn)


def test_circuit_opens_after_threshold_spawn_failures_in_a_row():
    """``spawn_failure_threshold`` failed spawns in a row open the breaker: CIRCUIT_OPEN."""
    s5 = system5(spawn_failure_threshold=2, spawn_reset_after=30.0)
    for now in (1.0, 2.0):
        effects = s5.handle(SpawnFailed(path="root/t", reason="host refused"), now)
        assert events(effects, "spawn.failed")[0].data == {
            "path": "root/t",
            "reason": "host refused",
        }
    effects = propose(s5, 3.0, Intent(id="i", capability="t.echo"))
    assert not of(effects, Spawn)
    assert not sent(effects, Dispatch)
    (outcome,) = replied(effects)
    assert (outcome.status, outcome.reason, outcome.by) == (
        Status.REJECTED,
        Refusal.CIRCUIT_OPEN,
        SystemId.S5,
    )
    assert "breaker is open" in outcome.detail
    assert [e.data["reason"] for e in events(effects, "spawn.refused")] == ["circuit_open"]
    assert not s5.decisions[-1].accepted
    # After the reset time a trial spawn is allowed again.
    assert of(propose(s5, 33.0), Spawn)


def test_circuit_opens_when_every_accepted_spawn_fails():
    """Accepted spawns that all fail open the breaker: accepting is no success that resets it."""
    # The host reports SpawnFailed for a spawn S5 accepted; only a started child is a success.
    s5 = system5(spawn_failure_threshold=2, spawn_reset_after=30.0)
    for now in (1.0, 2.0):
        assert of(propose(s5, now), Spawn)
        s5.handle(SpawnFailed(path="root/t", reason="host refused"), now + 0.1)
    effects = propose(s5, 3.0, Intent(id="i", capability="t.echo"))
    assert [o.reason for o in replied(effects)] == [Refusal.CIRCUIT_OPEN]
    assert not of(effects, Spawn)


def test_started_child_closes_the_breaker():
    """A spawned child's first heartbeat (ChildStarted from S2) is the success that resets it."""
    s5 = system5(spawn_failure_threshold=2, spawn_reset_after=30.0)
    s5.handle(SpawnFailed(path="root/t", reason="x"), 1.0)
    s5.handle(SpawnFailed(path="root/t", reason="x"), 2.0)
    assert not of(propose(s5, 3.0), Spawn)
    assert of(propose(s5, 33.0), Spawn)  # the trial after the reset time
    assert s5.handle(ChildStarted(path="root/t"), 33.1) == []
    s5.node.children.pop("root/t")
    s5.handle(SpawnFailed(path="root/t", reason="x"), 34.0)  # one failure: below the threshold
    assert of(propose(s5, 35.0), Spawn)


def test_one_failure_below_the_threshold_keeps_spawning():
    """Fewer failures than the threshold leave the breaker closed."""
    s5 = system5(spawn_failure_threshold=3)
    s5.handle(SpawnFailed(path="root/t", reason="x"), 0.0)
    s5.handle(SpawnFailed(path="root/t", reason="x"), 0.0)
    assert of(propose(s5, 0.0), Spawn)


# ---------------------------------------------------------------- the homeostat (rule 4)


def test_every_proposal_is_recorded_with_its_reason():
    """Accepted and refused proposals each leave a decision naming who proposed what, and why."""
    s5 = system5("root/n", max_depth=2)
    propose(s5, 1.0)
    propose(s5, 2.0)
    deep = system5("root/n", max_depth=1)
    propose(deep, 3.0)
    first, second = s5.decisions
    assert (first.at, first.by, first.accepted, first.why) == (
        1.0,
        SystemId.S4,
        True,
        "demand without a unit",
    )
    assert first.proposal == "spawn root/n/t (demand for 't.echo')"
    assert (second.accepted, second.why) == (True, "already running")
    (refused,) = deep.decisions
    assert not refused.accepted
    assert "guard is 1" in refused.why


def test_strain_from_s3_holds_spawning_steady_for_two_audit_periods():
    """While S3's strain report is fresh, spawn proposals are refused (POLICY), saying why."""
    vs = viable(node(), "root", limits=LimitsSpec(audit_every=5.0))
    effects = vs.s5.handle(ReportStrain(level=0.8, detail="4 of 5 intents failed"), 10.0)
    assert events(effects, "homeostat.steady")[0].data == {
        "level": 0.8,
        "detail": "4 of 5 intents failed",
    }
    steady = vs.s5.decisions[-1]
    assert (steady.by, steady.accepted, steady.why) == (SystemId.S3, True, "4 of 5 intents failed")
    refused = propose(vs.s5, 19.0, Intent(id="i", capability="t.echo"))
    assert not of(refused, Spawn)
    (outcome,) = replied(refused)
    assert (outcome.reason, outcome.by) == (Refusal.POLICY, SystemId.S5)
    assert "4 of 5 intents failed" in outcome.detail
    assert not vs.s5.decisions[-1].accepted
    assert of(propose(vs.s5, 20.0), Spawn)


# ---------------------------------------------------------------- algedonic signals (rule 5)


@pytest.mark.parametrize(
    ("intensity", "forwarded"),
    [(0.49, False), (-0.49, False), (0.5, True), (-0.5, True), (-1.0, True), (0.0, False)],
)
def test_algedonic_forwarded_only_at_the_parents_threshold(intensity, forwarded):
    """A signal is recorded here, and goes to the parent's S5 only when |intensity| >= threshold."""
    s5 = system5("root/n", algedonic_threshold=0.5)
    signal = Algedonic(source="root/n", intensity=intensity, detail="ouch")
    effects = s5.handle(signal, 0.0)
    assert s5.signals == [signal]
    assert events(effects, "algedonic")[0].data == {"source": "root/n", "intensity": intensity}
    expected = [signal] if forwarded else []
    assert sent(effects, Algedonic, Address("root", SystemId.S5)) == expected


def test_algedonic_threshold_is_the_parents_not_the_local_one():
    """The parent's threshold decides, even when the local policy sets a lower one."""
    spec = NodeSpec(name="n", policy=PolicySpec(algedonic_threshold=0.1))
    s5 = viable(spec, "root/n", policy=PolicySpec(algedonic_threshold=0.9)).s5
    assert not sent(s5.handle(Algedonic(source="x", intensity=0.5), 0.0), Algedonic)
    assert sent(s5.handle(Algedonic(source="x", intensity=0.95), 0.0), Algedonic)


def test_algedonic_stops_at_the_root():
    """The root records every signal and forwards none."""
    s5 = system5("root", algedonic_threshold=0.0)
    effects = s5.handle(Algedonic(source="root/a/b", intensity=-1.0), 0.0)
    assert not sent(effects, Algedonic)
    assert [s.source for s in s5.signals] == ["root/a/b"]
