"""Circuit breaker: stop calling what keeps failing, and probe it now and then.

Rules:
    1. ``closed``: every call is allowed. Failures in a row are counted and a success resets the
       count; ``failure_threshold`` failures in a row open the breaker.
    2. ``open``: every call is refused until ``reset_after`` seconds after it opened; from then
       on it is ``half_open``. The change is a matter of time alone: ``state(now)`` reports
       what ``allow(now)`` would act on, and changes nothing else.
    3. ``half_open``: at most ``half_open_max`` trial calls are allowed. The first success
       reported closes the breaker (failure count 0); the first failure opens it again, and the
       wait starts afresh. (A trial's result cannot be told from the late result of a call
       allowed before the breaker opened; either decides.) Trials that report nothing for
       ``reset_after`` seconds after the first of them was allowed are presumed lost, and
       ``half_open_max`` more are allowed; so a lost trial cannot keep the breaker shut for ever.
    4. Results reported while ``open`` come from calls allowed before it opened: they are
       counted in ``statistics()`` and change nothing (a late success must not close a breaker
       that later failures opened, and a late failure must not postpone the next trial).
    5. The clock is the latest ``now`` seen; a ``now`` earlier than it counts as no time
       elapsed, so a clock that steps back keeps the breaker open longer, never shorter.

System 5 puts one in front of spawning child viable systems: repeated spawn failures open it,
and spawning is refused, with this reason, until a trial spawn succeeds.
"""

from __future__ import annotations

from enum import StrEnum

from vsm.mechanisms._validate import advance, check_count, check_positive

__all__ = ["CircuitBreaker", "CircuitState"]


class CircuitState(StrEnum):
    """The three states of a :class:`CircuitBreaker`."""

    CLOSED = "closed"
    """Calls flow; failures in a row are counted."""
    OPEN = "open"
    """Calls are refused until ``reset_after`` has passed."""
    HALF_OPEN = "half_open"
    """A few trial calls are allowed; their first result decides."""


class CircuitBreaker:
    """A breaker that opens after ``failure_threshold`` failures in a row.

    Args:
        failure_threshold: Failures in a row that open the breaker (an int >= 1).
        reset_after: Seconds the breaker stays open before trials (finite, > 0); also how
            long trials may stay silent before they are presumed lost.
        half_open_max: Trial calls allowed at a time while half-open (an int >= 1).

    Raises:
        ValueError: An argument is out of range; the message shows the bad value.
    """

    __slots__ = (
        "_allowed",
        "_clock",
        "_failures",
        "_ignored",
        "_opened",
        "_opened_at",
        "_rejected",
        "_state",
        "_trials",
        "_trials_since",
        "failure_threshold",
        "half_open_max",
        "reset_after",
    )

    def __init__(self, failure_threshold: int, reset_after: float, half_open_max: int = 1) -> None:
        self.failure_threshold = check_count("failure_threshold", failure_threshold, 1)
        self.reset_after = check_positive("reset_after", reset_after)
        self.half_open_max = check_count("half_open_max", half_open_max, 1)
        self._state = CircuitState.CLOSED
        self._clock: float | None = None
        self._failures = 0
        self._opened_at: float | None = None
        self._trials = 0
        self._trials_since = 0.0
        self._allowed = 0
        self._rejected = 0
        self._opened = 0
        self._ignored = 0

    @property
    def opened_at(self) -> float | None:
        """When the breaker last opened (on its clock); ``None`` while closed."""
        return self._opened_at

    @property
    def failures(self) -> int:
        """Failures in a row since the last success."""
        return self._failures

    def state(self, now: float) -> CircuitState:
        """The state at ``now`` (``open`` turns ``half_open`` once ``reset_after`` has passed).

        Raises:
            ValueError: ``now`` is not finite.
        """
        self._advance(now)
        return self._state

    def allow(self, now: float) -> bool:
        """Whether a call may go ahead at ``now``; in ``half_open``, an allowed call is a trial.

        Raises:
            ValueError: ``now`` is not finite.
        """
        clock = self._advance(now)
        if self._state is CircuitState.HALF_OPEN and self._trials < self.half_open_max:
            if self._trials == 0:
                self._trials_since = clock
            self._trials += 1
        elif self._state is not CircuitState.CLOSED:
            self._rejected += 1
            return False
        self._allowed += 1
        return True

    def record_success(self, now: float) -> None:
        """Report a call that succeeded: resets the count, and closes a half-open breaker.

        Raises:
            ValueError: ``now`` is not finite.
        """
        self._advance(now)
        if self._state is CircuitState.OPEN:
            self._ignored += 1
            return
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = None
        self._trials = 0

    def record_failure(self, now: float) -> None:
        """Report a call that failed: counts it, and opens the breaker at the threshold.

        Raises:
            ValueError: ``now`` is not finite.
        """
        clock = self._advance(now)
        if self._state is CircuitState.OPEN:
            self._ignored += 1
            return
        self._failures += 1
        if self._state is CircuitState.HALF_OPEN or self._failures >= self.failure_threshold:
            self._state = CircuitState.OPEN
            self._opened_at = clock
            self._trials = 0
            self._opened += 1

    def statistics(self) -> dict[str, float | str]:
        """State (as of the clock), failures in a row, calls allowed and refused, times opened.

        ``ignored`` counts results reported while open (rule 4).
        """
        return {
            "state": self._state.value,
            "failures": self._failures,
            "allowed": self._allowed,
            "rejected": self._rejected,
            "opened": self._opened,
            "ignored": self._ignored,
        }

    def _advance(self, now: float) -> float:
        clock = self._clock = advance(self._clock, now)
        if self._state is CircuitState.OPEN:
            assert self._opened_at is not None
            if clock - self._opened_at >= self.reset_after:
                self._state = CircuitState.HALF_OPEN
                self._trials = 0
        if (
            self._state is CircuitState.HALF_OPEN
            and self._trials
            and clock - self._trials_since >= self.reset_after
        ):
            self._trials = 0  # rule 3: the trials are presumed lost
        return clock

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(state={self._state.value!r}, failures={self._failures}, "
            f"opened_at={self._opened_at!r})"
        )
