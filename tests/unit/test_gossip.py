"""The delta outbox: no echo to the origin, exact delivery to every neighbour, bounded backlog."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import (
    CAPABILITIES,
    COSTS,
    LEASES,
    PROVIDERS,
    START_MS,
    ZONES,
    make_advert,
)
from vsm.registry import CapabilityRegistry, DeltaOutbox, RegistryDelta

PEERS = ("p0", "p1", "p2", "p3")


@dataclasses.dataclass(frozen=True)
class Batch:
    """A stand-in delta whose join keeps every id in order, so duplicates and losses show."""

    ids: tuple[int, ...]

    def merge(self, other: Batch) -> Batch:
        return Batch(self.ids + other.ids)


class Reference:
    """Per-peer queues, the naive way: one list of (id, origin) per neighbour."""

    def __init__(self, max_backlog: int) -> None:
        self.max_backlog = max_backlog
        self.queues: dict[str, list[tuple[int, str | None]]] = {}
        self.behind: set[str] = set()

    def record(self, ident: int, origin: str | None) -> None:
        for peer, queue in self.queues.items():
            queue.append((ident, origin))
            if len(queue) > self.max_backlog:
                del queue[0]  # dropped: this peer must catch up by anti-entropy
                self.behind.add(peer)

    def take(self, peer: str) -> tuple[int, ...]:
        queue = self.queues[peer]
        ids = tuple(ident for ident, origin in queue if origin != peer)
        queue.clear()
        return ids


operations = st.lists(
    st.tuples(st.just("record"), st.sampled_from([*PEERS, None, "elsewhere"]))
    | st.tuples(st.sampled_from(["take", "add", "remove", "resync"]), st.sampled_from(PEERS)),
    max_size=40,
)


@given(
    peers=st.sets(st.sampled_from(PEERS)),
    max_backlog=st.integers(1, 6),
    ops=operations,
)
def test_outbox_delivers_each_delta_once_to_every_other_peer(
    peers: set[str], max_backlog: int, ops: list[tuple[str, Any]]
) -> None:
    """take() joins all recorded since the peer joined but its own; overflow marks it behind."""
    outbox: DeltaOutbox[Batch] = DeltaOutbox(sorted(peers), max_backlog=max_backlog)
    model = Reference(max_backlog)
    model.queues = {peer: [] for peer in peers}
    origins: dict[int, str | None] = {}
    for step, (what, who) in enumerate(ops):
        if what == "record":
            origins[step] = who
            outbox.record(Batch((step,)), who)
            model.record(step, who)
        elif what == "add":
            outbox.add_peer(who)
            model.queues.setdefault(who, [])
        elif what == "remove":
            outbox.remove_peer(who)
            model.queues.pop(who, None)
            model.behind.discard(who)
        elif what == "resync":
            outbox.resynced(who)
            model.behind.discard(who)
        elif who not in model.queues:
            with pytest.raises(KeyError):
                outbox.take(who)
        else:
            expected = model.take(who)
            taken = outbox.take(who)
            assert (taken.ids if taken is not None else ()) == expected
            assert all(origins[ident] != who for ident in expected)
            assert outbox.pending(who) == 0
        assert outbox.peers == frozenset(model.queues)
        assert outbox.behind() == frozenset(model.behind)
        for peer, queue in model.queues.items():
            assert outbox.pending(peer) == len(queue)
        stats = outbox.statistics()
        assert stats["backlog"] <= max_backlog
        assert stats["peers"] == len(model.queues)
        assert stats["behind"] == len(model.behind)


@given(
    writes=st.lists(
        st.tuples(
            st.integers(0, 2),
            st.sampled_from(CAPABILITIES),
            st.sampled_from(COSTS),
            st.sampled_from(ZONES),
            st.sampled_from(LEASES),
        ),
        max_size=12,
    ),
    rounds=st.lists(st.integers(0, 2), max_size=12),
    max_backlog=st.integers(1, 4),
)
def test_gossip_along_a_line_converges_with_anti_entropy_for_those_behind(
    writes: list[tuple[int, str, float, str, int]], rounds: list[int], max_backlog: int
) -> None:
    """Registries a - b - c gossip through outboxes, b relaying; digests repair those behind."""
    now = START_MS
    replicas = {p: CapabilityRegistry(p) for p in PROVIDERS[:3]}
    a, b, c = PROVIDERS[:3]
    links = {a: [b], b: [a, c], c: [b]}
    outboxes: dict[str, DeltaOutbox[RegistryDelta]] = {
        p: DeltaOutbox(links[p], max_backlog=max_backlog) for p in links
    }

    def pump(sender: str) -> None:
        for peer in links[sender]:
            delta = outboxes[sender].take(peer)
            if delta is not None:
                replicas[peer].apply(delta, now)
                outboxes[peer].record(delta, origin=sender)

    for n, (i, capability, cost, zone, lease) in enumerate(writes):
        provider = PROVIDERS[i]
        advert = make_advert(provider, capability, cost, zone, now + lease)
        outboxes[provider].record(replicas[provider].advertise(advert, now))
        if rounds:
            pump(PROVIDERS[rounds[n % len(rounds)]])
    for _ in range(10):  # drain, repair whoever fell behind, until nothing moves
        while any(outboxes[s].pending(p) for s in links for p in links[s]):
            for sender in links:
                pump(sender)
        if not any(outbox.behind() for outbox in outboxes.values()):
            break
        for sender, outbox in outboxes.items():
            for peer in outbox.behind():
                buckets = replicas[peer].differing(replicas[sender].digest())
                repair = replicas[sender].bucket_delta(buckets)
                replicas[peer].apply(repair, now)
                outboxes[peer].record(repair, origin=sender)
                outbox.resynced(peer)
    assert not any(outbox.behind() for outbox in outboxes.values())
    assert replicas[a] == replicas[b] == replicas[c]
