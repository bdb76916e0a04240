"""Benchmark ``registry``: merging two capability registries, and the size of a 1% delta.

Two workloads, N = 100,000 adverts (``--quick``: 20,000):

merge
    N/100 providers (``root/unit-000`` ...) offer 150 capabilities each: 1.5 N distinct keys,
    key ``k`` being capability ``k // providers`` of provider ``k % providers``. Each provider
    writes its adverts with :meth:`CapabilityRegistry.advertise`; the keys of the overlap,
    ``[N/2, N)``, it writes twice (v1, then v2). Replica A receives the deltas of keys
    ``[0, N)``, replica B those of ``[N/2, 3N/2)``; on the overlap A holds v1 for the odd keys
    and v2 for the even ones, B the opposite. Timed: ``A.merge(B)``, against copying and
    updating a plain dict of the same entries, ``d = dict(plain_a); d.update(plain_b)``.
    Checked: the merge holds 1.5 N adverts, v2 on every overlap key and v1 elsewhere, and
    ``B.merge(A)`` equals ``A.merge(B)``.

delta
    A registry R receives N adverts (N/100 providers x 100 capabilities); then 1% of them are
    re-advertised by their providers with a new endpoint and cost. R applies those deltas one
    by one; their join is one :class:`RegistryDelta`, whose msgpack size is compared with R's
    whole state. Checked: applying the joined delta to a copy of R taken before the change
    gives R.

Deltas reach A, B and R through :meth:`CapabilityRegistry.apply`, one at a time: on this
workload that is faster than joining them first in a balanced tree of
:meth:`RegistryDelta.merge` (each level of the tree walks every entry again).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

from bench._harness import Figure, Progress, Report, check, median, time_interleaved
from vsm.crdt import pack
from vsm.registry import Advert, CapabilityRegistry, RegistryDelta

__all__ = ["run"]

FULL_ADVERTS = 100_000
QUICK_ADVERTS = 20_000
ADVERTS_PER_PROVIDER = 100
MERGE_CAPABILITIES = 150
DELTA_CAPABILITIES = 100
CHANGED_FRACTION = 0.01
RUNS = 7
SEED = 20_240_601

MERGE_RATIO_TARGET = 15.0
DELTA_FRACTION_TARGET = 0.03

T0_MS = 1_700_000_000_000
LEASE_MS = 3_600_000

Key = tuple[str, str]


def run(quick: bool) -> Report:
    """Run both workloads at the quick or the full size and return their figures."""
    n = QUICK_ADVERTS if quick else FULL_ADVERTS
    progress = Progress()
    merge_figures = _merge(n, progress)
    delta_figures = _delta(n, progress)
    progress("done")
    return Report(
        bench="registry",
        quick=quick,
        size=(
            f"merge: 2 replicas x {n:,} adverts, {n * 3 // 2:,} distinct keys "
            f"({n // ADVERTS_PER_PROVIDER:,} providers x {MERGE_CAPABILITIES} capabilities), "
            f"{n // 2:,} keys written twice (v1, v2); median of {RUNS} runs. "
            f"delta: {n:,} adverts, {int(n * CHANGED_FRACTION):,} re-advertised (1%)."
        ),
        baseline=(
            "`merge_ratio` divides the merge time by that of copying and updating a plain dict "
            "of the same (capability, provider) -> Advert entries (`d = dict(plain_a); "
            "d.update(plain_b)`), timed in the same run, interleaved. `delta_fraction` divides "
            "the msgpack size of the joined delta by that of the whole registry state "
            "(what a full-state sync would ship)."
        ),
        figures=(*merge_figures, *delta_figures),
    )


def _advert(provider: str, capability: int, version: int) -> Advert:
    name = f"cap.{capability:03d}"
    return Advert(
        capability=name,
        provider=provider,
        endpoint=f"actor://{provider}/{name}/v{version}",
        version="1",
        cost=float(version),
        zone=f"zone-{capability % 4}",
        description=f"Capability {name} as offered by {provider}.",
        lease_expires_ms=T0_MS + LEASE_MS,
    )


def _providers(count: int) -> list[CapabilityRegistry]:
    return [CapabilityRegistry(f"root/unit-{p:03d}") for p in range(count)]


# ---------------------------------------------------------------------- merge


def _merge(n: int, progress: Progress) -> list[Figure]:
    progress(f"merge: building 2 replicas of {n:,} adverts")
    start = time.perf_counter()
    a, b, plain_a, plain_b, expected = _build_merge(n)
    build_s = time.perf_counter() - start
    progress(f"merge: built in {build_s:.1f} s; checking the result")

    merged = a.merge(b)
    check(len(merged) == len(expected), f"merge holds {len(expected):,} adverts, not {len(merged)}")
    got = {advert.key: advert for advert in merged.adverts()}
    check(got == expected, "merge keeps v2 on every overlap key and v1 elsewhere")
    check(b.merge(a) == merged, "B.merge(A) equals A.merge(B)")
    baseline = dict(plain_a)
    baseline.update(plain_b)
    check(len(baseline) == len(expected), "the dict baseline holds every key")
    del merged, got, baseline

    progress("merge: result checked")
    progress(f"merge: timing A.merge(B) and dict copy+update, {RUNS} runs each")
    times = time_interleaved(
        {"merge": lambda: a.merge(b), "dict_update": lambda: _copy_update(plain_a, plain_b)},
        RUNS,
    )
    for replica, plain in ((a, plain_a), (b, plain_b)):
        held = {advert.key: advert for advert in replica.adverts()}
        check(held == plain, f"{replica.replica} still holds its own adverts after the merges")
    merge_s, dict_s = median(times["merge"]), median(times["dict_update"])
    return [
        Figure("merge_s", merge_s, "s", f"A.merge(B), median of {RUNS}"),
        Figure("dict_update_s", dict_s, "s", f"plain dict copy + update, median of {RUNS}"),
        Figure(
            "merge_ratio",
            merge_s / dict_s,
            "x",
            "merge_s / dict_update_s",
            target=MERGE_RATIO_TARGET,
        ),
        Figure("build_s", build_s, "s", f"building A and B: {n * 2:,} advertise + {n * 2:,} apply"),
    ]


def _copy_update(plain_a: dict[Key, Advert], plain_b: dict[Key, Advert]) -> dict[Key, Advert]:
    out = dict(plain_a)
    out.update(plain_b)
    return out


def _build_merge(
    n: int,
) -> tuple[
    CapabilityRegistry, CapabilityRegistry, dict[Key, Advert], dict[Key, Advert], dict[Key, Advert]
]:
    """Build replicas A and B, their plain-dict twins, and the adverts the merge must hold."""
    count = n // ADVERTS_PER_PROVIDER
    providers = _providers(count)
    a, b = CapabilityRegistry("root/replica-a"), CapabilityRegistry("root/replica-b")
    plain_a: dict[Key, Advert] = {}
    plain_b: dict[Key, Advert] = {}
    expected: dict[Key, Advert] = {}
    receive_ms = T0_MS + 10
    for k in range(count * MERGE_CAPABILITIES):
        capability, index = divmod(k, count)
        provider = providers[index]
        v1 = _advert(provider.replica, capability, 1)
        d1 = provider.advertise(v1, T0_MS)
        if k < n // 2:
            a.apply(d1, receive_ms)
            plain_a[v1.key] = expected[v1.key] = v1
        elif k >= n:
            b.apply(d1, receive_ms)
            plain_b[v1.key] = expected[v1.key] = v1
        else:
            v2 = _advert(provider.replica, capability, 2)
            d2 = provider.advertise(v2, T0_MS + 1)
            expected[v2.key] = v2
            (a_gets, a_advert), (b_gets, b_advert) = (d1, v1), (d2, v2)
            if k % 2 == 0:
                (a_gets, a_advert), (b_gets, b_advert) = (b_gets, b_advert), (a_gets, a_advert)
            a.apply(a_gets, receive_ms)
            b.apply(b_gets, receive_ms)
            plain_a[v1.key], plain_b[v1.key] = a_advert, b_advert
    check(len(a) == n and len(b) == n, f"each replica holds {n:,} adverts")
    return a, b, plain_a, plain_b, expected


# ---------------------------------------------------------------------- delta


def _delta(n: int, progress: Progress) -> list[Figure]:
    progress(f"delta: building a registry of {n:,} adverts")
    count = n // ADVERTS_PER_PROVIDER
    providers = _providers(count)
    registry = CapabilityRegistry("root")
    for k in range(count * DELTA_CAPABILITIES):
        capability, index = divmod(k, count)
        provider = providers[index]
        registry.apply(provider.advertise(_advert(provider.replica, capability, 1), T0_MS), T0_MS)
    check(len(registry) == n, f"the registry holds {n:,} adverts")
    progress("delta: packing the state and copying it (from_data)")
    state = registry.to_data()
    state_bytes = len(pack(state))
    before = CapabilityRegistry.from_data(state)
    check(before == registry, "the copy taken from to_data equals the registry")

    changed = sorted(random.Random(SEED).sample(range(n), int(n * CHANGED_FRACTION)))
    progress(f"delta: re-advertising {len(changed):,} adverts")
    deltas = []
    for k in changed:
        capability, index = divmod(k, count)
        provider = providers[index]
        delta = provider.advertise(_advert(provider.replica, capability, 2), T0_MS + 1)
        registry.apply(delta, T0_MS + 1)
        deltas.append(delta)
    progress("delta: joining the deltas and checking them")
    joined = _join(deltas)
    check(len(joined) == len(changed), f"the joined delta writes {len(changed):,} adverts")
    delta_bytes = len(pack(joined.to_data()))
    before.apply(joined, T0_MS + 1)
    check(before == registry, "the joined delta applied to the old copy gives the new registry")
    check(
        sum(advert.cost == 2.0 for advert in registry.adverts()) == len(changed),
        "exactly the re-advertised adverts changed",
    )
    return [
        Figure("state_bytes", state_bytes, "B", f"msgpack of the {n:,}-advert registry"),
        Figure("delta_bytes", delta_bytes, "B", f"msgpack of the join of {len(changed):,} deltas"),
        Figure(
            "delta_fraction",
            delta_bytes / state_bytes,
            "1",
            "delta_bytes / state_bytes",
            target=DELTA_FRACTION_TARGET,
        ),
    ]


def _join(deltas: Sequence[RegistryDelta]) -> RegistryDelta:
    """Join deltas pairwise in a balanced tree (each level halves their number)."""
    layer = list(deltas) or [RegistryDelta()]
    while len(layer) > 1:
        pairs = [layer[i].merge(layer[i + 1]) for i in range(0, len(layer) - 1, 2)]
        layer = pairs + layer[len(pairs) * 2 :]
    return layer[0]
