"""The capability registry: provider-only writes, drift refusal, leases, collection, digests."""

from __future__ import annotations

import copy
import dataclasses
import functools
from random import Random
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import (
    CAPABILITIES,
    COSTS,
    HORIZON_MS,
    PROVIDERS,
    ZONES,
    RegistryHistory,
    edited,
    edits,
    indices,
    make_advert,
    registry_histories,
    reordered,
    seeds,
)
from vsm.crdt import CausalContext, LWWRegister, ORMap, pack
from vsm.errors import ClockDriftError, ForeignWriteError, MalformedDataError
from vsm.registry import Advert, CapabilityRegistry, RegistryDelta

MAX_DRIFT_MS = 60_000  # the registries' default
offsets = st.integers(-200, 3_000)
"""Times around the end of a history, where leases run out and horizons pass."""


def snapshot(registry: CapabilityRegistry) -> bytes:
    """Everything observable about a replica: its state, its clock, its digest."""
    return pack([registry.to_data(), registry.digest()])


def fresh(registry: CapabilityRegistry) -> CapabilityRegistry:
    """The same replica rebuilt from plain data (no cached digests)."""
    return CapabilityRegistry.from_data(
        registry.to_data(), horizon_ms=registry.horizon_ms, buckets=registry.buckets
    )


def fresh_from_data(registry: CapabilityRegistry) -> Any:
    """A decoder of replica data with ``registry``'s options."""
    return functools.partial(
        CapabilityRegistry.from_data, horizon_ms=registry.horizon_ms, buckets=registry.buckets
    )


def clock_of(registry: CapabilityRegistry) -> tuple[int, int]:
    """The replica's clock reading, its id aside."""
    return registry.clock.last.physical_ms, registry.clock.last.counter


def deliver_all(history: RegistryHistory, now: int) -> None:
    for registry in history.replicas:
        for _, delta in history.deltas:
            registry.apply(delta, now)


def single_advert_delta(history: RegistryHistory, i: int) -> tuple[int, RegistryDelta] | None:
    """One of the history's deltas (each advertise or withdraw writes exactly one entry)."""
    if not history.deltas:
        return None
    return history.deltas[i % len(history.deltas)]


# ---------------------------------------------------------------- data and merge


@given(history=registry_histories, i=indices)
def test_registry_and_delta_round_trip(history: RegistryHistory, i: int) -> None:
    """Replicas and deltas rebuild from plain data (through msgpack) to equal, same-byte states."""
    registry = history.replicas[i % len(history.replicas)]
    plain = registry.to_data()
    back = CapabilityRegistry.from_data(msgpack.unpackb(pack(plain)), buckets=registry.buckets)
    assert back == registry
    assert back.replica == registry.replica
    assert back.clock.last == registry.clock.last
    assert back.digest() == registry.digest()
    assert pack(back.to_data()) == pack(plain)
    for _, delta in history.deltas:
        again = RegistryDelta.from_data(msgpack.unpackb(pack(delta.to_data())))
        assert again == delta
        assert again.adverts() == delta.adverts()


adverts = st.builds(
    Advert,
    capability=st.sampled_from(CAPABILITIES),
    provider=st.sampled_from(PROVIDERS),
    endpoint=st.text(min_size=1, max_size=5),
    version=st.text(min_size=1, max_size=3),
    # Odd ints above 2**53 are where a float cost cannot hold the int exactly.
    cost=st.integers(0, 100)
    | st.integers(2**52, 2**63 - 1).map(lambda n: 2 * n + 1)
    | st.floats(0, 1e300),
    zone=st.sampled_from(ZONES),
    description=st.text(max_size=5),
    lease_expires_ms=st.integers(0, 2**64 - 1),
)


@given(advert=adverts)
def test_advert_round_trip(advert: Advert) -> None:
    """Every valid advert rebuilds from its plain data, through msgpack, to an equal advert."""
    assert Advert.from_data(advert.to_data()) == advert
    assert Advert.from_data(msgpack.unpackb(pack(advert.to_data()))) == advert


