"""The registry demo: replicas of a tree gossip capability adverts until they agree.

Until the Ray runtime lands this is what ``vsm demo`` runs. It is the real registry code under
a hostile in-process network: every replica advertises concurrently, deltas travel along the
tree's edges in a shuffled order, some are duplicated and some dropped, and digest anti-entropy
repairs what was dropped. The demo checks convergence; it does not assume it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from vsm.registry import Advert, CapabilityRegistry, DeltaOutbox, RegistryDelta

__all__ = ["DemoReport", "run_registry_demo"]

CAPABILITIES = (
    ("patterns.generate", "generate GLIMMER patterns: spirals, Lissajous figures, roses"),
    ("tunnel.transmission", "transmission through a crystal lattice of barriers"),
    ("billing.invoice", "issue an invoice for a customer"),
    ("audit.sample", "sample operational units for an S3* audit"),
    ("weather.forecast", "forecast the weather for a zone"),
)
ZONES = ("eu", "us", "apac")


@dataclass(frozen=True, slots=True)
class DemoReport:
    """What the demo did and what it found."""

    replicas: list[str]
    writes: int
    delivered: int
    duplicated: int
    dropped: int
    repaired_buckets: int
    rounds: int
    converged: bool
    adverts: int
    cheapest: dict[str, Advert] = field(default_factory=dict)


def _tree(fanout: int, depth: int) -> list[tuple[str, str | None]]:
    """``(path, parent)`` for a tree rooted at ``root``."""
    nodes: list[tuple[str, str | None]] = [("root", None)]
    frontier = ["root"]
    for _ in range(depth):
        nxt = []
        for parent in frontier:
            for i in range(fanout):
                path = f"{parent}/u{i}"
                nodes.append((path, parent))
                nxt.append(path)
        frontier = nxt
    return nodes


def run_registry_demo(
    *, fanout: int = 3, depth: int = 2, writes: int = 60, seed: int = 7, loss: float = 0.2
) -> DemoReport:
    """Run the demo and report; ``seed`` makes it repeatable."""
    rng = random.Random(seed)  # noqa: S311  # a seeded, repeatable demo, not cryptography
    nodes = _tree(fanout, depth)
    registries = {path: CapabilityRegistry(path, buckets=16) for path, _ in nodes}
    neighbours: dict[str, list[str]] = {path: [] for path, _ in nodes}
    for path, parent in nodes:
        if parent is not None:
            neighbours[path].append(parent)
            neighbours[parent].append(path)
    outboxes = {path: DeltaOutbox[RegistryDelta](neighbours[path]) for path in registries}
    now = 1_000
    in_flight: list[tuple[str, str, RegistryDelta]] = []  # (from, to, delta)
    stats = {"delivered": 0, "duplicated": 0, "dropped": 0}

    def flush(path: str) -> None:
        for peer in neighbours[path]:
            delta = outboxes[path].take(peer)
            if delta is not None:
                in_flight.append((path, peer, delta))

    # Phase 1: concurrent writes, interleaved with a lossy, shuffled, duplicating network.
    for _ in range(writes):
        now += rng.randint(1, 20)
        path = rng.choice(list(registries))
        name, description = rng.choice(CAPABILITIES)
        advert = Advert(
            capability=name,
            provider=path,
            endpoint=f"vsm:{path}",
            cost=round(rng.uniform(0.5, 5.0), 2),
            zone=rng.choice(ZONES),
            description=description,
            lease_expires_ms=now + 600_000,
        )
        outboxes[path].record(registries[path].advertise(advert, now))
        flush(path)
        rng.shuffle(in_flight)
        while in_flight and rng.random() < 0.7:
            _deliver(in_flight.pop(), registries, outboxes, rng, loss, now, stats, in_flight)
            flush(rng.choice(list(registries)))

    # Phase 2: drain the network (still shuffled, lossy and duplicating) until it is quiet.
    rounds = 0
    while in_flight or any(outboxes[p].pending(q) for p in registries for q in neighbours[p]):
        rounds += 1
        for path in registries:
            flush(path)
        rng.shuffle(in_flight)
        while in_flight:
            _deliver(in_flight.pop(), registries, outboxes, rng, loss, now, stats, in_flight)

    # Phase 3: digest anti-entropy along every edge repairs what the network dropped.
    repaired = 0
    changed = True
    while changed:
        changed = False
        for path, _parent in nodes:
            for peer in neighbours[path]:
                mine, theirs = registries[path], registries[peer]
                buckets = theirs.differing(mine.digest())
                if buckets:
                    repaired += len(buckets)
                    theirs.apply(mine.bucket_delta(buckets), now)
                    changed = True

    first = registries["root"]
    converged = all(r == first for r in registries.values())
    cheapest: dict[str, Advert] = {}
    for name, _ in CAPABILITIES:
        best = first.cheapest(name, now)
        if best is not None:
            cheapest[name] = best
    return DemoReport(
        replicas=list(registries),
        writes=writes,
        delivered=stats["delivered"],
        duplicated=stats["duplicated"],
        dropped=stats["dropped"],
        repaired_buckets=repaired,
        rounds=rounds,
        converged=converged,
        adverts=len(first),
        cheapest=cheapest,
    )


def _deliver(
    message: tuple[str, str, RegistryDelta],
    registries: dict[str, CapabilityRegistry],
    outboxes: dict[str, DeltaOutbox[RegistryDelta]],
    rng: random.Random,
    loss: float,
    now: int,
    stats: dict[str, int],
    requeue: list[tuple[str, str, RegistryDelta]],
) -> None:
    sender, receiver, delta = message
    if rng.random() < loss:
        stats["dropped"] += 1
        return
    registries[receiver].apply(delta, now)
    outboxes[receiver].record(delta, origin=sender)
    stats["delivered"] += 1
    if rng.random() < 0.1:
        stats["duplicated"] += 1
        requeue.append(message)
