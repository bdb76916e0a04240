"""The replay guard: an exact, bounded window of recorded (sender, nonce) pairs.

Rules:
    1. A message is known by ``(sender, nonce)`` and carries its signed ``expires``.
       :meth:`ReplayGuard.check` refuses it with :class:`~protocol.errors.ExpiredError` when
       ``expires <= now`` (or is NaN); else with :class:`~protocol.errors.ReplayError`
       (``"replayed"``) when the pair is recorded and unexpired; else with ``ReplayError``
       (``"window-full"``) when the window is full (rule 4); else it returns.
    2. ``check`` never records. The receiver calls :meth:`ReplayGuard.record` only after the
       message's effect is committed, so a crash in between followed by a redelivery loses
       nothing: the redelivered copy passes ``check``. (That the effect then runs once is the
       idempotent consumer's job, keyed by envelope id.)
    3. Exact: a recorded pair is kept until its expiry and forgotten only then, when any copy
       of the message is refused as expired anyway; so forgetting never lets a replay through.
       Time only moves forward: a ``now`` earlier than one already seen is taken as the latest
       seen (the horizon), so a clock stepping back cannot revive a forgotten pair.
    4. Bounded: at most ``max_entries`` unexpired entries. When the window is full, ``check``
       refuses new messages (``reason="window-full"``: the sender is not at fault, retry later)
       rather than forget an unexpired entry. ``record`` always records, because the effect is
       already committed; the window may therefore exceed ``max_entries`` by the messages in
       flight between ``check`` and ``record``, which the transport bounds (prefetch).
    5. Pre-filters only ever say "certainly new"; whatever they cannot rule out is confirmed
       against the exact window before anything is refused, so a false positive costs one
       lookup, never a message. The default pre-filter is the nonce index, an exact count of
       window entries per nonce, probed for a whole batch by one C-level set operation. With
       ``bloom_capacity`` set, an rbloom filter is the pre-filter instead: its keys are
       BLAKE2b digests of the length-prefixed sender and the nonce (:func:`replay_key`), the
       same in every process (rbloom's default, Python's ``hash``, is salted per process), and
       its hash function is ``int``, the identity on those digests. A Bloom filter cannot
       forget, so it is rebuilt from the window after ``capacity`` additions, with capacity at
       least twice the live entries: O(1) amortised per record, and bounded in size.
    6. A batch is checked as its items would be one by one, except that a pair that occurs
       again after an accepted occurrence in the same batch is refused as replayed: the batch's
       effects are committed together, so both copies would otherwise take effect.
    7. Restart: snapshots. :meth:`ReplayGuard.to_bytes` writes the unexpired window (msgpack),
       :meth:`ReplayGuard.from_bytes` restores it. A receiver must take a snapshot after it
       records each batch of committed effects and store it durably, best in the same
       transaction as the effects: pairs recorded after the last snapshot are not in a
       restored window, and could be replayed until they expire.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import compress, repeat
from operator import contains, gt, itemgetter
from typing import Any

import msgpack
from rbloom import Bloom

from protocol.errors import DecodeError, ExpiredError, ReplayError

__all__ = ["ReplayGuard", "ReplayStatistics", "replay_key"]

_SNAPSHOT_VERSION = 1

Item = tuple[str, bytes, float]
"""One message as the guard sees it: ``(sender, nonce, expires)``."""

Verdict = ExpiredError | ReplayError | None
"""What :meth:`ReplayGuard.check_batch` says of one item: ``None`` accepts it."""

_sender_of, _nonce_of, _expires_of = itemgetter(0), itemgetter(1), itemgetter(2)
_EMPTY: dict[bytes, float] = {}
"""Stands for a sender with no entries in C-level lookups; never written to."""


def replay_key(sender: str, nonce: bytes) -> int:
    """Return the stable Bloom key of ``(sender, nonce)``: a signed 128-bit integer.

    BLAKE2b-128 of the sender's UTF-8 bytes prefixed by their length (so ``("ab", b"c")`` and
    ``("a", b"bc")`` differ) followed by the nonce: the same in every process and on every
    machine, and within the range rbloom accepts from a hash function.
    """
    encoded = sender.encode()
    data = len(encoded).to_bytes(4, "little") + encoded + nonce
    return int.from_bytes(hashlib.blake2b(data, digest_size=16).digest(), "little", signed=True)


def _replayed(sender: str, nonce: bytes) -> ReplayError:
    return ReplayError(sender, nonce, "already recorded and not expired")


@dataclass(frozen=True, slots=True)
class ReplayStatistics:
    """A snapshot of a :class:`ReplayGuard`'s state and counters.

    Attributes:
        entries: Pairs held in the window (unexpired, or expired but not yet pruned).
        senders: Distinct senders in the window.
        nonces: Distinct nonces in the nonce index (its size follows the window's).
        max_entries: The window's bound.
        horizon: The latest ``now`` seen; entries expiring at or before it are gone.
        checked: Messages checked (one by one and in batches).
        accepted: Checks that passed.
        expired: Checks refused as expired.
        replayed: Checks refused as replays.
        refused_full: Checks refused because the window was full.
        recorded: Pairs recorded.
        pruned: Entries forgotten after they expired.
        bloom_capacity: Items the Bloom filter is sized for (0 when there is none).
        bloom_hits: Checks the Bloom filter could not rule out.
        bloom_false_positives: Bloom hits the exact window found unrecorded.
        bloom_rebuilds: Times the Bloom filter was built from the window.
    """

    entries: int
    senders: int
    nonces: int
    max_entries: int
    horizon: float
    checked: int
    accepted: int
    expired: int
    replayed: int
    refused_full: int
    recorded: int
    pruned: int
    bloom_capacity: int
    bloom_hits: int
    bloom_false_positives: int
    bloom_rebuilds: int


class ReplayGuard:
    """Exact, bounded replay protection (see the module rules).

    Args:
        max_entries: Most unexpired pairs held before new messages are refused (rule 4).
        bloom_capacity: ``None`` (the default) pre-filters with the exact nonce index; an int
            pre-filters with an rbloom filter first sized for that many additions (rule 5).
        bloom_error_rate: The Bloom filter's target false-positive rate, in ``(0, 1)``.

    Raises:
        ValueError: an argument is out of range (the bad value is shown).
    """

    __slots__ = (
        "_bloom",
        "_bloom_capacity",
        "_bloom_error_rate",
        "_bloom_room",
        "_bloom_size",
        "_counts",
        "_expiries",
        "_horizon",
        "_nonces",
        "_size",
        "_window",
        "max_entries",
    )

    def __init__(
        self,
        *,
        max_entries: int = 1_000_000,
        bloom_capacity: int | None = None,
        bloom_error_rate: float = 0.01,
    ) -> None:
        if type(max_entries) is not int or max_entries < 1:
            raise ValueError(f"max_entries must be an int >= 1, got {max_entries!r}")
        if bloom_capacity is not None and (type(bloom_capacity) is not int or bloom_capacity < 1):
            raise ValueError(f"bloom_capacity must be an int >= 1 or None, got {bloom_capacity!r}")
        if not 0.0 < bloom_error_rate < 1.0:
            raise ValueError(f"bloom_error_rate must be in (0, 1), got {bloom_error_rate!r}")
        self.max_entries = max_entries
        self._bloom_capacity = bloom_capacity
        self._bloom_error_rate = bloom_error_rate
        self._window: dict[str, dict[bytes, float]] = {}
        self._nonces: dict[bytes, int] = {}  # the nonce index: entries per nonce
        self._expiries: list[tuple[float, str, bytes]] = []
        self._size = 0
        self._horizon = -math.inf
        # checked, accepted, expired, replayed, refused_full, recorded, pruned,
        # bloom_hits, bloom_false_positives, bloom_rebuilds
        self._counts = [0] * 10
        self._bloom: Bloom | None = None
        self._bloom_size = self._bloom_room = 0
        if bloom_capacity is not None:
            self._rebuild_bloom()

    # ------------------------------------------------------------ time and memory

    def _advance(self, now: float) -> float:
        """Move the horizon to ``now`` (never back), forget what expired; return the horizon."""
        if now > self._horizon:
            self._horizon = now
            expiries = self._expiries
            if expiries and expiries[0][0] <= now:
                self._prune(now)
        return self._horizon

    def _prune(self, now: float) -> None:
        expiries, window, index = self._expiries, self._window, self._nonces
        pop = heapq.heappop
        forgotten = 0
        while expiries and expiries[0][0] <= now:
            expires, sender, nonce = pop(expiries)
            nonces = window.get(sender)
            # A pair recorded again with a later expiry leaves a stale heap entry: skip it.
            if nonces is None or nonces.get(nonce) != expires:
                continue
            del nonces[nonce]
            if not nonces:
                del window[sender]
            held = index[nonce]
            if held == 1:
                del index[nonce]
            else:
                index[nonce] = held - 1
            forgotten += 1
        self._size -= forgotten
        self._counts[6] += forgotten

    def prune(self, now: float) -> int:
        """Forget every entry that expired at or before ``now``; return how many were."""
        before = self._size
        self._advance(now)
        return before - self._size

    def _rebuild_bloom(self) -> None:
        assert self._bloom_capacity is not None
        capacity = max(self._bloom_capacity, 2 * self._size)
        bloom = Bloom(capacity, self._bloom_error_rate, int)
        bloom.update(
            replay_key(sender, nonce) for sender, nonces in self._window.items() for nonce in nonces
        )
        self._bloom = bloom
        self._bloom_size = capacity
        self._bloom_room = capacity - self._size
        self._counts[9] += 1

    # ------------------------------------------------------------ one by one

    def check(self, sender: str, nonce: bytes, expires: float, now: float) -> None:
        """Return if the message may be processed; record nothing (rules 1 and 2).

        Raises:
            ExpiredError: ``expires <= now`` (or ``expires`` is NaN).
            ReplayError: the pair is recorded and unexpired (``reason="replayed"``), or the
                window is full (``reason="window-full"``).
        """
        now = self._advance(now)
        counts = self._counts
        counts[0] += 1
        if not expires > now:
            counts[2] += 1
            raise ExpiredError(sender, expires, now)
        if self._is_recorded(sender, nonce):
            counts[3] += 1
            raise _replayed(sender, nonce)
        if self._size >= self.max_entries:
            counts[4] += 1
            raise self._window_full(sender, nonce)
        counts[1] += 1

    def _is_recorded(self, sender: str, nonce: bytes) -> bool:
        """Whether the pair is in the window (after ``_advance``, every entry is unexpired)."""
        bloom = self._bloom
        if bloom is not None:
            if replay_key(sender, nonce) not in bloom:
                return False  # rule 5: a miss is certain
            self._counts[7] += 1
        if nonce in self._window.get(sender, _EMPTY):
            return True
        if bloom is not None:
            self._counts[8] += 1
        return False

    def _window_full(self, sender: str, nonce: bytes) -> ReplayError:
        return ReplayError(
            sender,
            nonce,
            f"the replay window holds its maximum of {self.max_entries} unexpired entries; "
            "retry later",
            reason="window-full",
        )

    def record(self, sender: str, nonce: bytes, expires: float) -> None:
        """Remember the pair until ``expires``; call only once its effect is committed (rule 2).

        Recording a pair again keeps the later expiry. A pair that expires at or before the
        horizon is not stored: any copy of it is refused as expired already.
        """
        self.record_batch(((sender, nonce, expires),))

    # ------------------------------------------------------------ in batches

    def check_batch(self, items: Iterable[Item], now: float) -> list[Verdict]:
        """Check many messages at once; return one verdict per item, in order (rule 6).

        A verdict is ``None`` for an accepted item, else the exception :meth:`check` would have
        raised for it (not raised here), so one bad message never hides the others.

        The common case, nothing refused, runs in C-level passes over columns (``map``,
        ``set``, a set intersection with the nonce index); only refused items, repeated
        nonces or a filling window take the per-item path.
        """
        batch = items if isinstance(items, list) else list(items)
        now = self._advance(now)
        n = len(batch)
        distinct = set(map(_nonce_of, batch))
        fresh = all(map(gt, map(_expires_of, batch), repeat(now)))  # NaN is not > now
        bloom = self._bloom
        suspects = self._nonces.keys() & distinct if bloom is None else None
        room = self.max_entries - self._size
        counts = self._counts
        if fresh and not suspects and bloom is None and len(distinct) == n and n <= room:
            counts[0] += n
            counts[1] += n
            return [None] * n
        verdicts: list[Verdict] = [None] * n
        expired = 0
        if not fresh:
            for i, (sender, _, expires) in enumerate(batch):
                if not expires > now:
                    verdicts[i] = ExpiredError(sender, expires, now)
                    expired += 1
        replayed = 0
        for i in self._recorded(batch, suspects):
            if verdicts[i] is None:
                verdicts[i] = _replayed(batch[i][0], batch[i][1])
                replayed += 1
        full = 0
        if len(distinct) != n or n - expired - replayed > room:
            accepted: set[tuple[str, bytes]] = set()
            for i, verdict in enumerate(verdicts):
                if verdict is not None:
                    continue
                sender, nonce, _ = batch[i]
                if (sender, nonce) in accepted:
                    verdicts[i] = ReplayError(sender, nonce, "repeated within one batch")
                    replayed += 1
                elif room <= 0:
                    verdicts[i] = self._window_full(sender, nonce)
                    full += 1
                else:
                    accepted.add((sender, nonce))
                    room -= 1
        counts[0] += n
        counts[1] += n - expired - replayed - full
        counts[2] += expired
        counts[3] += replayed
        counts[4] += full
        return verdicts

    def _recorded(self, batch: list[Item], suspects: set[bytes] | None) -> list[int]:
        """Indexes of the batch's pairs that are in the window, pre-filtered (rule 5)."""
        window = self._window
        positions = range(len(batch))
        bloom = self._bloom
        if bloom is None:
            if not suspects:
                return []
            maybe = compress(positions, map(contains, repeat(suspects), map(_nonce_of, batch)))
        else:
            keys = map(replay_key, map(_sender_of, batch), map(_nonce_of, batch))
            maybe = compress(positions, map(contains, repeat(bloom), keys))
        hits = list(maybe)
        recorded = [i for i in hits if batch[i][1] in window.get(batch[i][0], _EMPTY)]
        if bloom is not None:
            self._counts[7] += len(hits)
            self._counts[8] += len(hits) - len(recorded)
        return recorded

    def record_batch(self, items: Iterable[Item]) -> None:
        """Record many pairs whose effects are committed; see :meth:`record`."""
        window, index, expiries = self._window, self._nonces, self._expiries
        horizon = self._horizon
        push = heapq.heappush
        recorded = 0
        for sender, nonce, expires in items:
            if not expires > horizon:
                continue
            nonces = window.get(sender)
            if nonces is None:
                nonces = window[sender] = {}
            old = nonces.get(nonce)
            if old is not None and old >= expires:
                continue
            nonces[nonce] = expires
            push(expiries, (expires, sender, nonce))
            recorded += 1
            if old is not None:
                continue
            index[nonce] = index.get(nonce, 0) + 1
            self._size += 1
            if self._bloom is not None:
                if self._bloom_room <= 0:
                    self._rebuild_bloom()  # includes this pair: it is in the window already
                else:
                    self._bloom.add(replay_key(sender, nonce))
                    self._bloom_room -= 1
        self._counts[5] += recorded

    # ------------------------------------------------------------ restart

    def to_bytes(self) -> bytes:
        """Return a msgpack snapshot of the unexpired window and the horizon (rule 7)."""
        horizon = self._horizon
        senders = []
        for sender, nonces in self._window.items():
            live = [(nonce, expires) for nonce, expires in nonces.items() if expires > horizon]
            if live:
                senders.append([sender, [n for n, _ in live], [float(e) for _, e in live]])
        return msgpack.packb([_SNAPSHOT_VERSION, float(horizon), senders])

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        *,
        max_entries: int = 1_000_000,
        bloom_capacity: int | None = None,
        bloom_error_rate: float = 0.01,
    ) -> ReplayGuard:
        """Rebuild a guard from :meth:`to_bytes` output, with the given configuration.

        Every entry is restored, even past ``max_entries`` (rule 4: nothing unexpired is
        forgotten); new messages are then refused until enough entries expire.

        Raises:
            DecodeError: ``data`` is not a snapshot of this version.
            ValueError: a configuration argument is out of range.
        """
        guard = cls(
            max_entries=max_entries,
            bloom_capacity=bloom_capacity,
            bloom_error_rate=bloom_error_rate,
        )
        try:
            version, horizon, senders = msgpack.unpackb(data, raw=False)
            if version != _SNAPSHOT_VERSION:
                raise ValueError(f"snapshot version {version!r}, expected {_SNAPSHOT_VERSION}")
            if type(horizon) is not float or math.isnan(horizon):
                raise ValueError(f"horizon must be a float, got {horizon!r}")
            items: list[Item] = []
            for sender, nonces, expiries in senders:
                _check_column(sender, nonces, expiries)
                items.extend(zip(repeat(sender), nonces, expiries))
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise DecodeError(data, exc) from exc
        guard._horizon = horizon
        guard.record_batch(items)
        return guard

    # ------------------------------------------------------------ introspection

    def statistics(self) -> ReplayStatistics:
        """Return the window's size and the counters since construction."""
        c = self._counts
        return ReplayStatistics(
            entries=self._size,
            senders=len(self._window),
            nonces=len(self._nonces),
            max_entries=self.max_entries,
            horizon=self._horizon,
            checked=c[0],
            accepted=c[1],
            expired=c[2],
            replayed=c[3],
            refused_full=c[4],
            recorded=c[5],
            pruned=c[6],
            bloom_capacity=self._bloom_size,
            bloom_hits=c[7],
            bloom_false_positives=c[8],
            bloom_rebuilds=c[9],
        )

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return (
            f"ReplayGuard(entries={self._size}, max_entries={self.max_entries}, "
            f"horizon={self._horizon!r}, bloom={self._bloom is not None})"
        )


def _check_column(sender: Any, nonces: Any, expiries: Any) -> None:
    if not isinstance(sender, str) or not sender:
        raise ValueError(f"sender must be a non-empty str, got {sender!r}")
    if not isinstance(nonces, list) or not isinstance(expiries, list):
        raise ValueError(f"sender {sender!r}: nonces and expiries must be lists")
    if len(nonces) != len(expiries):
        raise ValueError(f"sender {sender!r}: {len(nonces)} nonces but {len(expiries)} expiries")
    for nonce, expires in zip(nonces, expiries, strict=True):
        if not isinstance(nonce, bytes) or type(expires) is not float or math.isnan(expires):
            raise ValueError(f"sender {sender!r}: bad entry {nonce!r} -> {expires!r}")
