"""The capability registry: which viable system offers what, converging by merge.

State: an :class:`~vsm.crdt.ORMap` keyed by ``(capability, provider)`` whose values are
:class:`~vsm.crdt.LWWRegister` of :class:`Advert`, plus this replica's :class:`~vsm.crdt.HLC`.

Rules:
    1. Provider-only writes. An entry ``(capability, P)`` may only carry dots and stamps of
       replica ``P``, and an advert whose provider is ``P``. A local write for another provider,
       or a delta holding such an entry, is refused whole with :class:`ForeignWriteError`;
       nothing of it is applied. Because dots of ``P`` only ever key ``P``'s entries, a
       context (the part of a delta that removes) can only remove its writer's own entries.
    2. Leases instead of deletes. ``withdraw`` writes the advert again with its lease ended.
       Lookups hide adverts whose lease has ended; :meth:`CapabilityRegistry.collect` forgets
       them after a horizon. Forgetting keeps their dots in the context, so an old delta
       arriving late cannot bring them back, while a renewal (a new dot) always can.
    3. Stamps more than ``max_drift_ms`` ahead of local time are refused (ClockDriftError)
       before anything is applied.
    4. Anti-entropy digests bucket entries by *provider*: a bucket's state (its providers'
       entries and their part of the context) is then a true part of the whole state, so
       shipping a bucket that differs is itself a valid delta.
    5. Epochs. A replica that restarts without its state must never reissue a dot it issued
       before (the others would take the new write for an old, removed one). Each start of a
       replica therefore writes under ``provider@epoch`` with an epoch its host makes unique
       (a restart counter); ownership compares the part before ``@`` with the provider.
    6. Scopes. The part of a state about the providers within a path (that path and the paths
       below it) is a true part of the whole state, for the same reason a bucket is (rule 4):
       a scoped digest, bucket delta or :meth:`CapabilityRegistry.part` can be compared with,
       and merged into, a replica that holds only that subtree.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

from vsm.address import is_within
from vsm.crdt import HLC, CausalContext, LWWRegister, ORMap, Stamp, pack
from vsm.crdt._data import check_tag, require
from vsm.errors import ForeignWriteError, MalformedDataError
from vsm.registry._advert import Advert

__all__ = ["CapabilityRegistry", "RegistryDelta", "bucket_of", "owner_of"]

MAX_SCOPES = 1024
"""Scoped digests a replica keeps between changes (one per child that offers its digest)."""

RegKey = tuple[str, str]
RegMap = ORMap[RegKey, LWWRegister[Advert]]


def owner_of(writer: str) -> str:
    """The provider a dot writer id belongs to: ``root/a@3`` -> ``root/a`` (rule 5)."""
    return writer.split("@", 1)[0]


@functools.lru_cache(maxsize=1 << 16)  # a pure function of few distinct paths, called per entry
def bucket_of(provider: str, buckets: int) -> int:
    """The digest bucket of ``provider`` (stable across processes and machines)."""
    digest = hashlib.blake2b(provider.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets


def _lease(register: LWWRegister[Advert]) -> int:
    return register.value.lease_expires_ms if register.value is not None else 0


def _register_from_data(data: object) -> LWWRegister[Advert]:
    return LWWRegister.from_data(data, Advert.from_data)


def _hash_part(state: RegMap | None) -> bytes:
    data = pack(state.to_data() if state is not None else None)
    return hashlib.blake2b(data, digest_size=16).digest()


class RegistryDelta:
    """A change to ship between replicas: a part of a registry's state.

    Deltas join (:meth:`merge`), so several can travel as one.
    """

    __slots__ = ("_state",)
    TAG = "registry-delta"

    def __init__(self, state: RegMap | None = None) -> None:
        self._state: RegMap = state if state is not None else ORMap()

    @property
    def state(self) -> RegMap:
        """The ORMap part this delta carries (do not mutate)."""
        return self._state

    def __len__(self) -> int:
        return len(self._state)

    def __bool__(self) -> bool:
        return bool(len(self._state)) or self._state._context.dot_count() > 0

    def adverts(self) -> list[Advert]:
        """The adverts this delta writes."""
        out = []
        for _, register in self._state.items():
            assert register.value is not None
            out.append(register.value)
        return out

    def merge(self, other: RegistryDelta) -> RegistryDelta:
        """Join two deltas into one."""
        return RegistryDelta(self._state.merge(other._state))

    def to_data(self) -> dict[str, Any]:
        """Return the delta as plain data."""
        return {"type": self.TAG, "state": self._state.to_data()}

    @classmethod
    def from_data(cls, data: object) -> RegistryDelta:
        """Rebuild a delta from :meth:`to_data` output.

        Raises:
            MalformedDataError: ``data`` is not a valid delta.
            ForeignWriteError: it holds an entry written by a replica that does not own it.
        """
        fields = require(data, "RegistryDelta", ("type", "state"))
        check_tag(fields, "RegistryDelta", cls.TAG)
        state = ORMap.from_data(fields["state"], _register_from_data)
        _check_ownership(state)
        return cls(state)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RegistryDelta):
            return NotImplemented
        return self._state == other._state

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"RegistryDelta(<{len(self._state)} adverts>)"


def _superseded(dot: tuple[str, int], dctx: CausalContext, ctx: CausalContext) -> bool:
    """Whether ``dctx`` holds a dot of ``dot``'s writer, newer than it, that ``ctx`` lacks."""
    writer, n = dot
    top = dctx.max_counter(writer)
    if top > ctx.max_counter(writer):
        return True
    return any(
        dctx.contains((writer, m)) and not ctx.contains((writer, m)) for m in range(n + 1, top + 1)
    )


