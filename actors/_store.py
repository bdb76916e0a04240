"""Checkpoints on disk: one SQLite file per tree (the spec's ``storage``), shared by its hosts.

The same file keeps the federation bridge's replay window (:class:`ReplayLog`).

Rules:
    1. A row per ``(tree, path, part)``; ``part`` is the System a checkpoint part belongs to
       (``S5``: policy and children, ``S4``: registry, ``S3``: audit chain), so the hosts of a
       ``system``-placed viable system each write their own. A save replaces the row.
    2. The file is in WAL mode with a busy timeout, so the hosts of one machine write it
       concurrently. SQLite is local: a tree spread over several machines needs a shared
       store (PostgreSQL, later), not one file.
    3. Data is msgpack of the model's plain checkpoint data; nothing is pickled.
    4. The replay log holds a row per ``(tree, sender, nonce)`` the bridge recorded, with the
       envelope's expiry; rows are kept until they expire, whether or not the tree's
       checkpoints are forgotten (a replay of an old envelope to a fresh run is still one).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from typing import Any

import msgpack

__all__ = ["CheckpointStore", "ReplayLog"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    tree TEXT NOT NULL,
    path TEXT NOT NULL,
    part TEXT NOT NULL,
    incarnation INTEGER NOT NULL,
    saved_at REAL NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (tree, path, part)
)
"""


_REPLAY_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS replays (
    tree TEXT NOT NULL,
    sender TEXT NOT NULL,
    nonce BLOB NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (tree, sender, nonce)
)
""",
    "CREATE INDEX IF NOT EXISTS replays_expiry ON replays (tree, expires)",
)


def _connect(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30.0)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


class ReplayLog:
    """What one tree's bridge recorded, kept in the SQLite file at ``path`` (rule 4).

    Each item is ``(sender, nonce, expires)``; a restarted bridge loads the live ones, so it
    refuses what it had already taken.
    """

    def __init__(self, path: str, tree: str) -> None:
        self.path = path
        self.tree = tree
        self._db = _connect(path)
        for statement in _REPLAY_SCHEMA:
            self._db.execute(statement)

    def add(self, items: Iterable[tuple[str, bytes, float]]) -> None:
        """Keep ``items`` (``(sender, nonce, expires)``), durably, before they are acked."""
        rows = [(self.tree, sender, nonce, expires) for sender, nonce, expires in items]
        with self._db:
            self._db.executemany(
                "INSERT INTO replays VALUES (?, ?, ?, ?) ON CONFLICT (tree, sender, nonce)"
                " DO UPDATE SET expires = max(expires, excluded.expires)",
                rows,
            )

    def live(self, now: float) -> list[tuple[str, bytes, float]]:
        """The kept items that have not expired at ``now``."""
        rows = self._db.execute(
            "SELECT sender, nonce, expires FROM replays WHERE tree = ? AND expires > ?",
            (self.tree, now),
        ).fetchall()
        return [(sender, bytes(nonce), float(expires)) for sender, nonce, expires in rows]

    def prune(self, now: float) -> int:
        """Delete the items expired at ``now``; return how many."""
        with self._db:
            cursor = self._db.execute(
                "DELETE FROM replays WHERE tree = ? AND expires <= ?", (self.tree, now)
            )
        return cursor.rowcount

    def close(self) -> None:
        """Close the connection."""
        self._db.close()


class CheckpointStore:
    """The checkpoints of the trees kept in the SQLite file at ``path`` (module rules)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db = _connect(path)
        self._db.execute(_SCHEMA)

    def save(self, tree: str, path: str, incarnation: int, checkpoint: dict[str, Any]) -> None:
        """Replace the parts of ``path`` that ``checkpoint`` holds (a ViableSystem checkpoint)."""
        rows = [
            (tree, path, part, incarnation, time.time(), msgpack.packb(data, use_bin_type=True))
            for part, data in checkpoint["parts"].items()
        ]
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?, ?)", rows
            )

    def load(self, tree: str, path: str) -> dict[str, Any] | None:
        """The latest checkpoint of ``path`` (all its parts), or ``None`` if there is none."""
        rows = self._db.execute(
            "SELECT part, data FROM checkpoints WHERE tree = ? AND path = ?", (tree, path)
        ).fetchall()
        if not rows:
            return None
        parts = {part: msgpack.unpackb(data, raw=False) for part, data in rows}
        return {"type": "viable-system", "path": path, "parts": parts}

    def paths(self, tree: str) -> list[str]:
        """Paths of ``tree`` that have a checkpoint."""
        rows = self._db.execute(
            "SELECT DISTINCT path FROM checkpoints WHERE tree = ? ORDER BY path", (tree,)
        ).fetchall()
        return [path for (path,) in rows]

    def forget(self, tree: str, path: str | None = None) -> None:
        """Delete the checkpoints of ``tree`` (or of ``path`` and below in it)."""
        with self._db:
            if path is None:
                self._db.execute("DELETE FROM checkpoints WHERE tree = ?", (tree,))
            else:
                self._db.execute(
                    "DELETE FROM checkpoints WHERE tree = ? AND (path = ? OR path LIKE ?)",
                    (tree, path, path + "/%"),
                )

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
