"""Cancelling intents in the simulator (S1 rule 8): one outcome, and the cancel travels down."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vsm.intents import Intent, Refusal, Status
from vsm.sim import NetworkConfig, Simulation
from vsm.spec import CapabilitySpec, LimitsSpec, NodeSpec, PolicySpec, TreeSpec


def tree() -> TreeSpec:
    deep = NodeSpec(name="b", capabilities=(CapabilitySpec(name="b.echo", kernel="echo", cpus=0),))
    return TreeSpec(
        name="cancel",
        policy=PolicySpec(max_depth=3),
        limits=LimitsSpec(user_rate=1_000, user_burst=1_000),
        root=NodeSpec(name="root", children=(NodeSpec(name="a", children=(deep,)),)),
    )


def test_a_cancel_in_flight_ends_the_intent_everywhere_it_reached() -> None:
    """Cancelled two hops down: CANCELLED for the client, and root/a and root/a/b end it too."""
    sim = Simulation(tree(), seed=1, network=NetworkConfig(min_delay=0.05, max_delay=0.06))
    sim.run_until_quiet(max_time=10)
    sim.submit(Intent(id="slow", capability="b.echo", user="u"))
    sim.run_for(0.08)  # root routed it to root/a; it is on its way down
    sim.cancel("slow", "changed my mind")
    assert sim.run_until_quiet(max_time=30)
    outcome = sim.outcomes()["slow"]
    assert (outcome.status, outcome.reason) == (Status.FAILED, Refusal.CANCELLED)
    assert outcome.detail == "cancelled by the requester: changed my mind"
    assert sim.replies()["slow"] == 1
    for path in ("root", "root/a", "root/a/b"):
        assert sim.node(path).s1.in_flight == 0
    cancelled_at = {
        e.path
        for e in sim.history()
        if e.kind == "intent.failed" and e.data["reason"] == "cancelled"
    }
    assert {"root", "root/a"} <= cancelled_at  # the cancel went down after the intent
    assert cancelled_at <= {"root", "root/a", "root/a/b"}


def test_a_cancel_after_the_outcome_changes_nothing() -> None:
    sim = Simulation(tree(), seed=2)
    sim.run_until_quiet(max_time=10)
    sim.submit(Intent(id="done", capability="b.echo", params={"x": 1}, user="u"))
    assert sim.run_until_quiet(max_time=30)
    sim.cancel("done")
    sim.cancel("never-submitted")
    assert sim.run_until_quiet(max_time=30)
    assert sim.outcomes()["done"].status is Status.COMPLETED
    assert sim.replies() == {"done": 1}


@settings(max_examples=25, deadline=None)
@given(st.floats(0.0, 0.4), st.integers(0, 2**16))
def test_cancelled_or_not_every_intent_gets_exactly_one_outcome(after: float, seed: int) -> None:
    """Whenever the cancel comes, the client gets one outcome: completed, or cancelled."""
    sim = Simulation(tree(), seed=seed, network=NetworkConfig(min_delay=0.01, max_delay=0.1))
    sim.run_until_quiet(max_time=10)
    sim.submit(Intent(id="i", capability="b.echo", user="u"))
    sim.run_for(after)
    sim.cancel("i")
    assert sim.run_until_quiet(max_time=30)
    outcome = sim.outcomes()["i"]
    assert outcome.status is Status.COMPLETED or outcome.reason is Refusal.CANCELLED
    assert sim.replies() == {"i": 1}


def slow_leaf() -> TreeSpec:
    leaf = CapabilitySpec(name="slow", kernel="echo", cpus=1)
    return TreeSpec(
        name="stop",
        limits=LimitsSpec(user_rate=1_000, user_burst=1_000),
        root=NodeSpec(name="root", children=(NodeSpec(name="a", capabilities=(leaf,)),)),
    )


def test_a_cancel_stops_the_kernel_running_for_the_intent() -> None:
    """The unit running the intent's kernel stops it (StopKernel); nothing else is stopped."""
    sim = Simulation(slow_leaf(), seed=3, kernel_latency=5.0)
    sim.run_until_quiet(max_time=10)
    sim.submit(Intent(id="long", capability="slow", user="u"))
    sim.submit(Intent(id="other", capability="slow", user="u"))
    sim.run_for(1.0)  # both kernels are running at root/a
    sim.cancel("long")
    assert sim.run_until_quiet(max_time=30)
    assert sim.outcomes()["long"].reason is Refusal.CANCELLED
    assert sim.outcomes()["other"].status is Status.COMPLETED
    assert sim.stopped_kernels() == [("root/a", "long")]


def test_an_intent_past_its_deadline_stops_its_kernel() -> None:
    sim = Simulation(slow_leaf(), seed=4, kernel_latency=5.0)
    sim.run_until_quiet(max_time=10)
    late = Intent(id="late", capability="slow", user="u", deadline=sim.now + 2.0)
    sim.submit(late)
    assert sim.run_until_quiet(max_time=30)
    assert sim.outcomes()["late"].reason is Refusal.DEADLINE
    assert ("root/a", "late") in sim.stopped_kernels()


@settings(max_examples=25, deadline=None)
@given(st.floats(0.0, 2.0), st.integers(0, 2**16))
def test_a_kernel_is_stopped_exactly_when_its_intent_ended_without_it(
    after: float, seed: int
) -> None:
    """Stopped only if the intent did not complete; a completed intent's kernel never is."""
    sim = Simulation(
        slow_leaf(),
        seed=seed,
        network=NetworkConfig(min_delay=0.01, max_delay=0.1),
        kernel_latency=1.0,
    )
    sim.run_until_quiet(max_time=10)
    sim.submit(Intent(id="i", capability="slow", user="u"))
    sim.run_for(after)
    sim.cancel("i")
    assert sim.run_until_quiet(max_time=30)
    outcome = sim.outcomes()["i"]
    stopped = sim.stopped_kernels()
    if outcome.status is Status.COMPLETED:
        assert stopped == []
    else:
        assert outcome.reason is Refusal.CANCELLED
        assert stopped in ([], [("root/a", "i")])  # [] : cancelled before the kernel started
    assert sim.replies() == {"i": 1}
