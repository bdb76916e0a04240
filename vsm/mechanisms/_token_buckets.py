"""Token buckets by key (per user, per capability), in bounded memory.

Rules:
    1. Each key (any hashable but ``None``, which ``set_rate`` reads as "every key") has its
       own :class:`~vsm.mechanisms.TokenBucket`, made full on the key's first use with the
       registry's default rate and ``burst``. All buckets share the registry's clock: the
       latest ``now`` seen, where an earlier ``now`` counts as no time elapsed.
    2. At most ``max_keys`` buckets are kept. Making a bucket for a new key when the registry is
       at capacity first evicts one:

       a. the least recently used bucket that is *full* at that moment, looking at the
          ``eviction_scan`` least recently used buckets; else
       b. the least recently used bucket, full or not.

    3. Evicting a full bucket loses nothing: the bucket made if the key comes back starts full,
       which is exactly the state the evicted one would have had (at the default rate: rule
       5). So while only full buckets are evicted, every key keeps the bound of a single
       bucket: at most ``burst + rate * (t1 - t0)`` tokens in any ``[t0, t1]``.
    4. Evicting a bucket that is not full (rule 2b) forgives its debt: if the key comes back it
       starts full, so it may get up to ``burst`` tokens more than a single bucket allows, once
       per such eviction. That is the price of bounded memory under a flood of distinct keys;
       ``statistics()`` counts these evictions and the tokens forgiven, so it shows.
    5. Only ``try_take`` and ``set_rate`` of a key make it recently used (and create it); queries
       neither reorder nor create. A per-key rate lives in the key's bucket: an evicted key
       comes back at the default rate.

Cost: O(1) per call, plus O(``eviction_scan``) when a new key arrives at capacity. The scan
is bounded so that a flood of new keys stays cheap; the price is that a full bucket deeper in
the order (used more recently than those scanned) is not found, and an unfull one is evicted
instead (rule 4). ``set_rate(None, rate, now)`` is O(keys) when it changes a rate, O(1) when it
changes none.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable
from itertools import islice

from vsm.mechanisms._token_bucket import TokenBucket
from vsm.mechanisms._validate import advance, check_at_least, check_count, check_positive

__all__ = ["TokenBuckets"]


class TokenBuckets:
    """A bounded map from key to :class:`~vsm.mechanisms.TokenBucket`.

    Args:
        rate: The default rate of new buckets (finite, > 0).
        burst: Every bucket's capacity (finite, >= 1).
        max_keys: Most buckets kept (>= 1); see rules 2-4 for what eviction costs.
        eviction_scan: How many least recently used buckets eviction looks through for a full
            one (>= 1).

    Raises:
        ValueError: An argument is out of range; the message shows the bad value.
    """

    __slots__ = (
        "_buckets",
        "_clock",
        "_evicted_full",
        "_evicted_unfull",
        "_forgiven",
        "_rate",
        "_uniform",
        "burst",
        "eviction_scan",
        "max_keys",
    )

    def __init__(
        self, rate: float, burst: float, max_keys: int = 10_000, eviction_scan: int = 32
    ) -> None:
        self._rate = check_positive("rate", rate)
        self.burst = check_at_least("burst", burst, 1.0)
        self.max_keys = check_count("max_keys", max_keys, 1)
        self.eviction_scan = check_count("eviction_scan", eviction_scan, 1)
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()
        self._clock: float | None = None
        self._evicted_full = 0
        self._evicted_unfull = 0
        self._forgiven = 0.0
        self._uniform = True  # every bucket is at the default rate (no per-key rate set)

    @property
    def rate(self) -> float:
        """The default rate of new buckets."""
        return self._rate

    def try_take(self, key: Hashable, now: float, n: float = 1.0) -> bool:
        """Take ``n`` tokens from ``key``'s bucket if it holds that many (see TokenBucket).

        Raises:
            ValueError: ``now`` is not finite or ``n`` is out of range.
        """
        if n != 1.0:
            check_positive("n", n)
        now = self._advance(now)
        return self._touch(key, now)._take(now, n)

    def available(self, key: Hashable, now: float) -> float:
        """Tokens in ``key``'s bucket at ``now``; ``burst`` for a key with no bucket.

        Raises:
            ValueError: ``now`` is not finite.
        """
        now = self._advance(now)
        bucket = self._buckets.get(key)
        return self.burst if bucket is None else bucket.available(now)

    def retry_after(self, key: Hashable, now: float, n: float = 1.0) -> float:
        """Seconds from ``now`` until ``key``'s bucket holds ``n`` tokens (see TokenBucket).

        Raises:
            ValueError: ``now`` is not finite or ``n`` is out of range.
        """
        check_positive("n", n)
        clock = self._advance(now)
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.available(clock)  # bring the bucket to the shared clock, then count from now
            return bucket.retry_after(now, n)
        return 0.0 if n <= self.burst else math.inf

    def set_rate(self, key: Hashable, rate: float, now: float) -> None:
        """Change a rate from ``now`` on, crediting what accrued at the old rate first.

        Args:
            key: The key whose bucket changes (made if missing), or ``None`` for the default
                rate and every bucket's rate, per-key rates included.
            rate: The new rate (finite, > 0).
            now: The caller's time, in seconds.

        Raises:
            ValueError: ``rate`` is out of range or ``now`` is not finite.
        """
        check_positive("rate", rate)
        now = self._advance(now)
        if key is None:
            if rate == self._rate and self._uniform:
                return  # nothing changes: skip the O(keys) pass
            self._rate = rate
            self._uniform = True
            for bucket in self._buckets.values():
                bucket.set_rate(rate, now)
        else:
            self._touch(key, now).set_rate(rate, now)
            self._uniform = self._uniform and rate == self._rate

    def forget(self, key: Hashable) -> None:
        """Drop ``key``'s bucket, if there is one (it may have been evicted already)."""
        self._buckets.pop(key, None)

    def keys(self) -> list[Hashable]:
        """The keys that have a bucket, least recently used first."""
        return list(self._buckets)

    def statistics(self) -> dict[str, float]:
        """Keys held, and evictions: of full buckets, of unfull ones, and tokens forgiven."""
        return {
            "keys": len(self._buckets),
            "max_keys": self.max_keys,
            "rate": self._rate,
            "evicted_full": self._evicted_full,
            "evicted_unfull": self._evicted_unfull,
            "tokens_forgiven": self._forgiven,
        }

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, key: object) -> bool:
        return key in self._buckets

    def _advance(self, now: float) -> float:
        self._clock = advance(self._clock, now)
        return self._clock

    def _touch(self, key: Hashable, now: float) -> TokenBucket:
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is not None:
            buckets.move_to_end(key)
            return bucket
        if len(buckets) >= self.max_keys:
            self._evict(now)
        bucket = buckets[key] = TokenBucket(self._rate, self.burst)
        return bucket

    def _evict(self, now: float) -> None:
        buckets = self._buckets
        for key, bucket in islice(buckets.items(), self.eviction_scan):
            if bucket.available(now) >= self.burst:
                del buckets[key]
                self._evicted_full += 1
                return
        key, bucket = buckets.popitem(last=False)
        self._evicted_unfull += 1
        self._forgiven += self.burst - bucket.available(now)

    def __repr__(self) -> str:
        return (
            f"TokenBuckets(rate={self._rate!r}, burst={self.burst!r}, "
            f"keys={len(self._buckets)}, max_keys={self.max_keys})"
        )
