"""The simulator end to end: every level answers, every refusal is observable, faults recover."""

from __future__ import annotations

import pytest

from tests.strategies_model import cap
from vsm.address import SystemId
from vsm.intents import Intent, Outcome, Refusal, Status
from vsm.sim import NetworkConfig, Simulation
from vsm.spec import LimitsSpec, NodeSpec, PolicySpec, TreeSpec

TREE = TreeSpec(
    name="basic",
    policy=PolicySpec(zones={"alice": ("secret",)}),
    root=NodeSpec(
        name="root",
        capabilities=(cap("root.echo", description="echo at the top"),),
        children=(
            NodeSpec(
                name="a",
                capabilities=(cap("a.sum", "sum", "add up a list of numbers"),),
                children=(
                    NodeSpec(
                        name="b",
                        capabilities=(
                            cap("b.echo", description="reflect from the bottom"),
                            cap("b.fail", "fail", "always breaks"),
                        ),
                    ),
                ),
            ),
        ),
        templates=(NodeSpec(name="t", capabilities=(cap("t.echo", description="on demand"),)),),
    ),
)


def started(tree: TreeSpec = TREE, **options) -> Simulation:
    """A simulation of ``tree`` that has settled after its start."""
    sim = Simulation(tree, **options)
    assert sim.run_until_quiet(max_time=120, settle=10)
    return sim


def ask(sim: Simulation, intent: Intent, within: float = 60.0) -> Outcome:
    """Submit ``intent``, run until quiet, and return its outcome."""
    sim.submit(intent)
    sim.run_until_quiet(max_time=within, settle=5)
    return sim.outcomes()[intent.id]


def refusal(outcome: Outcome) -> tuple[Status, Refusal | None, SystemId | None, str]:
    return (outcome.status, outcome.reason, outcome.by, outcome.path)


# ---------------------------------------------------------------- every level answers


def test_depth_three_tree_answers_intents_routed_to_every_level():
    """Intents for every level, a template and free text are answered by the unit serving them."""
    sim = started()
    asked = {
        "top": Intent(id="top", capability="root.echo", params={"x": 1}),
        "mid": Intent(id="mid", capability="a.sum", params={"values": [1, 2, 3]}),
        "leaf": Intent(id="leaf", capability="b.echo", params={"y": 2}),
        "spawned": Intent(id="spawned", capability="t.echo", params={"z": 3}),
        "text": Intent(id="text", text="please add up a list of numbers", params={"values": [4]}),
    }
    for intent in asked.values():
        sim.submit(intent)
    assert sim.run_until_quiet(max_time=60, settle=5)
    got = {k: (o.status, o.result, o.path) for k, o in sim.outcomes().items()}
    assert got == {
        "top": (Status.COMPLETED, {"x": 1}, "root"),
        "mid": (Status.COMPLETED, 6, "root/a"),
        "leaf": (Status.COMPLETED, {"y": 2}, "root/a/b"),
        "spawned": (Status.COMPLETED, {"z": 3}, "root/t"),
        "text": (Status.COMPLETED, 4, "root/a"),
    }
    assert sim.paths() == ["root", "root/a", "root/a/b", "root/t"]
    assert set(sim.replies().values()) == {1}
    assert sim.lost() == set()


def test_free_text_demand_for_a_template_spawns_it():
    """Text that only a template's description matches spawns that template, which answers."""
    sim = started()
    outcome = ask(sim, Intent(id="i", text="on demand", params={"q": 1}))
    assert (outcome.status, outcome.result, outcome.path) == (Status.COMPLETED, {"q": 1}, "root/t")


def test_composite_plan_runs_across_levels():
    """A plan whose steps live at different levels completes with results in step order."""
    sim = started()
    plan = Intent(
        id="plan",
        plan=(
            Intent(id="s0", capability="b.echo", params={"k": 0}),
            Intent(id="s1", capability="a.sum", params={"values": [5, 5]}),
        ),
    )
    outcome = ask(sim, plan)
    assert (outcome.status, outcome.result) == (Status.COMPLETED, [{"k": 0}, 10])


