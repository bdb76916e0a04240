"""Trees of viable systems on a local Ray cluster: the same behaviour in every placement.

The model decides; the hosts carry out. These tests check what only a real cluster shows:
named actors in the tree's namespace, routing across processes, death-watches and restarts
after ``ray.kill`` and ``SIGKILL``, the depth guard under a spawn storm, and a clean stop.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
import ray
from ray.util.state import list_actors

from actors._runtime import DESK_TTL, RayTree, TreeNotRunningError
from actors._store import CheckpointStore
from tests.ray.conftest import STATE_API, cap, tree_spec
from vsm.address import depth, is_within
from vsm.intents import Intent, Outcome, Refusal, Status
from vsm.spec import LimitsSpec, NodeSpec

PLACEMENTS = ["node", "system", "pooled"]
Start = Callable[..., RayTree]


def intent(
    intent_id: str, capability: str, user: str = "u", zone: str = "default", **params: Any
) -> Intent:
    return Intent(id=intent_id, capability=capability, params=params, user=user, zone=zone)


def alive_in(namespace: str) -> list[str]:
    """Names of the live actors of ``namespace``, from the Ray State API."""
    return sorted(
        a.name
        for a in list_actors(
            address=STATE_API["address"],
            filters=[("ray_namespace", "=", namespace), ("state", "=", "ALIVE")],
            limit=10_000,
        )
    )


def wait_for(condition: Callable[[], bool], timeout: float, what: str | Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout}s waiting for {said}")
        time.sleep(0.2)


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_a_depth_3_tree_answers_at_every_level_and_shows_by_name(
    start_tree: Start, placement: str
) -> None:
    """Intents routed to the root, a child, a grandchild; refusals keep their reasons."""
    tree = start_tree(tree_spec(placement))  # type: ignore[arg-type]
    asked = {
        "root.echo": ("root", {"x": 1}, {"x": 1}),
        "a.sum": ("root/a", {"values": [1, 2, 3]}, 6),
        "b.echo": ("root/a/b", {"y": "z"}, {"y": "z"}),
    }
    for n, (capability, (path, params, result)) in enumerate(asked.items()):
        outcome = tree.ask(intent(f"i{n}", capability, **params), timeout=60)
        assert (outcome.status, outcome.path, outcome.result) == (Status.COMPLETED, path, result)
    refused = tree.ask(intent("zone", "c.echo", user="bob", zone="eu"), timeout=60)
    assert (refused.status, refused.reason) == (Status.REJECTED, Refusal.POLICY)
    granted = tree.ask(intent("zone-ok", "c.echo", user="alice", zone="eu"), timeout=60)
    assert (granted.status, granted.path) == (Status.COMPLETED, "root/c")
    unknown = tree.ask(intent("none", "no.such.capability"), timeout=60)
    assert unknown.reason == Refusal.NO_CAPABILITY

    names = alive_in(tree.namespace)
    paths = ["root", "root/a", "root/a/b", "root/c"]
    if placement == "node":
        assert names == sorted(f"vsm:{p}" for p in paths)
    elif placement == "system":
        assert names == sorted(f"vsm:{p}#S{k}" for p in paths for k in range(1, 6))
    else:
        assert names == sorted(f"vsm:pool/{k}" for k in range(tree.spec.pool_size))
    assert [part["path"] for part in tree.describe()] == paths


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_pipelined_intents_each_get_exactly_one_outcome(start_tree: Start, placement: str) -> None:
    tree = start_tree(tree_spec(placement))  # type: ignore[arg-type]
    refs = [tree.submit(intent(f"p{i}", "b.echo", i=i)) for i in range(100)]
    outcomes: list[Outcome] = ray.get(refs, timeout=120)
    assert [o.intent_id for o in outcomes] == [f"p{i}" for i in range(100)]
    assert {o.status for o in outcomes} == {Status.COMPLETED}
    assert [o.result for o in outcomes] == [{"i": i} for i in range(100)]
    assert set(tree.replies().values()) == {1}


@pytest.mark.parametrize(
    ("placement", "how"), [("node", "ray.kill"), ("node", "SIGKILL"), ("system", "SIGKILL")]
)
def test_a_unit_killed_mid_load_is_restarted_and_no_intent_is_lost_or_doubled(
    start_tree: Start, placement: str, how: str
) -> None:
    """Kill a host of ``root/a`` (its child goes with it) while intents flow through it."""
    tree = start_tree(tree_spec(placement))  # type: ignore[arg-type]
    suffix = "#S1" if placement == "system" else ""
    victim_name, supervisor = f"vsm:root/a{suffix}", f"vsm:root{'#S3' if suffix else ''}"
    victim = tree.handle(victim_name)
    pid = ray.get(victim.pid.remote())
    refs = [tree.submit(intent(f"k{i}", "b.echo", i=i)) for i in range(60)]
    if how == "ray.kill":
        ray.kill(victim, no_restart=True)
    else:
        os.kill(pid, signal.SIGKILL)
    refs += [tree.submit(intent(f"k{i}", "b.echo", i=i)) for i in range(60, 120)]
    outcomes: list[Outcome] = ray.get(refs, timeout=120)
    assert [o.intent_id for o in outcomes] == [f"k{i}" for i in range(120)]
    assert all(o.status in (Status.COMPLETED, Status.FAILED, Status.REJECTED) for o in outcomes)
    for o in outcomes:
        if o.status is Status.COMPLETED:
            assert o.result == {"i": int(o.intent_id[1:])}
    replies = tree.replies()
    assert all(replies[f"k{i}"] == 1 for i in range(120)), "an intent was answered twice"

    def recovered() -> bool:
        parts = {p["path"]: p for p in tree.describe()}
        return parts.get("root/a", {}).get("incarnation", 0) >= 2 and "root/a/b" in parts

    wait_for(recovered, 60, "root/a and root/a/b to be restarted")
    assert ray.get(tree.handle(victim_name).pid.remote()) != pid

    probes: list[Outcome] = []

    def answers() -> bool:
        probes.append(tree.ask(intent(f"after-{time.monotonic_ns()}", "b.echo", v=1), timeout=60))
        return probes[-1].status is Status.COMPLETED

    wait_for(answers, 90, lambda: f"the restarted subtree to answer (probes: {probes})")
    events = ray.get(tree.handle(supervisor).events.remote())
    assert [e.data["unit"] for e in events if e.kind == "unit.restart"] == ["root/a"]


def test_a_spawn_storm_never_grows_past_the_depth_guard(start_tree: Start) -> None:
    """Concurrent intents that would need viable systems deeper than the guard.

    Only a chain of templates offers the capability, deeper than the guard allows: spawns
    stop at the guard, and every intent gets its one outcome.
    """

    def chain(names: list[str]) -> tuple[NodeSpec, ...]:
        if not names:
            return ()
        head, *rest = names
        return (NodeSpec(name=head, capabilities=(cap(f"{head}.do"),), templates=chain(rest)),)

    spec = tree_spec("node", max_depth=2, templates=chain(["w", "x", "y", "z"]))
    tree = start_tree(spec)
    refs = [tree.submit(intent(f"s{i}", "z.do")) for i in range(40)]
    refs += [tree.submit(intent(f"t{i}", "x.do")) for i in range(40)]
    outcomes: list[Outcome] = ray.get(refs, timeout=120)
    assert len({o.intent_id for o in outcomes}) == 80
    deep = [o for o in outcomes if o.intent_id.startswith("s")]
    assert all(o.status is not Status.COMPLETED for o in deep)
    assert max(depth(p["path"]) for p in tree.describe()) <= 2
    assert all(n.removeprefix("vsm:").count("/") <= 2 for n in alive_in(tree.namespace))


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_stopping_the_tree_leaves_no_actor_of_its_namespace(
    start_tree: Start, placement: str
) -> None:
    tree = start_tree(tree_spec(placement))  # type: ignore[arg-type]
    assert tree.ask(intent("x", "b.echo"), timeout=60).status is Status.COMPLETED
    assert alive_in(tree.namespace)
    tree.stop()
    wait_for(lambda: alive_in(tree.namespace) == [], 30, "every actor to be dead")
    start = time.monotonic()
    with pytest.raises(TreeNotRunningError):
        tree.ask(intent("y", "b.echo"), timeout=10)
    assert time.monotonic() - start < 5, "a stopped tree must fail fast, not hang"


def test_a_handle_finds_the_desk_of_a_tree_stopped_and_started_again_elsewhere(
    start_tree: Start,
) -> None:
    """A handle reuses the desk it looked up; a desk started again under its name is found."""
    first = start_tree(tree_spec("node"))
    other = RayTree.connect(first.spec)  # as a second client would hold it
    assert other.ask(intent("a", "b.echo"), timeout=60).status is Status.COMPLETED
    first.stop()
    # The desk it holds died (or, looked up again, is gone): an error at once, not a hang.
    with pytest.raises((ray.exceptions.RayActorError, TreeNotRunningError)):
        other.ask(intent("b", "b.echo"), timeout=10)
    again = start_tree(first.spec)
    time.sleep(DESK_TTL)
    assert other.ask(intent("c", "b.echo"), timeout=60).status is Status.COMPLETED
    assert again.ask(intent("d", "b.echo"), timeout=60).status is Status.COMPLETED


def test_a_restarted_unit_takes_up_its_last_checkpoint(start_tree: Start) -> None:
    """A killed unit comes back with its audit chain as last checkpointed, not a fresh one.

    ``root/a`` audits its unit twice a second, and its host checkpoints the chain; after
    ``ray.kill`` the restarted ``root/a`` starts from that checkpoint and appends after it.
    """
    limits = LimitsSpec(user_rate=1_000, user_burst=2_000, audit_every=0.5)
    tree = start_tree(tree_spec("node", limits=limits))
    store = CheckpointStore(tree.storage or "")

    def saved_entries() -> list[Any]:
        found = store.load(tree.spec.name, "root/a") or {"parts": {}}
        entries: list[Any] = found["parts"].get("S3", {}).get("audit", {}).get("entries", [])
        return entries

    wait_for(lambda: len(saved_entries()) >= 3, 60, "a checkpoint of root/a with audit entries")
    saved = saved_entries()
    ray.kill(tree.handle("vsm:root/a"), no_restart=True)

    def restarted() -> bool:
        parts = {p["path"]: p for p in tree.describe()}
        return parts.get("root/a", {}).get("incarnation", 0) >= 2

    wait_for(restarted, 60, "root/a to be restarted")
    chain = ray.get(tree.handle("vsm:root/a").audit_chain.remote("root/a"))
    assert chain["entries"][: len(saved)] == saved
    store.close()


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_registry_replicas_converge_across_the_tree(start_tree: Start, placement: str) -> None:
    """Deltas travel as actor messages; every replica ends holding its subtree's adverts."""
    tree = start_tree(tree_spec(placement))  # type: ignore[arg-type]
    offers = {
        ("root.echo", "root"),
        ("a.sum", "root/a"),
        ("b.echo", "root/a/b"),
        ("c.echo", "root/c"),
    }

    def held() -> dict[str, set[tuple[str, str]]]:
        out = {}
        for part in tree.describe():
            asks = [tree.handle(f"vsm:{h}").registry.remote(part["path"]) for h in part["hosts"]]
            adverts = [a for found in ray.get(asks, timeout=30) for a in found]  # S4's host's
            out[part["path"]] = {(a["capability"], a["provider"]) for a in adverts}
        return out

    def converged() -> bool:
        replicas = held()
        return set(replicas) == {"root", "root/a", "root/a/b", "root/c"} and all(
            replicas[path] == {(c, p) for c, p in offers if is_within(p, path)} for path in replicas
        )

    wait_for(converged, 60, lambda: f"each replica holding its subtree: {held()}")
