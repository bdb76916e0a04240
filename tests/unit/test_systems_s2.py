"""System 2, coordination: rate limits, least-loaded routing, failure detection, claims."""

from __future__ import annotations

import pytest

from tests.strategies_model import cap, events, of, sends_to, sent, viable
from vsm.address import Address, SystemId
from vsm.effects import Schedule
from vsm.intents import Intent, Refusal, Status
from vsm.mechanisms import Health
from vsm.messages import (
    Assign,
    ChildSpawned,
    ChildStarted,
    ClaimDecided,
    ClaimResource,
    Coordinate,
    Heartbeat,
    HeartbeatTick,
    Released,
    Started,
    SweepTick,
    Throttle,
    ThrottleEnded,
    UnitDied,
    UnitDown,
    UnitLost,
)
from vsm.spec import LimitsSpec, NodeSpec

SPEC = NodeSpec(
    name="root",
    capabilities=(cap("local.echo"),),
    children=(
        NodeSpec(name="a", capabilities=(cap("work.do"),)),
        NodeSpec(name="b", capabilities=(cap("work.do"),)),
    ),
)
UNITS = ("root/a", "root/b")
S1 = Address("root", SystemId.S1)
S3 = Address("root", SystemId.S3)


def system2(**limits: float):
    return viable(SPEC, limits=LimitsSpec(**limits)).s2


def coordinate(s2, n: int, now: float = 0.0, user: str = "u", capability: str = "work.do"):
    """Ask S2 to place intent ``i<n>``; return its Assign."""
    intent = Intent(id=f"i{n}", capability=capability, user=user)
    effects = s2.handle(Coordinate(intent=intent, capability=capability, candidates=UNITS), now)
    assert sends_to(effects, Assign) == [S1]
    (assign,) = sent(effects, Assign)
    assert assign.intent_id == f"i{n}"
    return assign


# ---------------------------------------------------------------- rate limits (rule 1)


def test_user_bucket_rejects_with_rate_limit_naming_the_user():
    """A user past its burst is rejected (RATE_LIMIT, by S2); other users still get through."""
    s2 = system2(user_rate=1.0, user_burst=2.0)
    assert coordinate(s2, 1, user="alice").unit is not None
    assert coordinate(s2, 2, user="alice").unit is not None
    refused = coordinate(s2, 3, user="alice")
    assert refused.unit is None
    outcome = refused.outcome
    assert outcome is not None
    assert (outcome.intent_id, outcome.status, outcome.reason, outcome.by, outcome.path) == (
        "i3",
        Status.REJECTED,
        Refusal.RATE_LIMIT,
        SystemId.S2,
        "root",
    )
    assert "'alice'" in outcome.detail
    assert coordinate(s2, 4, user="bob").unit is not None
    # The bucket refills at the user's rate.
    assert coordinate(s2, 5, now=1.0, user="alice").unit is not None


def test_capability_bucket_rejects_with_rate_limit_naming_the_capability():
    """A capability past its burst is rejected (RATE_LIMIT) whoever asks; others pass."""
    s2 = system2(capability_rate=1.0, capability_burst=1.0)
    assert coordinate(s2, 1, user="alice").unit is not None
    refused = coordinate(s2, 2, user="bob")
    assert refused.outcome is not None
    assert (refused.outcome.reason, refused.outcome.by) == (Refusal.RATE_LIMIT, SystemId.S2)
    assert "'work.do'" in refused.outcome.detail
    assert coordinate(s2, 3, user="bob", capability="local.echo").unit is not None


def test_in_flight_cap_rejects_with_rate_limit():
    """Past ``max_in_flight`` assigned and unreleased intents, S2 rejects (RATE_LIMIT)."""
    s2 = system2(max_in_flight=2)
    coordinate(s2, 1)
    coordinate(s2, 2)
    refused = coordinate(s2, 3)
    assert refused.outcome is not None
    assert refused.outcome.reason is Refusal.RATE_LIMIT
    assert "limit is 2" in refused.outcome.detail
    s2.handle(Released(unit="root/a"), 1.0)
    assert coordinate(s2, 4, now=1.0).unit == "root/a"


# ---------------------------------------------------------------- load balancing (rule 2)