def test_plan_steps_never_take_another_intents_answer():
    """Ids ``plan/k`` are kept for plan steps: a client cannot take one, so no answer mixes."""
    sim = started()
    with pytest.raises(ValueError, match="reserved"):
        sim.submit(Intent(id="p/0", capability="root.echo", params={"mine": 1}))
    plan = Intent(id="p", plan=(Intent(id="x", capability="a.sum", params={"values": [1]}),))
    outcome = ask(sim, plan)
    assert (outcome.status, outcome.result) == (Status.COMPLETED, [1])
    assert list(sim.outcomes()) == ["p"]


# ---------------------------------------------------------------- every refusal, end to end


def test_policy_refusal_is_observable():
    """A zone the user is not granted: rejected POLICY by the root's S5."""
    outcome = ask(started(), Intent(id="i", capability="b.echo", user="bob", zone="secret"))
    assert refusal(outcome) == (Status.REJECTED, Refusal.POLICY, SystemId.S5, "root")
    granted = ask(started(), Intent(id="j", capability="b.echo", user="alice", zone="secret"))
    assert granted.status is Status.COMPLETED


def test_rate_limit_refusal_is_observable():
    """With tiny limits, a burst from one user is cut off: rejected RATE_LIMIT by S2."""
    tree = TREE.model_copy(update={"limits": LimitsSpec(user_rate=0.01, user_burst=1.0)})
    sim = started(tree)
    for n in range(3):
        sim.submit(Intent(id=f"i{n}", capability="root.echo", user="alice"))
    sim.run_until_quiet(max_time=60, settle=5)
    outcomes = sim.outcomes()
    assert outcomes["i0"].status is Status.COMPLETED
    for n in (1, 2):
        assert refusal(outcomes[f"i{n}"]) == (
            Status.REJECTED,
            Refusal.RATE_LIMIT,
            SystemId.S2,
            "root",
        )


def test_no_capability_refusal_is_observable():
    """Nothing offers it and no template can: rejected NO_CAPABILITY by the root's S4."""
    outcome = ask(started(), Intent(id="i", capability="nobody.offers"))
    assert refusal(outcome) == (Status.REJECTED, Refusal.NO_CAPABILITY, SystemId.S4, "root")


def test_depth_guard_refusal_is_observable():
    """A template below the guard's last level is refused DEPTH_GUARD by its parent's S5."""
    tree = TreeSpec(
        name="guarded",
        policy=PolicySpec(max_depth=1),
        root=NodeSpec(
            name="root",
            children=(
                NodeSpec(
                    name="a",
                    capabilities=(cap("a.echo"),),
                    templates=(NodeSpec(name="x", capabilities=(cap("x.echo"),)),),
                ),
            ),
        ),
    )
    sim = started(tree)
    outcome = ask(sim, Intent(id="i", capability="x.echo"))
    assert refusal(outcome) == (Status.REJECTED, Refusal.DEPTH_GUARD, SystemId.S5, "root/a")
    assert "root/a/x" in outcome.detail
    assert sim.paths() == ["root", "root/a"]
    assert sim.max_depth_seen == 1


def test_depth_guard_counts_a_templates_own_children():
    """A template whose static children would sit past the guard is refused (DEPTH_GUARD)."""
    below = NodeSpec(name="x", capabilities=(cap("x.echo"),))
    tree = TreeSpec(
        name="guarded",
        policy=PolicySpec(max_depth=2),
        root=NodeSpec(
            name="root",
            children=(NodeSpec(name="a", templates=(NodeSpec(name="u", children=(below,)),)),),
        ),
    )
    sim = started(tree)
    outcome = ask(sim, Intent(id="i", capability="x.echo"))
    assert sim.max_depth_seen <= 2, sim.paths()
    assert refusal(outcome) == (Status.REJECTED, Refusal.DEPTH_GUARD, SystemId.S5, "root/a")


def test_deadline_failure_is_observable():
    """An intent whose deadline falls before its kernel can answer fails DEADLINE at S1."""
    sim = started()
    outcome = ask(sim, Intent(id="i", capability="b.echo", deadline=sim.now + 0.0005))
    assert refusal(outcome) == (Status.FAILED, Refusal.DEADLINE, SystemId.S1, "root")
    assert sim.lost() == set()


