"""Delta outbox: which deltas each neighbour still needs, never echoing one to its origin.

Rules:
    1. Every delta recorded is offered to every neighbour known at the time, except the one it
       came from.
    2. ``take(peer)`` joins everything pending for ``peer`` into one delta and forgets it.
    3. The backlog is bounded. When it overflows, the oldest deltas are dropped and the
       neighbours that had not taken them are marked *behind*: they must be brought up to date
       by digest anti-entropy (``CapabilityRegistry.differing`` / ``bucket_delta``) instead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Generic, Protocol, Self, TypeVar

__all__ = ["DeltaOutbox"]


class _Joinable(Protocol):
    def merge(self, other: Self, /) -> Self: ...


D = TypeVar("D", bound=_Joinable)


class DeltaOutbox(Generic[D]):
    """Per-neighbour queues of deltas, kept as one shared log with a cursor per neighbour.

    Args:
        peers: The neighbours to start with.
        max_backlog: How many deltas the log holds before it drops the oldest (rule 3).
    """

    __slots__ = ("_behind", "_cursor", "_first", "_log", "max_backlog")

    def __init__(self, peers: Iterable[str] = (), max_backlog: int = 1024) -> None:
        if max_backlog < 1:
            raise ValueError(f"max_backlog must be >= 1, got {max_backlog}")
        self.max_backlog = max_backlog
        self._log: deque[tuple[str | None, D]] = deque()
        self._first = 0  # sequence number of self._log[0]
        self._cursor: dict[str, int] = {}
        self._behind: set[str] = set()
        for peer in peers:
            self.add_peer(peer)

    @property
    def peers(self) -> frozenset[str]:
        """The neighbours deltas are kept for."""
        return frozenset(self._cursor)

    def add_peer(self, peer: str) -> None:
        """Start keeping deltas for ``peer`` (from the next one recorded)."""
        self._cursor.setdefault(peer, self._first + len(self._log))

    def remove_peer(self, peer: str) -> None:
        """Stop keeping deltas for ``peer``."""
        self._cursor.pop(peer, None)
        self._behind.discard(peer)
        self._trim()

    def record(self, delta: D, origin: str | None = None) -> None:
        """Queue ``delta`` for every neighbour but ``origin`` (``None``: a local write)."""
        self._log.append((origin, delta))
        if len(self._log) > self.max_backlog:
            self._log.popleft()
            self._first += 1
            for peer, cursor in self._cursor.items():
                if cursor < self._first:
                    self._cursor[peer] = self._first
                    self._behind.add(peer)
        self._trim()

    def take(self, peer: str) -> D | None:
        """Everything pending for ``peer``, joined into one delta; ``None`` when nothing is."""
        if peer not in self._cursor:
            raise KeyError(f"unknown peer {peer!r}; known: {sorted(self._cursor)}")
        start = self._cursor[peer] - self._first
        joined: D | None = None
        for i in range(start, len(self._log)):
            origin, delta = self._log[i]
            if origin != peer:
                joined = delta if joined is None else joined.merge(delta)
        self._cursor[peer] = self._first + len(self._log)
        self._trim()
        return joined

    def behind(self) -> frozenset[str]:
        """Neighbours that missed dropped deltas and need digest anti-entropy."""
        return frozenset(self._behind)

    def resynced(self, peer: str) -> None:
        """Mark ``peer`` as brought up to date by anti-entropy."""
        self._behind.discard(peer)

    def pending(self, peer: str) -> int:
        """How many recorded deltas ``peer`` has not taken (its own included)."""
        return self._first + len(self._log) - self._cursor[peer]

    def statistics(self) -> dict[str, int]:
        """Backlog size, neighbours, and neighbours behind."""
        return {"backlog": len(self._log), "peers": len(self._cursor), "behind": len(self._behind)}

    def _trim(self) -> None:
        oldest = min(self._cursor.values(), default=self._first + len(self._log))
        while self._first < oldest and self._log:
            self._log.popleft()
            self._first += 1