def test_a_throttle_holds_a_user_to_its_rate_until_it_ends():
    """Rule 5: a throttled user gets a second's burst, then refusals naming the throttle.

    Other users pass; the timer ends it.
    """
    s2 = system2()
    effects = s2.handle(
        Throttle(target="user", key="mallory", rate=2.0, seconds=30.0, why="r1"), 0.0
    )
    (timer,) = of(effects, Schedule)
    assert timer.delay == 30.0
    assert isinstance(timer.message, ThrottleEnded)
    assert [e.data["key"] for e in events(effects, "throttle.started")] == ["mallory"]
    assert [coordinate(s2, n, 0.0, user="mallory").unit is not None for n in range(3)] == [
        True,
        True,
        False,
    ]
    refused = coordinate(s2, 3, 0.0, user="mallory").outcome
    assert refused.reason is Refusal.RATE_LIMIT
    assert "'mallory' is throttled to 2/s (r1)" in refused.detail
    assert coordinate(s2, 4, 0.0, user="alice").unit is not None
    assert coordinate(s2, 5, 1.0, user="mallory").unit is not None  # refilled at 2/s
    assert events(s2.handle(timer.message, 30.0), "throttle.ended")
    assert all(coordinate(s2, n, 30.0, user="mallory").unit for n in range(6, 12))


def test_a_newer_throttle_replaces_an_older_and_outlives_its_timer():
    """The older throttle's timer does not end the newer one; bad throttles are refused."""
    s2 = system2()
    first = of(
        s2.handle(Throttle(target="capability", key="work.do", rate=1.0, seconds=5.0), 0.0),
        Schedule,
    )[0]
    s2.handle(Throttle(target="capability", key="work.do", rate=1.0, seconds=60.0), 1.0)
    assert not events(s2.handle(first.message, 5.0), "throttle.ended")
    assert coordinate(s2, 0, 5.0).unit is not None
    assert coordinate(s2, 1, 5.0).unit is None
    bad = s2.handle(Throttle(target="zone", key="eu", rate=1.0, seconds=1.0), 6.0)
    assert events(bad, "throttle.refused")
    assert not of(bad, Schedule)


def test_least_loaded_healthy_unit_is_chosen_and_released_balances():
    """Work spreads to the unit with least in flight (ties: fewer assigned, then name)."""
    s2 = system2()
    assert [coordinate(s2, n).unit for n in range(4)] == ["root/a", "root/b", "root/a", "root/b"]
    assert s2.load == 4
    s2.handle(Released(unit="root/b"), 0.0)
    s2.handle(Released(unit="root/b"), 0.0)
    assert s2.load == 2
    # b has nothing in flight now: it gets the next two.
    assert [coordinate(s2, n).unit for n in (4, 5)] == ["root/b", "root/b"]
    # Equal load (2 each), b has been assigned more: a next.
    assert coordinate(s2, 6).unit == "root/a"


def test_release_never_goes_negative():
    """A Released for a unit with nothing in flight is ignored."""
    s2 = system2()
    s2.handle(Released(unit="root/a"), 0.0)
    assert s2.load == 0
    assert [coordinate(s2, n).unit for n in range(2)] == ["root/a", "root/b"]


# ---------------------------------------------------------------- failure detection (rule 3)


def sweep(s2, now: float):
    effects = s2.handle(SweepTick(), now)
    (again,) = of(effects, Schedule)
    assert (again.message, again.background, again.delay) == (SweepTick(), True, 1.0)
    return effects


def health_changes(effects):
    return [(e.data["unit"], e.data["from"], e.data["to"]) for e in events(effects, "unit.health")]


def test_silent_unit_goes_healthy_warning_zombie_dead():
    """A unit that stops beating is reported warning, zombie, then dead, each once."""
    s2 = system2(warning_after=3.0, zombie_after=6.0, dead_after=12.0)
    s2.handle(Heartbeat(unit="root/a", load=0), 0.0)
    s2.handle(Heartbeat(unit="root/b", load=0), 0.0)
    assert health_changes(sweep(s2, 2.9)) == []
    s2.handle(Heartbeat(unit="root/b"), 2.9)  # b keeps beating
    assert health_changes(sweep(s2, 3.0)) == [("root/a", "healthy", "warning")]
    assert health_changes(sweep(s2, 4.0)) == []
    s2.handle(Heartbeat(unit="root/b"), 5.0)
    assert health_changes(sweep(s2, 6.0)) == [("root/a", "warning", "zombie")]
    s2.handle(Heartbeat(unit="root/b"), 8.0)
    s2.handle(Heartbeat(unit="root/b"), 11.0)
    dead = sweep(s2, 12.0)
    assert health_changes(dead) == [("root/a", "zombie", "dead")]
    assert sent(dead, UnitDown, S1) == [UnitDown(unit="root/a")]
    assert sent(dead, UnitDied, S3) == [UnitDied(unit="root/a", reason="missed heartbeats")]
    assert s2.health("root/a", 20.0) is Health.DEAD