def _check_ownership(state: RegMap) -> list[Stamp]:
    """Check rule 1 on every entry; return the stamps seen (for the drift check)."""
    stamps = []
    for key, held in state._entries.items():
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(p, str) for p in key)):
            raise MalformedDataError("CapabilityRegistry", "key", "expected (name, path)", key)
        provider = key[1]
        for (replica, _), register in held.items():
            advert, stamp = register.value, register.stamp
            if advert is None or stamp is None or not isinstance(advert, Advert):
                raise MalformedDataError("CapabilityRegistry", str(key), "expected an advert", key)
            for writer in (owner_of(replica), stamp.replica):
                if writer != provider:
                    raise ForeignWriteError(provider, writer, key)
            if advert.key != key:
                raise ForeignWriteError(provider, advert.provider, key)
            stamps.append(stamp)
    return stamps


class CapabilityRegistry:
    """One replica of the capability registry, owned by the viable system ``replica``.

    Args:
        replica: Path of the viable system holding this replica; it may write only its own
            adverts.
        max_drift_ms: How far ahead of local time a merged stamp may be.
        horizon_ms: How long after its lease ends an advert is kept before :meth:`collect`
            forgets it.
        buckets: Number of anti-entropy digest buckets.
        epoch: This start of the replica (rule 5); 0 for a replica that keeps its state.
    """

    __slots__ = (
        "_by_name",
        "_clock",
        "_digests",
        "_scoped",
        "_state",
        "_writer",
        "buckets",
        "horizon_ms",
    )

    def __init__(
        self,
        replica: str,
        *,
        max_drift_ms: int = 60_000,
        horizon_ms: int = 300_000,
        buckets: int = 64,
        epoch: int = 0,
    ) -> None:
        if "@" in replica:
            raise ValueError(f"'@' is reserved for epochs; got replica id {replica!r}")
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        if horizon_ms < 0:
            raise ValueError(f"horizon_ms must be >= 0, got {horizon_ms}")
        if buckets < 1:
            raise ValueError(f"buckets must be >= 1, got {buckets}")
        self._clock = HLC(replica, max_drift_ms)
        self._writer = replica if epoch == 0 else f"{replica}@{epoch}"
        self._state: RegMap = ORMap()
        self.horizon_ms = horizon_ms
        self.buckets = buckets
        self._by_name: dict[str, list[RegKey]] | None = None
        self._digests: dict[int, bytes] = {}
        self._scoped: dict[str, list[bytes]] = {}  # scope -> its digest, while unchanged

    @property
    def replica(self) -> str:
        """The viable system that owns this replica."""
        return self._clock.replica

    @property
    def clock(self) -> HLC:
        """This replica's hybrid logical clock."""
        return self._clock

    # ------------------------------------------------------------------ writes

    def advertise(self, advert: Advert, now_ms: int) -> RegistryDelta:
        """Write ``advert`` (a new offer or a renewal); return the delta to ship.

        Raises:
            ForeignWriteError: ``advert.provider`` is not this replica.
        """
        if advert.provider != self.replica:
            raise ForeignWriteError(advert.provider, self.replica, advert.key)
        stamp = self._clock.now(now_ms)
        delta = self._state.update(self._writer, advert.key, LWWRegister(advert, stamp))
        self._changed([advert.provider])
        return RegistryDelta(delta)

    def withdraw(self, capability: str, now_ms: int) -> RegistryDelta | None:
        """End this replica's lease on ``capability`` now; ``None`` if it was not offered."""
        current = self._advert((capability, self.replica))
        if current is None:
            return None
        ended = dataclasses.replace(current, lease_expires_ms=min(now_ms, current.lease_expires_ms))
        return self.advertise(ended, now_ms)

    def apply(self, delta: RegistryDelta, now_ms: int) -> None:
        """Merge a delta received from another replica, in place.

        Raises:
            ForeignWriteError: an entry is stamped by a replica that does not own it.
            ClockDriftError: a stamp is too far ahead of ``now_ms``.
        """
        stamps = _check_ownership(delta.state)
        newest = max(stamps, default=None)
        if newest is not None:
            self._clock.check(newest, now_ms)
        self._check_removals(delta.state, now_ms)
        self._state.apply(delta.state)
        if newest is not None:
            self._clock.observe(newest, now_ms)
        providers = {provider for _, provider in delta.state._entries}
        self._changed(providers | {owner_of(r) for r in delta.state._context.replicas()})

    def _check_removals(self, delta: RegMap, now_ms: int) -> None:
        """Refuse a delta that would drop a live advert it gives no reason to drop (rule 2).

        Adverts end by lease, so a legitimate removal is of a contribution that a newer write
        of its writer replaced (the newer write may itself have been collected since, leaving
        only its dot in the context) or of an advert whose lease has ended. A live advert is
        therefore removable only by a delta that carries the key, or whose context holds a
        newer dot of the same writer that this replica has not seen. A bare context of dots
        this replica already knows (a stale or forged one) removes nothing live.
        """
        state = self._state
        dctx = delta._context
        if not dctx.dot_count():
            return
        index = state._dot_index()
        ctx = state._context
        for dot in state._removed_by(delta):
            key = index[dot]
            if key in delta._entries:
                continue  # an update of the key comes with it
            register = state._entries[key][dot]
            if _lease(register) <= now_ms or _superseded(dot, dctx, ctx):
                continue
            raise ForeignWriteError(
                key[1],
                owner_of(dot[0]),
                key,
                f"a delta may not remove the live advert {key!r} (lease until "
                f"{_lease(register)} ms) without a newer write of it; adverts end by lease",
            )

    def merge(self, other: CapabilityRegistry) -> CapabilityRegistry:
        """Return the join of two replicas' states, owned by this replica; neither changes."""
        out = CapabilityRegistry(
            self.replica,
            max_drift_ms=self._clock.max_drift_ms,
            horizon_ms=self.horizon_ms,
            buckets=self.buckets,
        )
        out._writer = self._writer
        out._state = self._state.merge(other._state)
        out._clock._last = max(self._clock.last, other._clock.last)
        out._clock._last = Stamp(out._clock.last.physical_ms, out._clock.last.counter, self.replica)
        return out

    def collect(self, now_ms: int) -> int:
        """Forget adverts whose lease ended more than ``horizon_ms`` ago; return how many keys.

        A key whose winning advert is past the horizon goes whole. A key whose winner lives
        still loses the other contributions that are past the horizon (left by a renewal that
        raced a collect), so replicas that collected at different times end equal.
        """
        cutoff = now_ms - self.horizon_ms
        state = self._state
        forgotten = 0
        providers = set()
        for key, held in list(state._entries.items()):
            winner = self._advert(key)
            if winner is not None and winner.lease_expires_ms <= cutoff:
                stale = list(held)  # the key is over: every contribution goes
            else:
                stale = [d for d, reg in held.items() if _lease(reg) <= cutoff]
            if not stale:
                continue
            keep = {d: reg for d, reg in held.items() if d not in stale}
            state.apply(state._delta(key, keep, stale))
            forgotten += not keep
            providers.add(key[1])
        self._changed(providers)
        return forgotten

    def _changed(self, providers: Iterable[str]) -> None:
        self._by_name = None
        for provider in providers:
            self._digests.pop(bucket_of(provider, self.buckets), None)
            for scope in [s for s in self._scoped if is_within(provider, s)]:
                del self._scoped[scope]

    # ------------------------------------------------------------------ lookups

    def _advert(self, key: RegKey) -> Advert | None:
        register = self._state._value(key)
        return None if register is None else register.value

    def _names(self) -> dict[str, list[RegKey]]:
        if self._by_name is None:
            by_name: dict[str, list[RegKey]] = {}
            for key in self._state._entries:
                by_name.setdefault(key[0], []).append(key)
            self._by_name = by_name
        return self._by_name

    def _live(self, keys: Iterable[RegKey], now_ms: int) -> Iterator[Advert]:
        for key in keys:
            advert = self._advert(key)
            if advert is not None and advert.live(now_ms):
                yield advert

    def lookup(self, capability: str, now_ms: int) -> list[Advert]:
        """Live adverts for ``capability``, cheapest first (ties by provider path)."""
        found = self._live(self._names().get(capability, ()), now_ms)
        return sorted(found, key=lambda a: (a.cost, a.provider))

    def in_zone(self, zone: str, now_ms: int) -> list[Advert]:
        """Live adverts in ``zone``, by capability then cost."""
        found = (a for a in self._live(self._state._entries, now_ms) if a.zone == zone)
        return sorted(found, key=lambda a: (a.capability, a.cost, a.provider))

    def cheapest(self, capability: str, now_ms: int, zone: str | None = None) -> Advert | None:
        """The cheapest live provider of ``capability`` (in ``zone`` if given), or ``None``."""
        for advert in self.lookup(capability, now_ms):
            if zone is None or advert.zone == zone:
                return advert
        return None

    def adverts(self, now_ms: int | None = None) -> list[Advert]:
        """Every advert held (only the live ones when ``now_ms`` is given), sorted by key."""
        keys = sorted(self._state._entries)
        if now_ms is None:
            return [a for key in keys if (a := self._advert(key)) is not None]
        return list(self._live(keys, now_ms))

    def capabilities(self, now_ms: int) -> set[str]:
        """Names of the capabilities with at least one live provider."""
        return {name for name, keys in self._names().items() if any(self._live(keys, now_ms))}

    def __len__(self) -> int:
        return len(self._state)

    # ------------------------------------------------------------------ anti-entropy

    def digest(self, scope: str | None = None) -> list[bytes]:
        """One hash per bucket of providers; equal hashes mean equal bucket states.

        With ``scope``, the digest of the part within that path (rule 6).
        """
        if scope is not None:
            cached = self._scoped.get(scope)
            if cached is None:
                parts = self._bucket_parts(set(range(self.buckets)), scope)
                cached = [_hash_part(parts.get(b)) for b in range(self.buckets)]
                if len(self._scoped) >= MAX_SCOPES:
                    self._scoped.clear()
                self._scoped[scope] = cached
            return list(cached)
        missing = [b for b in range(self.buckets) if b not in self._digests]
        if missing:
            parts = self._bucket_parts(set(missing))
            for bucket in missing:
                self._digests[bucket] = _hash_part(parts.get(bucket))
        return [self._digests[b] for b in range(self.buckets)]

    def differing(self, digest: list[bytes], scope: str | None = None) -> list[int]:
        """Buckets where this replica's digest (within ``scope``) differs from ``digest``."""
        if len(digest) != self.buckets:
            raise ValueError(f"digest has {len(digest)} buckets, this replica {self.buckets}")
        return [
            b
            for b, (mine, theirs) in enumerate(zip(self.digest(scope), digest, strict=True))
            if mine != theirs
        ]

    def bucket_delta(self, buckets: Iterable[int], scope: str | None = None) -> RegistryDelta:
        """This replica's state in ``buckets`` (within ``scope``): a valid delta to send."""
        parts = self._bucket_parts(set(buckets), scope)
        delta = RegistryDelta()
        for part in parts.values():
            delta = delta.merge(RegistryDelta(part))
        return delta

    def part(self, scope: str) -> RegistryDelta:
        """The part of this replica's state about the providers within ``scope`` (rule 6)."""
        return self.bucket_delta(range(self.buckets), scope)

    def _bucket_parts(self, wanted: set[int], scope: str | None = None) -> dict[int, RegMap]:
        state, n = self._state, self.buckets
        ctx = state._context
        replicas: dict[int, set[str]] = {}
        for replica in ctx.replicas():
            owner = owner_of(replica)
            if scope is not None and not is_within(owner, scope):
                continue
            bucket = bucket_of(owner, n)
            if bucket in wanted:
                replicas.setdefault(bucket, set()).add(replica)
        entries: dict[int, dict[RegKey, Any]] = {b: {} for b in replicas}
        for key, held in state._entries.items():
            bucket = bucket_of(key[1], n)
            if bucket in entries and (scope is None or is_within(key[1], scope)):
                entries[bucket][key] = held
        return {b: ORMap._make(entries[b], ctx.restricted(replicas[b])) for b in replicas}

    # ------------------------------------------------------------------ data

    def to_data(self) -> dict[str, Any]:
        """Return the replica's state as deterministic plain data (the clock included)."""
        return {
            "type": "registry",
            "replica": self.replica,
            "clock": self._clock.last.to_data(),
            "state": self._state.to_data(),
        }

    @classmethod
    def from_data(cls, data: object, **options: int) -> CapabilityRegistry:
        """Rebuild a replica from :meth:`to_data` output; ``options`` as for the constructor.

        Raises:
            MalformedDataError: ``data`` is not a valid registry.
            ForeignWriteError: it holds an entry written by a replica that does not own it.
        """
        fields = require(data, "CapabilityRegistry", ("type", "replica", "clock", "state"))
        check_tag(fields, "CapabilityRegistry", "registry")
        replica = fields["replica"]
        if not isinstance(replica, str) or not replica:
            raise MalformedDataError("CapabilityRegistry", "replica", "expected a path", replica)
        out = cls(replica, **options)
        state = ORMap.from_data(fields["state"], _register_from_data)
        _check_ownership(state)
        out._state = state
        clock = Stamp.from_data(fields["clock"])
        out._clock._last = Stamp(clock.physical_ms, clock.counter, replica)
        return out

    def __eq__(self, other: object) -> bool:
        """Replicas are equal when their registry states are (owner and clock aside)."""
        if not isinstance(other, CapabilityRegistry):
            return NotImplemented
        return self._state == other._state

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CapabilityRegistry({self.replica!r}, <{len(self._state)} adverts>)"
