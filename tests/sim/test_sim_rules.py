"""GoldRush rules wired into the Systems, in the simulator (issue 7, S3 rule 6)."""

from __future__ import annotations

from vsm.address import Address, SystemId
from vsm.intents import Intent, Refusal, Status
from vsm.messages import PatchRules
from vsm.sim import Simulation
from vsm.spec import CapabilitySpec, LimitsSpec, NodeSpec, PolicySpec, TreeSpec

SPIKE = {
    "name": "spike",
    "condition": 'count(kind == "intent.accepted") by user within 2s > 5',
    "response": {
        "type": "throttle",
        "target": "user",
        "key_field": "user",
        "rate": 0.5,
        "seconds": 60.0,
    },
}
FAILING = 'count(kind == "intent.failed" and exists(unit)) by unit within 30s >= 3'


def tree(*rules: dict) -> TreeSpec:
    return TreeSpec(
        name="rules",
        policy=PolicySpec(max_depth=2),
        limits=LimitsSpec(user_rate=1_000, user_burst=1_000),
        root=NodeSpec(
            name="root",
            capabilities=(CapabilitySpec(name="work", kernel="echo", cpus=0),),
            children=(
                NodeSpec(
                    name="bad",
                    capabilities=(CapabilitySpec(name="bad.fail", kernel="fail", cpus=0),),
                ),
            ),
            rules=rules,
        ),
    )


def test_a_load_spike_from_one_user_gets_that_user_throttled() -> None:
    """Twenty intents at once from one user: S3's rule has S2 throttle that user only."""
    sim = Simulation(tree(SPIKE), seed=1)
    sim.run_until_quiet(max_time=10)
    for i in range(20):
        sim.submit(Intent(id=f"s{i}", capability="work", user="spiky"))
    sim.run_for(0.5)
    for i in range(5):
        sim.submit(Intent(id=f"later{i}", capability="work", user="spiky"))
        sim.submit(Intent(id=f"calm{i}", capability="work", user="calm"))
    assert sim.run_until_quiet(max_time=30)
    outcomes = sim.outcomes()
    later = [outcomes[f"later{i}"] for i in range(5)]
    throttled = [o for o in later if o.reason is Refusal.RATE_LIMIT]
    assert throttled, later
    assert all("throttled" in o.detail and "rule 'spike'" in o.detail for o in throttled)
    assert all(outcomes[f"calm{i}"].status is Status.COMPLETED for i in range(5))
    kinds = [e.kind for e in sim.history() if e.path == "root"]
    assert "throttle.started" in kinds
    assert "rule.matched" in kinds


def test_a_failing_unit_is_audited_and_pain_reaches_s5() -> None:
    """Failures by one unit trip two rules: an S3* audit of it, and algedonic pain at S5."""
    audit = {
        "name": "audit-failing",
        "condition": FAILING,
        "response": {"type": "audit", "unit_field": "unit"},
    }
    pain = {
        "name": "pain",
        "condition": FAILING,
        "response": {"type": "algedonic", "intensity": 0.8, "detail": "a unit keeps failing"},
    }
    sim = Simulation(tree(audit, pain), seed=2)
    sim.run_until_quiet(max_time=10)
    for i in range(4):
        sim.submit(Intent(id=f"f{i}", capability="bad.fail", user="u"))
    assert sim.run_until_quiet(max_time=30)
    assert all(o.status is Status.FAILED for o in sim.outcomes().values())
    root = sim.node("root")
    assert any(
        s.intensity == -0.8 and "rule 'pain'" in s.detail and s.source == "root"
        for s in root.s5.signals
    ), root.s5.signals
    audits = [e for e in root.s3.chain.entries() if e.kind == "audit"]
    assert any(e.data["unit"] == "root/bad" for e in audits), audits
    fired = [e.data["rule"] for e in sim.history() if e.kind == "rule.matched"]
    assert fired.count("audit-failing") == 1  # once per cooldown, not per failure
    assert fired.count("pain") == 1


def test_rules_are_patched_at_run_time_and_survive_a_checkpoint() -> None:
    """PatchRules adds a rule to S3 while events flow; a restore from a checkpoint keeps it."""
    sim = Simulation(tree(), seed=3)
    sim.run_until_quiet(max_time=10)
    root = sim.node("root")
    assert not root.s3.watching
    effects = root.handle(SystemId.S3, PatchRules(rules=(SPIKE,)), sim.now)
    assert [e.event.kind for e in effects if hasattr(e, "event")] == ["rules.patched"]
    assert root.s3.watching
    data = root.checkpoint()
    from vsm.systems import ViableSystem

    again = ViableSystem.root(sim.spec, incarnation=1)
    again.restore(data, 1, sim.now)
    assert [r.name for r in again.s3.rules.rules] == ["spike"]
    bad = root.handle(SystemId.S3, PatchRules(rules=({"name": "x"},)), sim.now)
    assert [e.event.kind for e in bad if hasattr(e, "event")] == ["rules.refused"]
    assert Address("root", SystemId.S3)  # the address rules run at


def test_a_patch_tells_the_other_systems_to_send_their_events() -> None:
    """With Systems apart (system placement), S3's Watch makes the others forward their events.

    Two copies of one viable system stand for two actors: one hosts S3, one the others. After a
    patch adds the first rule, S3 sends Watch(on) to the four other Systems; the other copy
    sends its events to S3, and a copy restored without S3's part hears it again at the next
    audit tick (the set differs from the spec's).
    """
    from vsm.effects import Emit, Send
    from vsm.messages import AuditTick, EventsObserved, SubmitIntent, Watch
    from vsm.systems import ViableSystem

    spec = tree()
    s3_actor = ViableSystem.root(spec, incarnation=1)
    other_actor = ViableSystem.root(spec, incarnation=1)
    effects = s3_actor.handle(SystemId.S3, PatchRules(rules=(SPIKE,)), 0.0)
    watches = [e for e in effects if isinstance(e, Send) and isinstance(e.message, Watch)]
    assert sorted(str(w.to.system) for w in watches) == ["S1", "S2", "S4", "S5"]
    assert all(w.message.on for w in watches)

    def forwarded(vs: ViableSystem, intent_id: str, now: float) -> bool:
        submit = SubmitIntent(intent=Intent(id=intent_id, capability="work", user="u"))
        out = vs.handle(SystemId.S5, submit, now)
        assert any(isinstance(e, Emit) for e in out)  # S5 has events to give
        return any(isinstance(e, Send) and isinstance(e.message, EventsObserved) for e in out)

    assert not forwarded(other_actor, "before", 1.0)
    for watch in watches:
        assert other_actor.handle(watch.to.system, watch.message, 1.0) == []
    assert forwarded(other_actor, "after", 1.0)

    tick = s3_actor.handle(SystemId.S3, AuditTick(), 2.0)
    again = [e for e in tick if isinstance(e, Send) and isinstance(e.message, Watch)]
    assert len(again) == 4  # repeated while the set differs from the spec's
    quiet = ViableSystem.root(spec, incarnation=1).handle(SystemId.S3, AuditTick(), 2.0)
    assert not [e for e in quiet if isinstance(e, Send) and isinstance(e.message, Watch)]
    removed = s3_actor.handle(SystemId.S3, PatchRules(remove=("spike",)), 3.0)
    off = [e for e in removed if isinstance(e, Send) and isinstance(e.message, Watch)]
    assert off
    assert not any(w.message.on for w in off)
    for watch in off:
        other_actor.handle(watch.to.system, watch.message, 3.0)
    assert not forwarded(other_actor, "later", 3.0)
