"""Token bucket: a rate limit that lets short bursts through.

Rules:
    1. The bucket holds between 0 and ``burst`` tokens and starts full. Tokens accrue at ``rate``
       per second of the bucket's clock and never beyond ``burst``.
    2. The clock is the latest ``now`` the bucket has been given (the first call sets it). A
       ``now`` earlier than the clock counts as no time elapsed: a clock that steps back stalls
       the refill until it catches up, and never mints tokens.
    3. ``try_take(now, n)`` takes ``n`` tokens if that many are there and otherwise takes none,
       so over any stretch ``[t0, t1]`` of the bucket's clock at most
       ``burst + rate * (t1 - t0)`` tokens are granted (up to floating-point rounding). A full
       bucket grants ``floor(burst)`` single tokens at once.
    4. ``set_rate(rate, now)`` first credits what accrued at the old rate up to ``now``; the new
       rate counts from then on.
    5. Every call that takes ``now`` moves the clock, queries included. On a clock that does
       not step back that is invisible: accrual is linear and capped, so crediting in one step
       or in many gives the same tokens.

System 2 puts these in front of users and capabilities: they are attenuators of variety.
"""

from __future__ import annotations

import math

from vsm.mechanisms._validate import advance, check_at_least, check_positive

__all__ = ["TokenBucket"]


class TokenBucket:
    """A rate limit of ``rate`` tokens per second with room for bursts of ``burst`` tokens.

    Args:
        rate: Tokens added per second (finite, > 0).
        burst: Capacity, and the tokens the bucket starts with (finite, >= 1, so that a single
            token can always be granted eventually).

    Raises:
        ValueError: ``rate`` or ``burst`` is out of range; the message shows the bad value.
    """

    __slots__ = ("_burst", "_clock", "_denied", "_granted", "_rate", "_taken", "_tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = check_positive("rate", rate)
        self._burst = check_at_least("burst", burst, 1.0)
        self._tokens = float(burst)
        self._clock: float | None = None
        self._granted = 0
        self._denied = 0
        self._taken = 0.0

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self._rate

    @property
    def burst(self) -> float:
        """The capacity: most tokens the bucket holds."""
        return self._burst

    @property
    def clock(self) -> float | None:
        """The latest ``now`` seen (rule 2); ``None`` before the first call."""
        return self._clock

    def try_take(self, now: float, n: float = 1.0) -> bool:
        """Take ``n`` tokens if the bucket holds that many; take nothing otherwise.

        Args:
            now: The caller's time, in seconds.
            n: How many tokens (finite, > 0). More than ``burst`` is never granted.

        Returns:
            Whether the tokens were granted.

        Raises:
            ValueError: ``now`` is not finite or ``n`` is out of range.
        """
        check_positive("n", n)
        return self._take(self._advance(now), n)

    def _take(self, now: float, n: float) -> bool:
        """``try_take`` for callers that have already checked ``n`` and advanced ``now``."""
        clock = self._clock
        if clock is None or now > clock:
            if clock is not None:
                self._tokens = min(self._burst, self._tokens + (now - clock) * self._rate)
            self._clock = now
        if self._tokens >= n:
            self._tokens -= n
            self._granted += 1
            self._taken += n
            return True
        self._denied += 1
        return False

    def available(self, now: float) -> float:
        """The tokens in the bucket at ``now`` (between 0 and ``burst``); takes none.

        Raises:
            ValueError: ``now`` is not finite.
        """
        self._advance(now)
        return self._tokens

    def retry_after(self, now: float, n: float = 1.0) -> float:
        """Seconds from ``now`` until ``n`` tokens are there; takes none.

        Waiting exactly the answer is enough: ``try_take(now + retry_after(now, n), n)`` is
        granted if nothing else took tokens meanwhile. The answer counts from the caller's
        ``now``, so after a clock step back it includes the time the clock needs to catch up.

        Args:
            now: The caller's time, in seconds.
            n: How many tokens (finite, > 0).

        Returns:
            ``0.0`` if they are there now, ``math.inf`` if ``n > burst`` (never), else the wait.

        Raises:
            ValueError: ``now`` is not finite or ``n`` is out of range.
        """
        check_positive("n", n)
        clock = self._advance(now)
        if n > self._burst:
            return math.inf
        if self._tokens >= n:
            return 0.0
        wait = (clock - now) + (n - self._tokens) / self._rate
        # Rounding can leave ``now + wait`` a hair short of n tokens. Step up, doubling the step
        # so that it ends quickly at any scale; it ends because the bucket fills to burst >= n.
        step = math.ulp(abs(now) + wait)
        while self._tokens_at(now + wait) < n:
            wait += step
            step *= 2
        return wait

    def set_rate(self, rate: float, now: float) -> None:
        """Change the rate from ``now`` on, crediting what accrued at the old rate first.

        Raises:
            ValueError: ``rate`` is not finite and > 0, or ``now`` is not finite.
        """
        check_positive("rate", rate)
        self._advance(now)
        self._rate = rate

    def statistics(self) -> dict[str, float]:
        """Rate, burst, tokens (as of the clock), and counts of granted and denied calls.

        ``tokens_granted`` is the sum of ``n`` over granted calls.
        """
        return {
            "rate": self._rate,
            "burst": self._burst,
            "tokens": self._tokens,
            "granted": self._granted,
            "denied": self._denied,
            "tokens_granted": self._taken,
        }

    def _advance(self, now: float) -> float:
        clock = self._clock
        new = advance(clock, now)
        if clock is not None and new > clock:
            self._tokens = min(self._burst, self._tokens + (new - clock) * self._rate)
        self._clock = new
        return new

    def _tokens_at(self, when: float) -> float:
        # Tokens at a later time, without moving the clock (the clock is set by now).
        assert self._clock is not None
        elapsed = max(0.0, when - self._clock)
        return min(self._burst, self._tokens + elapsed * self._rate)

    def __repr__(self) -> str:
        return (
            f"TokenBucket(rate={self._rate!r}, burst={self._burst!r}, "
            f"tokens={self._tokens!r}, clock={self._clock!r})"
        )