@given(history=registry_histories, i=indices, j=indices, k=indices)
def test_registry_merge_is_a_join(history: RegistryHistory, i: int, j: int, k: int) -> None:
    """Registry merge is commutative, associative, idempotent, and leaves its inputs alone."""
    replicas = history.replicas
    a, b, c = (replicas[x % len(replicas)] for x in (i, j, k))
    a_before, b_before = snapshot(a), snapshot(b)
    ab = a.merge(b)
    assert snapshot(a) == a_before
    assert snapshot(b) == b_before
    assert ab == b.merge(a)
    assert ab.digest() == b.merge(a).digest()
    assert ab.merge(c) == a.merge(b.merge(c))
    assert a.merge(a) == a
    assert ab.merge(b) == ab
    assert ab.replica == a.replica
    assert clock_of(ab) >= max(clock_of(a), clock_of(b))


@given(history=registry_histories, i=indices, scope=st.sampled_from((*PROVIDERS, "root")))
def test_a_scoped_part_is_a_replica_of_that_subtree(
    history: RegistryHistory, i: int, scope: str
) -> None:
    """The part within a path, merged into an empty replica, has that path's scoped digest."""
    registry = history.replicas[i % len(history.replicas)]
    part = registry.part(scope)
    assert all(a.provider == scope or a.provider.startswith(scope + "/") for a in part.adverts())
    below = CapabilityRegistry(scope, buckets=registry.buckets, max_drift_ms=2**62)
    below.apply(part, 0)
    assert below.digest() == registry.digest(scope)
    assert below.part(scope) == part
    assert registry.differing(below.digest(), scope) == []
    # Parts of disjoint subtrees join to the whole.
    whole = RegistryDelta()
    for provider in PROVIDERS:
        whole = whole.merge(registry.part(provider))
    assert whole == registry.part("root") == registry.bucket_delta(range(registry.buckets))


# ---------------------------------------------------------------- provider-only writes


@given(
    history=registry_histories,
    i=indices,
    foreign=st.sampled_from(PROVIDERS),
    capability=st.sampled_from(CAPABILITIES),
)
def test_advertising_for_another_provider_is_refused(
    history: RegistryHistory, i: int, foreign: str, capability: str
) -> None:
    """advertise() of an advert whose provider is not the replica raises, changing nothing."""
    registry = history.replicas[i % len(history.replicas)]
    if foreign == registry.replica:
        foreign = "root/elsewhere"
    before = snapshot(registry)
    with pytest.raises(ForeignWriteError):
        registry.advertise(make_advert(foreign, capability, 1.0, "default", 10**9), history.now)
    assert snapshot(registry) == before


TAMPERINGS = ("dot", "stamp", "advert", "key")


def tampered(delta: RegistryDelta, how: str, intruder: str) -> dict[str, Any]:
    """The plain data of ``delta`` with its one entry rewritten to name ``intruder``."""
    data = copy.deepcopy(delta.to_data())
    state = data["state"]
    key, dots = state["entries"][0]
    dot = dots[0]
    if how == "dot":
        dot[0] = intruder
        context = CausalContext.from_data(state["context"])
        context.add((intruder, dot[1]))
        state["context"] = context.to_data()
    elif how == "stamp":
        dot[2]["stamp"][2] = intruder
    elif how == "advert":
        dot[2]["value"][1] = intruder
    else:
        key[1] = intruder
    return data


def decode_unchecked(data: dict[str, Any]) -> RegistryDelta:
    """A RegistryDelta built straight from an ORMap, past the ownership check of from_data."""
    state = ORMap.from_data(
        data["state"], lambda plain: LWWRegister.from_data(plain, Advert.from_data)
    )
    return RegistryDelta(state)


@given(
    history=registry_histories,
    i=indices,
    j=indices,
    how=st.sampled_from(TAMPERINGS),
    with_good=st.booleans(),
)
def test_entries_written_by_another_replica_are_refused_whole(
    history: RegistryHistory, i: int, j: int, how: str, with_good: bool
) -> None:
    """An entry whose dot, stamp, advert or key names another replica is refused, whole."""
    picked = single_advert_delta(history, i)
    if picked is None:
        return
    origin, delta = picked
    intruder, bystander = (p for p in PROVIDERS if p != PROVIDERS[origin])
    bad = tampered(delta, how, intruder)
    with pytest.raises(ForeignWriteError):
        RegistryDelta.from_data(bad)
    registry_data = {"type": "registry", "replica": intruder, "clock": [0, 0, intruder]}
    with pytest.raises(ForeignWriteError):
        CapabilityRegistry.from_data({**registry_data, "state": bad["state"]})
    forged = decode_unchecked(bad)
    if with_good:
        # A valid write by a third provider travels in the same delta; it is refused too.
        good = CapabilityRegistry(bystander).advertise(
            make_advert(bystander, "cap.good", 1.0, "default", 10**12), history.now
        )
        forged = forged.merge(good)
    for registry in history.replicas:
        before = snapshot(registry)
        with pytest.raises(ForeignWriteError):
            registry.apply(forged, history.now)
        assert snapshot(registry) == before


