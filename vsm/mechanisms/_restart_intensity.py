"""Restart intensity: restart a failed child at most ``max_restarts`` times in ``within`` seconds.

Rules:
    1. ``record(now)`` asks to restart a child at ``now``. The restarts that count are those
       recorded in the window ``(now - within, now]``, that is with ``now - t < within``.
    2. If fewer than ``max_restarts`` count, the answer is ``RESTART`` and the restart is
       recorded at ``now`` (at the clock, if ``now`` stepped back: rule 5). Otherwise the answer
       is ``ESCALATE``: the supervisor gives up and tells its own parent, and nothing is
       recorded (an escalation is not a restart).
    3. So no window of length ``within`` ever holds more than ``max_restarts`` restarts, and
       ``ESCALATE`` comes exactly when one more would make ``max_restarts + 1`` in the window.
       ``max_restarts = 0`` escalates every failure.
    4. Memory is bounded: at most ``max_restarts`` restart times are kept, the older ones leave
       the window first.
    5. The clock is the latest ``now`` seen; a ``now`` earlier than it counts as no time
       elapsed, so a clock that steps back keeps restarts in the window longer, never shorter.

These are the semantics of an OTP supervisor's ``intensity`` and ``period``. System 3 holds one
per supervised child; the ``actors`` shell carries out the decision.
"""

from __future__ import annotations

from collections import deque
from enum import StrEnum

from vsm.mechanisms._validate import advance, check_count, check_positive

__all__ = ["Decision", "RestartIntensity"]


class Decision(StrEnum):
    """What a supervisor does about a failed child."""

    RESTART = "restart"
    """Restart the child; the restart is counted."""
    ESCALATE = "escalate"
    """Too many restarts in the window: give up and tell the parent."""


class RestartIntensity:
    """A sliding window that allows at most ``max_restarts`` restarts per ``within`` seconds.

    Args:
        max_restarts: Restarts allowed in any window (an int >= 0; OTP's ``intensity``).
        within: The window's length in seconds (finite, > 0; OTP's ``period``).

    Raises:
        ValueError: An argument is out of range; the message shows the bad value.
    """

    __slots__ = ("_clock", "_escalated", "_history", "_restarted", "max_restarts", "within")

    def __init__(self, max_restarts: int, within: float) -> None:
        self.max_restarts = check_count("max_restarts", max_restarts, 0)
        self.within = check_positive("within", within)
        self._history: deque[float] = deque(maxlen=max_restarts)
        self._clock: float | None = None
        self._restarted = 0
        self._escalated = 0

    def record(self, now: float) -> Decision:
        """Decide about a failure at ``now``: ``RESTART`` (and count it) or ``ESCALATE``.

        Raises:
            ValueError: ``now`` is not finite.
        """
        clock = self._advance(now)
        if len(self._history) < self.max_restarts:
            self._history.append(clock)
            self._restarted += 1
            return Decision.RESTART
        self._escalated += 1
        return Decision.ESCALATE

    def remaining(self, now: float) -> int:
        """How many restarts ``record`` would still allow at ``now``; records nothing.

        Raises:
            ValueError: ``now`` is not finite.
        """
        self._advance(now)
        return self.max_restarts - len(self._history)

    def history(self) -> tuple[float, ...]:
        """The restart times in the window as of the clock, oldest first (at most max_restarts)."""
        return tuple(self._history)

    def reset(self) -> None:
        """Forget every restart (a supervisor restarted by its parent starts afresh)."""
        self._history.clear()

    def statistics(self) -> dict[str, float]:
        """Restarts in the window, and the totals of restarts and escalations decided."""
        return {
            "in_window": len(self._history),
            "max_restarts": self.max_restarts,
            "restarts": self._restarted,
            "escalations": self._escalated,
        }

    def _advance(self, now: float) -> float:
        clock = self._clock = advance(self._clock, now)
        history = self._history
        while history and clock - history[0] >= self.within:
            history.popleft()
        return clock

    def __repr__(self) -> str:
        return (
            f"RestartIntensity(max_restarts={self.max_restarts}, within={self.within!r}, "
            f"history={list(self._history)!r})"
        )