def test_unit_failed_is_observable():
    """A kernel that raises fails its intent UNIT_FAILED, decided where the kernel ran."""
    outcome = ask(started(), Intent(id="i", capability="b.fail", params={"reason": "on purpose"}))
    assert refusal(outcome) == (Status.FAILED, Refusal.UNIT_FAILED, SystemId.S1, "root/a/b")
    assert "on purpose" in outcome.detail


def test_unit_lost_is_observable():
    """An intent sent to a crashed child fails UNIT_LOST once the detector declares it dead."""
    sim = started()
    sim.crash("root/a")
    sim.submit(Intent(id="i", capability="a.sum", params={"values": [1]}))
    sim.run_for(20)
    outcome = sim.outcomes()["i"]
    assert refusal(outcome) == (Status.FAILED, Refusal.UNIT_LOST, SystemId.S1, "root")
    assert "root/a" in outcome.detail
    assert sim.replies() == {"i": 1}


# ---------------------------------------------------------------- determinism


def chaotic_run(seed: int) -> Simulation:
    network = NetworkConfig(drop=0.2, duplicate=0.2, max_delay=0.05)
    sim = Simulation(TREE, seed=seed, network=network)
    sim.run_for(15)
    for n, capability in enumerate(["root.echo", "a.sum", "b.echo", "t.echo", "b.fail", "zz"]):
        sim.submit(Intent(id=f"i{n}", capability=capability))
        sim.run_for(0.5)
    sim.crash("root/a/b")
    sim.run_for(40)
    sim.run_until_quiet(max_time=200, settle=20)
    return sim


def test_same_seed_gives_the_same_history_and_outcomes():
    """Two runs with one seed, even on a hostile network, produce identical histories."""
    first, second = chaotic_run(7), chaotic_run(7)
    assert first.history() == second.history()
    assert first.outcomes() == second.outcomes()
    assert first.replies() == second.replies()
    assert first.processed == second.processed
    assert len(first.outcomes()) == 6


def test_different_seeds_give_different_histories():
    """The seed does drive the network: another seed, another history."""
    assert chaotic_run(7).history() != chaotic_run(8).history()


# ---------------------------------------------------------------- crashes, restarts, partitions


def test_crash_and_restart():
    """A crashed viable system is gone until restarted; then it answers again."""
    sim = started()
    sim.crash("root/a/b")
    assert "root/a/b" not in sim.paths()
    with pytest.raises(KeyError, match="root/a/b"):
        sim.node("root/a/b")
    with pytest.raises(KeyError, match="no running viable system"):
        sim.crash("root/a/b")
    sim.restart("root/a/b")
    assert "root/a/b" in sim.paths()
    with pytest.raises(ValueError, match="crash it first"):
        sim.restart("root/a/b")
    with pytest.raises(KeyError, match="was ever at"):
        sim.restart("root/zzz")
    outcome = ask(sim, Intent(id="i", capability="b.echo", params={"v": 1}))
    assert (outcome.status, outcome.result) == (Status.COMPLETED, {"v": 1})


def test_partition_cuts_a_child_from_its_parent_until_healed():
    """Cut off from its parent, a child cannot answer (DEADLINE); healed, it answers again."""
    sim = started()
    sim.partition("root", "root/a")
    outcome = ask(sim, Intent(id="cut", capability="a.sum", deadline=sim.now + 2.0), within=10)
    assert refusal(outcome) == (Status.FAILED, Refusal.DEADLINE, SystemId.S1, "root")
    sim.heal()
    outcome = ask(sim, Intent(id="healed", capability="a.sum", params={"values": [2]}))
    assert (outcome.status, outcome.result) == (Status.COMPLETED, 2)


def test_partition_between_siblings_leaves_each_reachable_from_the_parent():
    """Cutting two sibling subtrees apart does not cut either from their parent."""
    sim = started()
    ask(sim, Intent(id="spawn", capability="t.echo"))
    sim.partition("root/a", "root/t")
    assert ask(sim, Intent(id="a", capability="a.sum")).status is Status.COMPLETED
    assert ask(sim, Intent(id="t", capability="t.echo")).status is Status.COMPLETED