@given(history=registry_histories, i=indices, victim=st.sampled_from(PROVIDERS))
def test_a_delta_of_bare_context_cannot_remove_live_adverts(
    history: RegistryHistory, i: int, victim: str
) -> None:
    """A delta holding no entry but the victim's dots in its context leaves live adverts alone."""
    registry = history.replicas[i % len(history.replicas)]
    seen = CausalContext.from_data(registry.to_data()["state"]["context"])
    # Every dot the victim wrote, under any epoch ("root/a", "root/a@2"...).
    victims = seen.restricted(r for r in seen.replicas() if r.split("@")[0] == victim)
    forged = {
        "type": "registry-delta",
        "state": {"type": "ormap", "entries": [], "context": victims.to_data()},
    }
    before = snapshot(registry)
    alive = [a for a in registry.adverts(history.now) if a.provider == victim]
    try:
        registry.apply(RegistryDelta.from_data(forged), history.now)
    except ForeignWriteError:
        assert snapshot(registry) == before
        return
    assert [a for a in registry.adverts(history.now) if a.provider == victim] == alive


def test_anti_entropy_after_an_ended_renewal_was_collected_removes_the_old_advert() -> None:
    """A replica that missed an ended renewal takes the provider's collected state.

    The provider replaced a live advert by an ended one and collected it since (the CI
    counterexample of session 1): the bucket delta must remove the old advert, not be refused.
    """
    a = CapabilityRegistry("root/a", horizon_ms=HORIZON_MS)
    b = CapabilityRegistry("root/b", horizon_ms=HORIZON_MS)
    b.apply(a.advertise(make_advert("root/a", "cap.y", 0.0, "default", 2_000), 1_000), 1_000)
    a.advertise(make_advert("root/a", "cap.y", 0.0, "default", 1_000), 1_000)  # lost on the way
    a.advertise(make_advert("root/a", "cap.x", 0.0, "default", 2_500), 1_500)
    a.collect(1_500)
    assert [ad.capability for ad in b.lookup("cap.y", 1_500)] == ["cap.y"]
    b.apply(a.bucket_delta(b.differing(a.digest())), 1_500)
    assert b.lookup("cap.y", 1_500) == []
    assert b == a


@given(history=registry_histories, i=indices, edit=edits, of_delta=st.booleans())
def test_any_single_edit_of_registry_data_is_refused_or_valid(
    history: RegistryHistory, i: int, edit: tuple[int, str, Any], of_delta: bool
) -> None:
    """One random edit of a replica's or a delta's data is refused as malformed or foreign."""
    registry = history.replicas[i % len(history.replicas)]
    if of_delta and history.deltas:
        decode: Any = RegistryDelta.from_data
        plain = history.deltas[i % len(history.deltas)][1].to_data()
    else:
        decode, plain = fresh_from_data(registry), registry.to_data()
    try:
        decoded = decode(edited(plain, *edit))
    except (MalformedDataError, ForeignWriteError):
        return
    again = decode(msgpack.unpackb(pack(decoded.to_data())))
    assert again == decoded


# ---------------------------------------------------------------- clock drift


@given(
    history=registry_histories,
    ahead=st.integers(1, 10**6),
    capability=st.sampled_from(CAPABILITIES),
    with_good=st.booleans(),
    j=indices,
)
def test_deltas_from_the_future_are_refused_whole(
    history: RegistryHistory, ahead: int, capability: str, with_good: bool, j: int
) -> None:
    """A delta stamped more than max_drift_ms ahead raises ClockDriftError and changes nothing."""
    writer, receiver = history.replicas[0], history.replicas[1]
    now = history.now
    advert = make_advert(writer.replica, capability, 1.0, "default", 10**12)
    # Writers under epochs of their own: their dots cannot collide with the history's.
    delta = CapabilityRegistry(writer.replica, epoch=1_000).advertise(
        advert, now + MAX_DRIFT_MS + ahead
    )
    if with_good and history.deltas:
        delta = delta.merge(history.deltas[j % len(history.deltas)][1])
    before = snapshot(receiver)
    with pytest.raises(ClockDriftError):
        receiver.apply(delta, now)
    assert snapshot(receiver) == before
    at_bound = CapabilityRegistry(writer.replica, epoch=1_001).advertise(advert, now + MAX_DRIFT_MS)
    receiver.apply(at_bound, now)
    assert advert in receiver.adverts()
    (_, register), *_ = at_bound.state.items()
    assert register.stamp is not None
    assert clock_of(receiver) > (register.stamp.physical_ms, register.stamp.counter)


