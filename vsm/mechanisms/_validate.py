"""Argument checks shared by the mechanisms, and the clock rule they all follow.

Rules:
    1. Every check returns the value it was given, or raises ``ValueError`` naming the argument
       and showing the bad value with ``repr`` (so ``nan`` and ``'3'`` read as what they are).
    2. ``advance(clock, now)`` is the one clock rule: the clock is the latest ``now`` seen, and
       a ``now`` earlier than it counts as no time elapsed.
"""

from __future__ import annotations

import math

__all__ = ["advance", "check_at_least", "check_count", "check_now", "check_positive"]


def check_now(now: float) -> float:
    """Return ``now`` if it is a finite number of seconds.

    Raises:
        ValueError: ``now`` is ``nan`` or infinite.
    """
    if not math.isfinite(now):
        raise ValueError(f"now must be a finite number of seconds, got {now!r}")
    return now


def check_positive(name: str, value: float) -> float:
    """Return ``value`` if it is finite and > 0.

    Raises:
        ValueError: ``value`` is not finite, or is <= 0.
    """
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def check_at_least(name: str, value: float, minimum: float) -> float:
    """Return ``value`` if it is finite and >= ``minimum``.

    Raises:
        ValueError: ``value`` is not finite, or is < ``minimum``.
    """
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum}, got {value!r}")
    return value


def check_count(name: str, value: int, minimum: int) -> int:
    """Return ``value`` if it is an ``int`` (not a ``bool``) >= ``minimum``.

    Raises:
        ValueError: ``value`` is not an int, or is < ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def advance(clock: float | None, now: float) -> float:
    """The new clock after seeing ``now``: ``max(clock, now)``; ``now`` alone at first.

    Raises:
        ValueError: ``now`` is not finite.
    """
    check_now(now)
    if clock is None or now > clock:
        return now
    return clock
