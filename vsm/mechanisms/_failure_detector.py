"""Failure detector: how long since each unit's last heartbeat, as healthy, warning, zombie, dead.

Rules:
    1. A unit's health is a function of the time since its last heartbeat: below
       ``warning_after`` it is healthy, below ``zombie_after`` warning, below ``dead_after``
       zombie, and dead from then on. Without heartbeats health only gets worse.
    2. ``heartbeat(unit, now)`` starts tracking an unknown unit (healthy) and makes a known one
       healthy again, a dead one included.
    3. ``sweep(now)`` reports what changed since the previous sweep as ``(unit, old, new)``,
       where ``old`` is what the previous sweep reported (healthy for a unit new since) and
       ``new`` the health now. A unit that went through several states between two sweeps is
       reported once, from the old state to the new one; one that did not change is not
       reported. Each change is reported once.
    4. One exception: a unit that was dead, and was brought back by a heartbeat before a sweep
       saw it dead, is still reported dead, then back: ``(unit, old, dead)`` and
       ``(unit, dead, healthy)`` in that order. Death has consequences (its work is presumed
       lost, its shards move) that a quick return must not hide. Between two sweeps a unit is
       reported dead at most once.
    5. Sweeps list units in sorted order of name, and each unit's changes in the order they
       happened; the order depends on nothing but the names.
    6. The clock is the latest ``now`` seen; a ``now`` earlier than it counts as no time
       elapsed. While a clock that stepped back catches up, nobody ages (and nobody is
       declared dead by the step).
    7. Memory: one entry per unit that has sent a heartbeat, until ``forget``. The caller bounds
       the set by heartbeating only units it knows (System 2: the units it spawned or admitted).

System 2 sweeps on its tick and re-shards away from zombie and dead units.
"""

from __future__ import annotations

from enum import StrEnum
from operator import itemgetter

from vsm.mechanisms._validate import advance, check_positive

__all__ = ["FailureDetector", "Health"]


class Health(StrEnum):
    """A unit's health, from the time since its last heartbeat (worst last)."""

    HEALTHY = "healthy"
    """Heard from recently."""
    WARNING = "warning"
    """Late: no heartbeat for ``warning_after`` seconds."""
    ZOMBIE = "zombie"
    """Presumed stuck: no heartbeat for ``zombie_after`` seconds; route work elsewhere."""
    DEAD = "dead"
    """Presumed gone: no heartbeat for ``dead_after`` seconds; its work is lost."""


Transition = tuple[str, Health, Health]


class FailureDetector:
    """Heartbeat ages of named units, and the health changes between sweeps.

    Args:
        warning_after: Seconds of silence before a unit is ``warning`` (finite, > 0).
        zombie_after: Seconds before ``zombie`` (finite, > ``warning_after``).
        dead_after: Seconds before ``dead`` (finite, > ``zombie_after``).

    Raises:
        ValueError: The thresholds are not finite and ``0 < warning < zombie < dead``; the
            message shows them.
    """

    __slots__ = (
        "_clock",
        "_died_unseen",
        "_heartbeats",
        "_last",
        "_reported",
        "_sweeps",
        "dead_after",
        "warning_after",
        "zombie_after",
    )

    def __init__(self, warning_after: float, zombie_after: float, dead_after: float) -> None:
        for name, value in (
            ("warning_after", warning_after),
            ("zombie_after", zombie_after),
            ("dead_after", dead_after),
        ):
            check_positive(name, value)
        if not warning_after < zombie_after < dead_after:
            raise ValueError(
                "thresholds must satisfy warning_after < zombie_after < dead_after, got "
                f"{warning_after!r}, {zombie_after!r}, {dead_after!r}"
            )
        self.warning_after = warning_after
        self.zombie_after = zombie_after
        self.dead_after = dead_after
        self._clock: float | None = None
        self._last: dict[str, float] = {}
        self._reported: dict[str, Health] = {}
        self._died_unseen: set[str] = set()
        self._heartbeats = 0
        self._sweeps = 0

    def heartbeat(self, unit: str, now: float) -> None:
        """Record a heartbeat from ``unit`` at ``now``; start tracking it if it is new.

        Raises:
            ValueError: ``unit`` is not a non-empty str, or ``now`` is not finite.
        """
        clock = self._advance(now)
        last = self._last.get(unit)
        if last is None:
            if not isinstance(unit, str) or not unit:
                raise ValueError(f"unit must be a non-empty str, got {unit!r}")
            self._reported[unit] = Health.HEALTHY
        elif clock - last >= self.dead_after and self._reported[unit] is not Health.DEAD:
            self._died_unseen.add(unit)  # rule 4
        self._last[unit] = clock
        self._heartbeats += 1

    def health(self, unit: str, now: float) -> Health:
        """``unit``'s health at ``now``.

        Raises:
            KeyError: ``unit`` is not tracked (no heartbeat yet, or forgotten).
            ValueError: ``now`` is not finite.
        """
        last = self._last_of(unit)
        return self._classify(self._advance(now) - last)

    def sweep(self, now: float) -> list[Transition]:
        """The health changes since the previous sweep, as ``(unit, old, new)`` (rules 3-5).

        Raises:
            ValueError: ``now`` is not finite.
        """
        clock = self._advance(now)
        changes: list[Transition] = []
        reported = self._reported
        for unit, last in self._last.items():
            old = reported[unit]
            if unit in self._died_unseen:
                changes.append((unit, old, Health.DEAD))
                old = Health.DEAD
            new = self._classify(clock - last)
            if new is not old:
                changes.append((unit, old, new))
            reported[unit] = new
        self._died_unseen.clear()
        self._sweeps += 1
        changes.sort(key=itemgetter(0))  # stable: a unit's own changes keep their order
        return changes

    def forget(self, unit: str) -> None:
        """Stop tracking ``unit``; no change is reported for it.

        Raises:
            KeyError: ``unit`` is not tracked.
        """
        self._last_of(unit)
        del self._last[unit]
        del self._reported[unit]
        self._died_unseen.discard(unit)

    def units(self) -> list[str]:
        """The tracked units, sorted by name."""
        return sorted(self._last)

    def statistics(self) -> dict[str, int]:
        """Units tracked, how many of them the last sweep found in each state, and totals.

        A unit new since the last sweep counts as healthy.
        """
        counts = dict.fromkeys(Health, 0)
        for health in self._reported.values():
            counts[health] += 1
        return {
            "units": len(self._last),
            **{health.value: n for health, n in counts.items()},
            "heartbeats": self._heartbeats,
            "sweeps": self._sweeps,
        }

    def _classify(self, silence: float) -> Health:
        if silence < self.warning_after:
            return Health.HEALTHY
        if silence < self.zombie_after:
            return Health.WARNING
        if silence < self.dead_after:
            return Health.ZOMBIE
        return Health.DEAD

    def _last_of(self, unit: str) -> float:
        try:
            return self._last[unit]
        except KeyError:
            raise KeyError(f"unknown unit {unit!r}; tracked: {sorted(self._last)[:10]}") from None

    def _advance(self, now: float) -> float:
        self._clock = advance(self._clock, now)
        return self._clock

    def __repr__(self) -> str:
        return (
            f"FailureDetector(warning_after={self.warning_after!r}, "
            f"zombie_after={self.zombie_after!r}, dead_after={self.dead_after!r}, "
            f"units={len(self._last)})"
        )
