"""Three registry replicas driven at random, checked against a naive model of who offers what.

The model is a dict ``(capability, provider) -> the provider's latest advert``; lookups on it are
computed the obvious way. The network is a list of deltas in flight: delivered in any order,
some twice, some only after time has passed and replicas have collected.
"""

from __future__ import annotations

import dataclasses

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.strategies import (
    CAPABILITIES,
    COSTS,
    HORIZON_MS,
    LEASES,
    PROVIDERS,
    START_MS,
    TICKS,
    ZONES,
    make_advert,
)
from vsm.registry import Advert, CapabilityRegistry, RegistryDelta

BUCKETS = 4
providers = st.sampled_from(PROVIDERS)
capabilities = st.sampled_from(CAPABILITIES)
picks = st.integers(0, 2**16)


class RegistryMachine(RuleBasedStateMachine):
    """Replicas root/a, root/b, root/c, each writing only its own adverts."""

    def __init__(self) -> None:
        super().__init__()
        self.now = START_MS
        self.replicas = {
            p: CapabilityRegistry(p, horizon_ms=HORIZON_MS, buckets=BUCKETS) for p in PROVIDERS
        }
        self.latest: dict[tuple[str, str], Advert] = {}
        self.written: set[Advert] = set()
        self.in_flight: list[tuple[str, RegistryDelta]] = []
        self.delivered: list[tuple[str, RegistryDelta]] = []

    # ------------------------------------------------------------ the naive model

    def expected_lookup(self, capability: str) -> list[Advert]:
        found = [
            a
            for (c, _), a in self.latest.items()
            if c == capability and self.now < a.lease_expires_ms
        ]
        return sorted(found, key=lambda a: (a.cost, a.provider))

    def send(self, origin: str, delta: RegistryDelta) -> None:
        self.in_flight += [(p, delta) for p in PROVIDERS if p != origin]

    # ------------------------------------------------------------ rules

    @rule(
        provider=providers,
        capability=capabilities,
        cost=st.sampled_from(COSTS),
        zone=st.sampled_from(ZONES),
        lease=st.sampled_from(LEASES),
    )
    def advertise(self, provider: str, capability: str, cost: float, zone: str, lease: int) -> None:
        advert = make_advert(provider, capability, cost, zone, self.now + lease)
        delta = self.replicas[provider].advertise(advert, self.now)
        assert delta.adverts() == [advert]
        self.latest[advert.key] = advert
        self.written.add(advert)
        self.send(provider, delta)

    @precondition(lambda self: self.latest)
    @rule(pick=picks, lease=st.sampled_from(LEASES))
    def renew(self, pick: int, lease: int) -> None:
        """Advertise an existing offer again with a new lease (after a collect, too)."""
        key = sorted(self.latest)[pick % len(self.latest)]
        current = self.latest[key]
        self.advertise(key[1], key[0], current.cost, current.zone, lease)

    @rule(provider=providers, capability=capabilities)
    def withdraw(self, provider: str, capability: str) -> None:
        key = (capability, provider)
        delta = self.replicas[provider].withdraw(capability, self.now)
        if delta is None:
            # Only an advert never written, or collected (past the horizon), can be missing.
            assert key not in self.latest or (
                self.latest[key].lease_expires_ms <= self.now - HORIZON_MS
            )
            return
        current = self.latest[key]
        ended = dataclasses.replace(
            current, lease_expires_ms=min(self.now, current.lease_expires_ms)
        )
        assert delta.adverts() == [ended]
        self.latest[key] = ended
        self.written.add(ended)
        self.send(provider, delta)

    @precondition(lambda self: self.in_flight)
    @rule(pick=picks)
    def deliver(self, pick: int) -> None:
        target, delta = self.in_flight.pop(pick % len(self.in_flight))
        self.replicas[target].apply(delta, self.now)
        self.delivered.append((target, delta))

    @precondition(lambda self: self.delivered)
    @rule(pick=picks)
    def deliver_again(self, pick: int) -> None:
        target, delta = self.delivered[pick % len(self.delivered)]
        before = self.replicas[target].to_data()["state"]
        self.replicas[target].apply(delta, self.now)
        assert self.replicas[target].to_data()["state"] == before

    @rule(ms=st.sampled_from(TICKS))
    def tick(self, ms: int) -> None:
        self.now += ms

    @rule(provider=providers)
    def collect(self, provider: str) -> None:
        self.replicas[provider].collect(self.now)

    @rule(source=providers, destination=providers)
    def anti_entropy(self, source: str, destination: str) -> None:
        giver, taker = self.replicas[source], self.replicas[destination]
        taker.apply(giver.bucket_delta(taker.differing(giver.digest())), self.now)

    @rule()
    def full_sync(self) -> None:
        """Deliver every delta in flight and collect everywhere: replicas and model must agree."""
        for target, delta in self.in_flight:
            self.replicas[target].apply(delta, self.now)
        self.delivered += self.in_flight
        self.in_flight = []
        for registry in self.replicas.values():
            registry.collect(self.now)
        for registry in self.replicas.values():
            rebuilt = CapabilityRegistry.from_data(
                registry.to_data(), horizon_ms=HORIZON_MS, buckets=BUCKETS
            )
            assert registry.digest() == rebuilt.digest(), "a cached digest is stale"
        first, *others = self.replicas.values()
        for registry in others:
            assert registry == first, f"{registry.replica} differs from {first.replica}"
            assert registry.digest() == first.digest()
        for registry in self.replicas.values():
            for capability in CAPABILITIES:
                expected = self.expected_lookup(capability)
                assert registry.lookup(capability, self.now) == expected
                assert registry.cheapest(capability, self.now) == (
                    expected[0] if expected else None
                )
            assert registry.capabilities(self.now) == {
                c for c in CAPABILITIES if self.expected_lookup(c)
            }
            for zone in ZONES:
                assert registry.in_zone(zone, self.now) == sorted(
                    (a for c in CAPABILITIES for a in self.expected_lookup(c) if a.zone == zone),
                    key=lambda a: (a.capability, a.cost, a.provider),
                )

    # ------------------------------------------------------------ invariants

    @invariant()
    def providers_see_their_own_writes(self) -> None:
        for (capability, provider), advert in self.latest.items():
            own = [
                a
                for a in self.replicas[provider].lookup(capability, self.now)
                if a.provider == provider
            ]
            assert own == ([advert] if advert.live(self.now) else [])

    @invariant()
    def lookups_show_only_live_written_adverts(self) -> None:
        for registry in self.replicas.values():
            for capability in CAPABILITIES:
                found = registry.lookup(capability, self.now)
                assert found == sorted(found, key=lambda a: (a.cost, a.provider))
                assert len({a.provider for a in found}) == len(found)
                for advert in found:
                    assert advert in self.written
                    assert advert.capability == capability
                    assert advert.live(self.now)


class TestRegistryMachine(RegistryMachine.TestCase):
    """Once every delta is delivered and all collect, replicas equal each other and the model."""

    settings = settings(stateful_step_count=30)