def test_child_that_never_beats_is_declared_dead():
    """A child silent from its start (it died before its first heartbeat) is declared dead too."""
    s2 = system2(warning_after=3.0, zombie_after=6.0, dead_after=12.0)
    s2.handle(Started(), 0.0)
    downs = []
    for now in (1.0, 3.0, 6.0, 12.0):
        s2.handle(Heartbeat(unit="root/b"), now)
        downs += sent(sweep(s2, now), UnitDown)
    assert downs == [UnitDown(unit="root/a")]
    assert s2.health("root/a", 12.0) is Health.DEAD


def test_a_unit_lost_by_the_host_is_dead_at_once_and_its_work_leaves_the_load():
    """A death-watch report acts like the sweep declaring the unit dead, without the wait."""
    s2 = system2(max_in_flight=10)
    s2.handle(Heartbeat(unit="root/a", load=0), 0.0)
    s2.handle(Heartbeat(unit="root/b", load=0), 0.0)
    placed = [coordinate(s2, n).unit for n in range(4)]
    load = s2.load
    lost = s2.handle(UnitLost(unit="root/a", reason="actor died"), 1.0)
    assert health_changes(lost) == [("root/a", "unknown", "dead")]
    assert sent(lost, UnitDown, S1) == [UnitDown(unit="root/a")]
    assert sent(lost, UnitDied, S3) == [UnitDied(unit="root/a", reason="actor died")]
    assert s2.load == load - placed.count("root/a")
    assert s2.handle(UnitLost(unit="root/zzz", reason="not a child"), 1.0) == []


def test_healthier_units_are_preferred_and_zombies_only_as_a_last_resort():
    """Health ranks first (healthy, warning, zombie), load second; a zombie gets work only alone."""
    s2 = system2(warning_after=3.0, zombie_after=6.0, dead_after=12.0)
    s2.handle(Heartbeat(unit="root/a"), 0.0)
    s2.handle(Heartbeat(unit="root/b"), 0.0)
    coordinate(s2, 0, now=0.0)  # a: 1 in flight
    s2.handle(Heartbeat(unit="root/a"), 2.0)
    # At 4: b is late (warning), a healthy but busier: health wins.
    assert s2.health("root/b", 4.0) is Health.WARNING
    assert coordinate(s2, 1, now=4.0).unit == "root/a"
    s2.handle(Heartbeat(unit="root/a"), 5.0)
    # At 7: b is a zombie; a has more in flight but is the one served.
    assert s2.health("root/b", 7.0) is Health.ZOMBIE
    assert [coordinate(s2, n, now=7.0).unit for n in (2, 3, 4)] == ["root/a"] * 3
    # At 11.5 both are zombies: the least loaded one gets the work.
    assert s2.health("root/a", 11.5) is Health.ZOMBIE
    assert coordinate(s2, 5, now=11.5).unit == "root/b"


def test_no_live_candidate_fails_unit_lost():
    """When every candidate is dead, S2 fails the intent (UNIT_LOST, by S2)."""
    s2 = system2(warning_after=3.0, zombie_after=6.0, dead_after=12.0)
    s2.handle(Heartbeat(unit="root/a"), 0.0)
    s2.handle(Heartbeat(unit="root/b"), 0.0)
    assign = coordinate(s2, 1, now=12.0)
    assert assign.unit is None
    assert assign.outcome is not None
    assert (assign.outcome.status, assign.outcome.reason, assign.outcome.by) == (
        Status.FAILED,
        Refusal.UNIT_LOST,
        SystemId.S2,
    )
    assert "'work.do'" in assign.outcome.detail


def test_spawned_child_is_tracked_from_its_start():
    """A child S2 hears was (re)spawned counts as heard from then: silent, it dies on time."""
    s2 = system2(warning_after=3.0, zombie_after=6.0, dead_after=12.0)
    s2.handle(ChildSpawned(path="root/t", offers=frozenset({"t.x"})), 1.0)
    assert s2.health("root/t", 12.9) is Health.ZOMBIE
    assert sent(sweep(s2, 13.0), UnitDown) == [UnitDown(unit="root/t")]
    # Restarted: a full grace period again, then reported back.
    s2.handle(ChildSpawned(path="root/t", offers=frozenset({"t.x"})), 14.0)
    assert health_changes(sweep(s2, 14.0)) == [("root/t", "dead", "healthy")]
    assert s2.health("root/t", 16.9) is Health.HEALTHY