def test_parent_s3_restarts_a_crashed_child_by_itself():
    """Without any restart call, the parent's S3 restarts a child its S2 declared dead."""
    sim = started()
    sim.crash("root/a")
    crashed_at = sim.now
    sim.run_for(20)
    assert "root/a" in sim.paths()
    assert "root/a/b" in sim.paths()
    kinds = [
        (e.kind, e.data.get("to"))
        for e in sim.history()
        if e.path == "root" and e.at > crashed_at and e.data.get("unit") == "root/a"
    ]
    assert ("unit.health", "dead") in kinds
    assert ("unit.restart", None) in kinds
    outcome = ask(sim, Intent(id="i", capability="a.sum", params={"values": [1, 1]}))
    assert (outcome.status, outcome.result) == (Status.COMPLETED, 2)


def test_child_crashed_before_its_first_heartbeat_is_restarted():
    """A child dead before its first heartbeat is still declared dead, its work lost, restarted."""
    sim = Simulation(TREE)
    sim.crash("root/a")  # before anything ran: root/a never sent a heartbeat
    sim.submit(Intent(id="i", capability="a.sum", params={"values": [1]}))
    sim.run_for(25)
    assert refusal(sim.outcomes()["i"]) == (Status.FAILED, Refusal.UNIT_LOST, SystemId.S1, "root")
    assert "root/a" in sim.paths()
    outcome = ask(sim, Intent(id="j", capability="a.sum", params={"values": [1]}))
    assert outcome.status is Status.COMPLETED


def test_run_until_quiet_waits_for_the_tree_to_notice_a_crash():
    """A crash is a change: going quiet after one means the tree has recovered from it."""
    sim = Simulation(TREE)
    assert sim.run_until_quiet(max_time=120, settle=20)
    sim.crash("root/a")
    assert sim.run_until_quiet(max_time=200, settle=20)
    assert "root/a" in sim.paths()


# ---------------------------------------------------------------- policy patches


def test_policy_patch_at_the_root_reaches_every_descendant():
    """A patch at the root is tightened into each child's policy, down to the leaves."""
    sim = started()
    sim.patch_policy("root", PolicySpec(max_params=1, version=2))
    sim.run_for(1)
    for path in ("root", "root/a", "root/a/b"):
        assert sim.node(path).s5.policy.max_params == 1
    outcome = ask(sim, Intent(id="i", capability="b.echo", params={"a": 1, "b": 2}))
    assert refusal(outcome) == (Status.REJECTED, Refusal.POLICY, SystemId.S5, "root")


@pytest.mark.parametrize("seed", range(5))
def test_policy_patch_reaches_every_child_through_a_lossy_network(seed):
    """A patch reaches every descendant's S5 in the end, though the network drops messages."""
    sim = Simulation(TREE, seed=seed, network=NetworkConfig(drop=0.3))
    sim.run_for(5)
    sim.patch_policy("root", PolicySpec(max_params=2, version=2))
    sim.run_for(60)
    for path, parent in (("root/a", "root"), ("root/a/b", "root/a")):
        assert sim.node(path).s5.parent_policy == sim.node(parent).s5.policy, path


# ---------------------------------------------------------------- the algedonic channel


def test_strong_algedonic_signal_from_a_leaf_reaches_the_root():
    """Pain at a leaf, at or above every ancestor's threshold, reaches each S5 up to the root."""
    sim = started()
    sim.signal("root/a/b", -0.9, "leaf on fire")
    sim.run_for(1)
    for path in ("root/a/b", "root/a", "root"):
        assert [(s.source, s.intensity) for s in sim.node(path).s5.signals] == [("root/a/b", -0.9)]


def test_weak_algedonic_signal_stays_where_it_was_raised():
    """A signal below the parent's threshold is recorded at its own S5 only."""
    sim = started()
    sim.signal("root/a/b", 0.2)
    sim.run_for(1)
    assert len(sim.node("root/a/b").s5.signals) == 1
    assert sim.node("root/a").s5.signals == []
    assert sim.node("root").s5.signals == []
