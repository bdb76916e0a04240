"""Progress streams back to the client; S3 keeps throughput and error rates per unit."""

from __future__ import annotations

from vsm.address import SystemId
from vsm.intents import Intent, Refusal, Status
from vsm.sim import NetworkConfig, Simulation
from vsm.spec import TreeSpec

TREE = TreeSpec.model_validate(
    {
        "name": "progress",
        "root": {
            "name": "root",
            "children": [
                {
                    "name": "a",
                    "children": [
                        {"name": "b", "capabilities": [{"name": "b.sum", "kernel": "sum"}]}
                    ],
                }
            ],
        },
    }
)


def test_progress_of_a_deep_intent_arrives_level_by_level_before_its_outcome():
    """An intent two levels down streams 'routed' from root, then a, then b, then completes.

    The network keeps order (one fixed delay): where messages may overtake one another, b's
    progress can reach a after b's reply, when a no longer has the intent in flight (rule 6 of
    S1 passes progress up only while the intent is in flight).
    """
    sim = Simulation(TREE, seed=2, network=NetworkConfig(min_delay=0.002, max_delay=0.002))
    sim.run_until_quiet(max_time=30)
    sim.submit(Intent(id="deep", capability="b.sum", params={"values": [1, 2]}))
    assert sim.run_until_quiet(max_time=60)
    steps = [(p.path, p.stage, p.detail) for p in sim.progress("deep")]
    assert steps == [
        ("root", "routed", "root/a"),
        ("root/a", "routed", "root/a/b"),
        ("root/a/b", "routed", "local"),
    ]
    assert sim.outcomes()["deep"].status is Status.COMPLETED


def test_refused_intent_has_no_routing_progress():
    """An intent S5 refuses never reaches a unit, so no 'routed' progress is streamed."""
    sim = Simulation(TREE, seed=2)
    sim.submit(Intent(id="nope", capability="b.sum", zone="secret"))
    sim.run_until_quiet(max_time=30)
    assert sim.progress("nope") == []
    assert sim.outcomes()["nope"].status is Status.REJECTED


def test_s3_measures_throughput_and_error_rate_per_unit():
    """The parent's S3 counts what its unit served, how fast, and how much failed."""
    sim = Simulation(TREE, seed=3)
    sim.run_until_quiet(max_time=30)
    for i in range(10):
        values = [1] if i % 5 else ["not a number"]
        sim.submit(Intent(id=f"i{i}", capability="b.sum", params={"values": values}))
        sim.run_for(0.5)
    sim.run_until_quiet(max_time=60)
    kpi = sim.node("root").s3.kpis["root/a"]
    assert kpi.served == 10
    assert kpi.errors == 2
    assert kpi.error_rate == 0.2
    assert 1.0 < kpi.throughput < 3.0  # ten intents over about 4.5 virtual seconds


def test_failing_spawns_open_the_circuit_end_to_end():
    """Spawns that keep failing open S5's breaker: later demand is rejected CIRCUIT_OPEN."""
    tree = TreeSpec.model_validate(
        {
            "name": "breaker",
            "policy": {"spawn_failure_threshold": 2, "spawn_reset_after": 300.0},
            "root": {
                "name": "root",
                "templates": [
                    {"name": "t", "capabilities": [{"name": "t.echo", "kernel": "echo"}]}
                ],
            },
        }
    )
    sim = Simulation(tree, seed=5)
    sim.fail_spawns("root/t")
    outcomes = []
    for i in range(4):
        sim.submit(Intent(id=f"i{i}", capability="t.echo", deadline=sim.now + 3.0))
        sim.run_until_quiet(max_time=60)
        outcomes.append(sim.outcomes()[f"i{i}"])
    # The first two are routed to a child that never starts: S1 hears of it and fails them.
    assert [o.reason for o in outcomes[:2]] == [Refusal.UNIT_LOST, Refusal.UNIT_LOST]
    assert [(o.reason, o.by) for o in outcomes[2:]] == [(Refusal.CIRCUIT_OPEN, SystemId.S5)] * 2
    assert "root/t" not in sim.paths()