# ---------------------------------------------------------------- leases and lookups


def live(registry: CapabilityRegistry, now: int) -> list[Advert]:
    return [a for a in registry.adverts() if now < a.lease_expires_ms]


@given(
    history=registry_histories,
    i=indices,
    offset=offsets,
    capability=st.sampled_from(CAPABILITIES),
    zone=st.sampled_from(ZONES),
)
def test_lookups_show_only_live_adverts(
    history: RegistryHistory, i: int, offset: int, capability: str, zone: str
) -> None:
    """Lookups agree with a naive filter of adverts(): no expired lease, the cheapest first."""
    registry = history.replicas[i % len(history.replicas)]
    now = history.now + offset
    alive = live(registry, now)
    by_cost = sorted(
        (a for a in alive if a.capability == capability), key=lambda a: (a.cost, a.provider)
    )
    assert registry.lookup(capability, now) == by_cost
    assert registry.cheapest(capability, now) == (by_cost[0] if by_cost else None)
    in_zone = [a for a in by_cost if a.zone == zone]
    assert registry.cheapest(capability, now, zone) == (in_zone[0] if in_zone else None)
    assert registry.in_zone(zone, now) == sorted(
        (a for a in alive if a.zone == zone), key=lambda a: (a.capability, a.cost, a.provider)
    )
    assert registry.capabilities(now) == {a.capability for a in alive}
    assert registry.adverts(now) == sorted(alive, key=lambda a: a.key)
    for advert in registry.adverts():
        assert advert in history.written


@given(history=registry_histories, i=indices, capability=st.sampled_from(CAPABILITIES))
def test_withdraw_hides_the_advert_at_once(
    history: RegistryHistory, i: int, capability: str
) -> None:
    """After withdraw(capability, now) the replica's own advert is no longer live at now."""
    registry = history.replicas[i % len(history.replicas)]
    held = (capability, registry.replica) in {a.key for a in registry.adverts()}
    delta = registry.withdraw(capability, history.now)
    assert (delta is not None) == held
    mine = [a for a in registry.lookup(capability, history.now) if a.provider == registry.replica]
    assert mine == []


# ---------------------------------------------------------------- collection


@given(history=registry_histories, i=indices, offset=offsets)
def test_collect_forgets_only_adverts_past_the_horizon(
    history: RegistryHistory, i: int, offset: int
) -> None:
    """collect(now) drops exactly the adverts past the horizon, and changes no lookup."""
    registry = history.replicas[i % len(history.replicas)]
    now = history.now + offset
    before = registry.adverts()
    views = [
        (registry.lookup(c, t), registry.capabilities(t))
        for t in (now - HORIZON_MS, now)
        for c in CAPABILITIES
    ]
    forgotten = registry.collect(now)
    kept = [a for a in before if a.lease_expires_ms > now - HORIZON_MS]
    assert registry.adverts() == kept
    assert forgotten == len(before) - len(kept)
    assert views == [
        (registry.lookup(c, t), registry.capabilities(t))
        for t in (now - HORIZON_MS, now)
        for c in CAPABILITIES
    ]
    assert registry.digest() == fresh(registry).digest()


@given(history=registry_histories, i=indices, seed=seeds, cost=st.sampled_from(COSTS))
def test_late_deltas_do_not_resurrect_collected_adverts_but_renewals_do(
    history: RegistryHistory, i: int, seed: int, cost: float
) -> None:
    """A collected advert stays gone whatever old deltas arrive; a renewal brings it back."""
    registry = history.replicas[i % len(history.replicas)]
    deliver_all(history, history.now)
    later = max([history.now, *(a.lease_expires_ms for a in history.written)]) + HORIZON_MS
    registry.collect(later)
    assert registry.adverts() == []
    for _, delta in reordered(history.deltas, Random(seed)):
        registry.apply(delta, later)
    assert registry.adverts() == []
    for origin, delta in history.deltas:
        provider = history.replicas[origin]
        (advert,) = delta.adverts()
        renewed = dataclasses.replace(advert, cost=cost, lease_expires_ms=later + 1_000)
        registry.apply(provider.advertise(renewed, later), later)
        assert renewed in registry.lookup(advert.capability, later)