def test_first_heartbeat_of_a_spawned_child_tells_s5_it_started():
    """The first heartbeat after a (re)spawn reports ChildStarted to S5, once."""
    s2 = system2()
    s2.handle(ChildSpawned(path="root/t", offers=frozenset()), 0.0)
    effects = s2.handle(Heartbeat(unit="root/t"), 0.5)
    assert sent(effects, ChildStarted, Address("root", SystemId.S5)) == [
        ChildStarted(path="root/t")
    ]
    assert s2.handle(Heartbeat(unit="root/t"), 1.5) == []
    assert s2.handle(Heartbeat(unit="root/a"), 1.5) == []  # never spawned through S2's view


def test_heartbeat_brings_a_dead_unit_back():
    """A dead unit that beats again is healthy again and gets work."""
    s2 = system2(warning_after=3.0, zombie_after=6.0, dead_after=12.0)
    s2.handle(Heartbeat(unit="root/a"), 0.0)
    s2.handle(Heartbeat(unit="root/b"), 0.0)
    sweep(s2, 13.0)
    s2.handle(Heartbeat(unit="root/a"), 14.0)
    assert health_changes(sweep(s2, 14.0)) == [("root/a", "dead", "healthy")]
    assert coordinate(s2, 1, now=14.0).unit == "root/a"


def test_local_and_unknown_units_are_healthy():
    """``local`` kernels and units never heard from count as healthy."""
    s2 = system2()
    assert s2.health("local", 1e6) is Health.HEALTHY
    assert s2.health("root/a", 1e6) is Health.HEALTHY


def test_child_beats_to_its_parent_and_the_root_does_not():
    """A child's heartbeat tick sends its load to the parent's S2 and rearms; the root's is idle."""
    child = viable(NodeSpec(name="a"), "root/a").s2
    effects = child.handle(HeartbeatTick(), 3.0)
    assert sent(effects, Heartbeat, Address("root", SystemId.S2)) == [
        Heartbeat(unit="root/a", load=0)
    ]
    (again,) = of(effects, Schedule)
    assert (again.message, again.background) == (HeartbeatTick(), True)
    assert system2().handle(HeartbeatTick(), 3.0) == []


@pytest.mark.parametrize(
    ("path", "ticks"), [("root", [SweepTick()]), ("root/a", [SweepTick(), HeartbeatTick()])]
)
def test_started_arms_the_background_timers(path, ticks):
    """On start S2 arms its sweep, and a child its heartbeat too (at once), in the background."""
    effects = viable(NodeSpec(name="x"), path).s2.handle(Started(), 0.0)
    timers = of(effects, Schedule)
    assert [t.message for t in timers] == ticks
    assert all(t.background for t in timers)
    if path != "root":
        assert timers[1].delay == 0.0


# ---------------------------------------------------------------- claims (rule 4)


def claim(s2, resource: str, unit: str, now: float = 0.0) -> ClaimDecided:
    reply = Address(unit, SystemId.S1)
    effects = s2.handle(ClaimResource(resource=resource, unit=unit, reply_to=reply), now)
    assert sends_to(effects, ClaimDecided) == [reply]
    (decided,) = sent(effects, ClaimDecided)
    return decided


def test_first_claim_wins_and_the_holder_keeps_it():
    """The first claim on a free resource wins; a rival is refused; the holder may re-claim."""
    s2 = system2()
    assert claim(s2, "gpu", "root/a") == ClaimDecided(
        resource="gpu", unit="root/a", granted=True, owner="root/a"
    )
    assert claim(s2, "gpu", "root/b") == ClaimDecided(
        resource="gpu", unit="root/b", granted=False, owner="root/a"
    )
    assert claim(s2, "gpu", "root/a").granted
    assert claim(s2, "disk", "root/b").granted


def test_dead_holder_loses_its_claim():
    """Once the holder is dead, the next claimer takes the resource."""
    s2 = system2(warning_after=3.0, zombie_after=6.0, dead_after=12.0)
    s2.handle(Heartbeat(unit="root/a"), 0.0)
    assert claim(s2, "gpu", "root/a", 0.0).granted
    assert not claim(s2, "gpu", "root/b", 11.0).granted  # a is a zombie, not dead
    decided = claim(s2, "gpu", "root/b", 12.0)
    assert (decided.granted, decided.owner) == (True, "root/b")
    assert not claim(s2, "gpu", "root/a", 12.5).granted
