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