@given(
    cost=st.sampled_from(COSTS),
    lease=st.integers(0, 1_000),
    gap=st.integers(1, 5_000),
    receiver_collects=st.booleans(),
)
def test_a_renewal_after_collect_converges_by_deltas_alone(
    cost: float, lease: int, gap: int, receiver_collects: bool
) -> None:
    """A renewal after a collect, once delivered, leaves both replicas equal without digests."""
    provider = CapabilityRegistry("root/a", horizon_ms=HORIZON_MS)
    receiver = CapabilityRegistry("root/b", horizon_ms=HORIZON_MS)
    start = 1_000
    receiver.apply(
        provider.advertise(make_advert("root/a", "cap.x", cost, "default", start + lease), start),
        start,
    )
    later = start + lease + HORIZON_MS + gap
    provider.collect(later)
    if receiver_collects:
        receiver.collect(later)
    renewal = make_advert("root/a", "cap.x", cost, "default", later + 1_000)
    receiver.apply(provider.advertise(renewal, later), later)
    provider.collect(later)
    receiver.collect(later)
    assert receiver.lookup("cap.x", later) == provider.lookup("cap.x", later) == [renewal]
    assert receiver == provider
    assert receiver.digest() == provider.digest()


@given(
    old_lease=st.integers(2_000, 10**6),
    new_lease=st.integers(0, 1_000),
    gap=st.integers(0, 3_000),
)
def test_collect_never_brings_back_a_superseded_advert(
    old_lease: int, new_lease: int, gap: int
) -> None:
    """An advert replaced by a newer write (from a restarted epoch) stays hidden after collect."""
    provider = CapabilityRegistry("root/a", horizon_ms=HORIZON_MS)
    other = CapabilityRegistry("root/b", horizon_ms=HORIZON_MS)
    start = 1_000
    old = make_advert("root/a", "cap.x", 1.0, "default", start + old_lease)
    other.apply(provider.advertise(old, start), start)
    restarted = CapabilityRegistry("root/a", horizon_ms=HORIZON_MS, epoch=1)
    newer = dataclasses.replace(old, zone="eu", lease_expires_ms=start + 1 + new_lease)
    other.apply(restarted.advertise(newer, start + 1), start + 1)
    now = start + 1 + gap
    before = other.lookup("cap.x", now)
    assert old not in before
    other.collect(now)
    assert other.lookup("cap.x", now) == before


# ---------------------------------------------------------------- anti-entropy


@given(history=registry_histories, i=indices, j=indices)
def test_digests_are_equal_exactly_where_bucket_states_are(
    history: RegistryHistory, i: int, j: int
) -> None:
    """Digests agree on a bucket iff the bucket states are equal; cached digests are current."""
    replicas = history.replicas
    a, b = replicas[i % len(replicas)], replicas[j % len(replicas)]
    assert a.digest() == fresh(a).digest()
    assert b.digest() == fresh(b).digest()
    for bucket, (mine, theirs) in enumerate(zip(a.digest(), b.digest(), strict=True)):
        assert (mine == theirs) == (a.bucket_delta([bucket]) == b.bucket_delta([bucket]))
    assert a.differing(b.digest()) == b.differing(a.digest())
    assert (a.differing(b.digest()) == []) == (a == b)


@given(history=registry_histories)
def test_anti_entropy_repairs_lost_deltas(history: RegistryHistory) -> None:
    """Exchanging the buckets whose digests differ, pair by pair, makes all replicas equal."""
    replicas = history.replicas
    everything = functools.reduce(lambda x, y: x.merge(y), replicas)
    pairs = [(a, b) for a in replicas for b in replicas if a is not b]
    for a, b in pairs:
        buckets = a.differing(b.digest())
        to_b, to_a = a.bucket_delta(buckets), b.bucket_delta(buckets)
        b.apply(to_b, history.now)
        a.apply(to_a, history.now)
        assert a.differing(b.digest()) == []
        assert a == b
    for registry in replicas:
        assert registry == everything
        assert registry.digest() == fresh(everything).digest()
