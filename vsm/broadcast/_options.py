"""What a subscriber asks for: its pattern, its buffer, its overflow policy, its retry policy.

Rules:
    1. Options are validated once, when built; every bad value raises
       :class:`~vsm.broadcast.ArgumentError` naming the field and showing the value. After
       that they are frozen and trusted.
    2. Numbers are plain: an ``int`` field refuses ``bool`` and ``float``; a seconds field
       takes an ``int`` or a finite ``float`` and stores a ``float``.
    3. Every bound is stated: a buffer of at most :data:`MAX_BUFFER` events, at most
       :data:`MAX_ATTEMPTS` attempts, subscriber ids of at most :data:`MAX_ID_LENGTH`
       characters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from vsm.address import check_path
from vsm.broadcast._errors import ArgumentError, SubscriptionError
from vsm.broadcast._topics import check_pattern

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_BUFFER",
    "MAX_ID_LENGTH",
    "Backoff",
    "Overflow",
    "Subscription",
    "SubscriptionOptions",
]

MAX_BUFFER = 1_000_000
"""Most events one subscriber may hold (waiting and in flight together)."""

MAX_ATTEMPTS = 1_000
"""Most attempts one event may have at one subscriber."""

MAX_ID_LENGTH = 200
"""Most characters in a subscriber id."""


class Overflow(StrEnum):
    """What publishing does when a subscriber's buffer is full."""

    DROP_OLDEST = "drop_oldest"
    """Evict the subscriber's oldest event (waiting or in flight) to make room: newest wins."""
    DROP_NEWEST = "drop_newest"
    """Drop the new event for this subscriber, silently (counted): oldest wins."""
    REJECT = "reject"
    """Refuse the new event for this subscriber and name it in ``Published.rejected``."""


def _count(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ArgumentError(name, value, f"an int from {low} to {high}")
    return value


def _seconds(name: str, value: object, low: float, *, inclusive: bool) -> float:
    ok = (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and (value >= low if inclusive else value > low)
    )
    if not ok:
        raise ArgumentError(name, value, f"a finite number {'>=' if inclusive else '>'} {low}")
    assert isinstance(value, int | float)
    return float(value)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff between attempts: ``min(cap, base * factor ** (failures - 1))``.

    There is no jitter: the broadcaster is pure, and each subscriber is paced by its own
    failures only, so retries of many subscribers do not pile onto one shared server.

    Attributes:
        base: Seconds before the second attempt (finite, > 0).
        factor: Growth per further failure (finite, >= 1; 1 gives a constant delay).
        cap: The longest delay in seconds (finite, >= ``base``).
    """

    base: float = 0.5
    factor: float = 2.0
    cap: float = 30.0

    def __post_init__(self) -> None:
        base = _seconds("backoff.base", self.base, 0.0, inclusive=False)
        factor = _seconds("backoff.factor", self.factor, 1.0, inclusive=True)
        cap = _seconds("backoff.cap", self.cap, base, inclusive=True)
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "factor", factor)
        object.__setattr__(self, "cap", cap)

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed attempt (``failures`` >= 1)."""
        try:
            grown = self.base * self.factor ** (failures - 1)
        except OverflowError:  # the float power overflows long after it passed any cap
            return self.cap
        return min(self.cap, grown)


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionOptions:
    """How one subscriber's events are buffered, handed out and retried.

    Attributes:
        buffer: Most events held for the subscriber, waiting and in flight together
            (1 to :data:`MAX_BUFFER`).
        overflow: What a publish does when the buffer is full.
        prefetch: Most deliveries in flight at once (1 to :data:`MAX_BUFFER`); never more than
            ``buffer``, whatever is set here.
        max_attempts: Deliveries of one event before it is dead-lettered, the first included
            (1 to :data:`MAX_ATTEMPTS`; 1 means no retry).
        backoff: The wait before each retry.
        ack_timeout: Seconds a delivery may stay unanswered before the next ``ready`` counts
            it as failed (finite, > 0).
    """

    buffer: int = 1024
    overflow: Overflow = Overflow.REJECT
    prefetch: int = 64
    max_attempts: int = 5
    backoff: Backoff = field(default_factory=Backoff)
    ack_timeout: float = 30.0

    def __post_init__(self) -> None:
        _count("buffer", self.buffer, 1, MAX_BUFFER)
        _count("prefetch", self.prefetch, 1, MAX_BUFFER)
        _count("max_attempts", self.max_attempts, 1, MAX_ATTEMPTS)
        try:
            object.__setattr__(self, "overflow", Overflow(self.overflow))
        except ValueError:
            choices = ", ".join(repr(o.value) for o in Overflow)
            raise ArgumentError("overflow", self.overflow, f"one of {choices}") from None
        if not isinstance(self.backoff, Backoff):
            raise ArgumentError("backoff", self.backoff, "a Backoff")
        timeout = _seconds("ack_timeout", self.ack_timeout, 0.0, inclusive=False)
        object.__setattr__(self, "ack_timeout", timeout)

    @property
    def in_flight_limit(self) -> int:
        """Most deliveries in flight at once: ``min(prefetch, buffer)``."""
        return min(self.prefetch, self.buffer)


@dataclass(frozen=True, slots=True)
class Subscription:
    """One subscriber: who, which topics, which part of the tree, and how.

    Attributes:
        subscriber_id: A non-empty str of at most :data:`MAX_ID_LENGTH` characters, unique
            within a broadcaster.
        pattern: The topic pattern it receives (see :mod:`vsm.broadcast._topics`).
        within: Receive only events whose path is this path or lies below it
            (``root/billing``); ``None`` for events from anywhere.
        options: Buffering and retry options.

    Raises:
        SubscriptionError: The subscriber id is malformed.
        TopicError: The pattern is malformed.
        ArgumentError: ``within`` is not a valid path, or ``options`` is not options.
    """

    subscriber_id: str
    pattern: str
    within: str | None = None
    options: SubscriptionOptions = field(default_factory=SubscriptionOptions)

    def __post_init__(self) -> None:
        sid = self.subscriber_id
        if not isinstance(sid, str) or not 1 <= len(sid) <= MAX_ID_LENGTH:
            raise SubscriptionError(sid, f"an id is a str of 1 to {MAX_ID_LENGTH} characters")
        check_pattern(self.pattern)
        if self.within is not None:
            try:
                check_path(self.within)
            except ValueError as exc:
                raise ArgumentError("within", self.within, f"a path ({exc})") from exc
        if not isinstance(self.options, SubscriptionOptions):
            raise ArgumentError("options", self.options, "a SubscriptionOptions")
