"""Hybrid logical clock (Kulkarni et al., 2014).

Rules:
    1. A stamp is ``(physical_ms, counter, replica)``; stamps are totally ordered by that tuple,
       so two replicas never produce equal stamps and ties break by replica id.
    2. ``now(wall_ms)`` and ``observe(remote, wall_ms)`` return a stamp strictly greater than
       every stamp this clock has issued or observed (monotonic per replica), even when the wall
       clock steps backwards.
    3. ``observe`` refuses a remote stamp whose physical part is more than ``max_drift_ms``
       ahead of local wall time, before changing any state.

The wall time is an argument: the model reads no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vsm.errors import ClockDriftError, MalformedDataError

__all__ = ["HLC", "Stamp"]


@dataclass(frozen=True, order=True, slots=True)
class Stamp:
    """A point in hybrid logical time.

    Attributes:
        physical_ms: Milliseconds of physical time (the largest seen so far).
        counter: Logical counter that orders events within one millisecond.
        replica: Id of the replica that issued the stamp; breaks ties.
    """

    physical_ms: int
    counter: int
    replica: str

    def to_data(self) -> list[Any]:
        """Return the stamp as a msgpack-friendly list."""
        return [self.physical_ms, self.counter, self.replica]

    @classmethod
    def from_data(cls, data: object) -> Stamp:
        """Rebuild a stamp from :meth:`to_data` output.

        Raises:
            MalformedDataError: ``data`` is not ``[int >= 0, int >= 0, str]``.
        """
        if not isinstance(data, list | tuple) or len(data) != 3:
            raise MalformedDataError("Stamp", "", "expected [physical_ms, counter, replica]", data)
        physical, counter, replica = data
        for name, part in (("physical_ms", physical), ("counter", counter)):
            if type(part) is not int or not 0 <= part < 2**64:
                raise MalformedDataError("Stamp", name, "expected an int in [0, 2**64)", part)
        if not isinstance(replica, str) or not replica:
            raise MalformedDataError("Stamp", "replica", "expected a non-empty str", replica)
        return cls(physical, counter, replica)


class HLC:
    """A hybrid logical clock owned by one replica.

    Args:
        replica: This replica's id, written into every stamp.
        max_drift_ms: How far ahead of local wall time a remote stamp may be.
    """

    __slots__ = ("_last", "max_drift_ms", "replica")

    def __init__(self, replica: str, max_drift_ms: int = 60_000) -> None:
        if not replica:
            raise ValueError("replica id must be a non-empty string")
        if max_drift_ms < 0:
            raise ValueError(f"max_drift_ms must be >= 0, got {max_drift_ms}")
        self.replica = replica
        self.max_drift_ms = max_drift_ms
        self._last = Stamp(0, 0, replica)

    @property
    def last(self) -> Stamp:
        """The latest stamp issued or observed (with this replica's id)."""
        return self._last

    def now(self, wall_ms: int) -> Stamp:
        """Issue a stamp for a local event (a write, or a send)."""
        last = self._last
        if wall_ms > last.physical_ms:
            stamp = Stamp(wall_ms, 0, self.replica)
        else:
            stamp = Stamp(last.physical_ms, last.counter + 1, self.replica)
        self._last = stamp
        return stamp

    def check(self, remote: Stamp, wall_ms: int) -> None:
        """Raise if ``remote`` is further ahead of ``wall_ms`` than allowed; change nothing.

        Raises:
            ClockDriftError: ``remote.physical_ms - wall_ms > max_drift_ms``.
        """
        if remote.physical_ms - wall_ms > self.max_drift_ms:
            raise ClockDriftError(remote.physical_ms, wall_ms, self.max_drift_ms)

    def observe(self, remote: Stamp, wall_ms: int) -> Stamp:
        """Advance past a stamp received from another replica, and issue a stamp for the receipt.

        Raises:
            ClockDriftError: ``remote`` is too far ahead; the clock is left unchanged.
        """
        self.check(remote, wall_ms)
        last = self._last
        physical = max(wall_ms, last.physical_ms, remote.physical_ms)
        if physical == last.physical_ms == remote.physical_ms:
            counter = max(last.counter, remote.counter) + 1
        elif physical == last.physical_ms:
            counter = last.counter + 1
        elif physical == remote.physical_ms:
            counter = remote.counter + 1
        else:
            counter = 0
        stamp = Stamp(physical, counter, self.replica)
        self._last = stamp
        return stamp

    def __repr__(self) -> str:
        return f"HLC(replica={self.replica!r}, last={self._last!r})"
