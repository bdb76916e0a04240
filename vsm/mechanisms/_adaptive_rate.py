"""Adaptive rate: a rate limit that follows load, additive increase and multiplicative decrease.

Rules:
    1. The rate starts at ``base_rate`` and always lies in ``[min_rate, max_rate]``.
    2. ``observe(load, now)`` compares the load (utilisation: 0 idle, 1 saturated, above 1
       overloaded) with ``target_utilisation``:

       - above target: multiplicative decrease, ``rate *= (1 - step) ** f``;
       - below target: additive increase, ``rate += step * base_rate * f``;
       - exactly on target: the rate holds.

       then clamps to ``[min_rate, max_rate]``. So sustained overload drives the rate down to
       ``min_rate``, and sustained idleness drives it up to ``max_rate`` (not back to
       ``base_rate``: spare capacity is let through, up to the ceiling). Pin
       ``max_rate = base_rate`` to make idleness return to the base.
    3. ``f`` is the fraction of an ``interval`` that has passed since the previous observation,
       at most 1: ``f = min(1, elapsed / interval)``; the first observation counts as a whole
       interval. So the rate moves by time, not by how often load is sampled: observing twice
       as often moves it no faster, and a burst of observations at one instant moves it once.
    4. The clock is the latest ``now`` seen; a ``now`` earlier than it counts as no time
       elapsed (``f = 0``: the rate holds).

AIMD converges and damps oscillation (Chiu and Jain, 1989): System 2 uses it to set a
:class:`~vsm.mechanisms.TokenBucket`'s rate from the load of the units behind it.
"""

from __future__ import annotations

import math

from vsm.mechanisms._validate import advance, check_at_least, check_positive

__all__ = ["AdaptiveRate"]


class AdaptiveRate:
    """A rate between ``min_rate`` and ``max_rate`` that falls under overload and rises when idle.

    Args:
        base_rate: The starting rate, and the unit of the additive step.
        min_rate: The floor (finite, > 0, <= ``base_rate``).
        max_rate: The ceiling (finite, >= ``base_rate``).
        target_utilisation: The load to hold at (0 < target <= 1).
        step: The decrease fraction per interval, and the increase in units of ``base_rate``
            per interval (0 < step <= 1).
        interval: Seconds over which one whole step applies (finite, > 0).

    Raises:
        ValueError: An argument is out of range; the message shows the bad value.
    """

    __slots__ = (
        "_clock",
        "_decreases",
        "_increases",
        "_rate",
        "base_rate",
        "interval",
        "max_rate",
        "min_rate",
        "step",
        "target_utilisation",
    )

    def __init__(
        self,
        base_rate: float,
        min_rate: float,
        max_rate: float,
        target_utilisation: float = 0.8,
        step: float = 0.25,
        interval: float = 1.0,
    ) -> None:
        check_positive("min_rate", min_rate)
        check_at_least("base_rate", base_rate, min_rate)
        check_at_least("max_rate", max_rate, base_rate)
        check_positive("target_utilisation", target_utilisation)
        if target_utilisation > 1:
            raise ValueError(f"target_utilisation must be <= 1, got {target_utilisation!r}")
        check_positive("step", step)
        if step > 1:
            raise ValueError(f"step must be <= 1, got {step!r}")
        self.base_rate = base_rate
        self.min_rate = min_rate
        self.max_rate = max_rate
        self.target_utilisation = target_utilisation
        self.step = step
        self.interval = check_positive("interval", interval)
        self._rate = float(base_rate)
        self._clock: float | None = None
        self._increases = 0
        self._decreases = 0

    @property
    def rate(self) -> float:
        """The current rate."""
        return self._rate

    def observe(self, load: float, now: float) -> float:
        """Move the rate by one observation of ``load`` at ``now``; return the new rate.

        Args:
            load: Utilisation in ``[0, inf)``: 0 idle, 1 saturated, above 1 overloaded.
            now: The caller's time, in seconds.

        Raises:
            ValueError: ``load`` is negative or not finite, or ``now`` is not finite.
        """
        if not math.isfinite(load) or load < 0:
            raise ValueError(f"load must be a finite number >= 0, got {load!r}")
        clock = self._clock
        new = advance(clock, now)
        self._clock = new
        fraction = 1.0 if clock is None else min(1.0, (new - clock) / self.interval)
        if fraction <= 0 or load == self.target_utilisation:
            return self._rate
        if load > self.target_utilisation:
            rate = self._rate * (1.0 - self.step) ** fraction
            self._decreases += 1
        else:
            rate = self._rate + self.step * self.base_rate * fraction
            self._increases += 1
        self._rate = min(self.max_rate, max(self.min_rate, rate))
        return self._rate

    def statistics(self) -> dict[str, float]:
        """The rate, its bounds, and how many observations pushed it up or down (clamping aside)."""
        return {
            "rate": self._rate,
            "min_rate": self.min_rate,
            "max_rate": self.max_rate,
            "increases": self._increases,
            "decreases": self._decreases,
        }

    def __repr__(self) -> str:
        return (
            f"AdaptiveRate(rate={self._rate!r}, min_rate={self.min_rate!r}, "
            f"max_rate={self.max_rate!r}, target_utilisation={self.target_utilisation!r})"
        )
