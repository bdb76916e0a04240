"""Checkpoints on disk: one SQLite file per tree (the spec's ``storage``), shared by its hosts.

Rules:
    1. A row per ``(tree, path, part)``; ``part`` is the System a checkpoint part belongs to
       (``S5``: policy and children, ``S4``: registry, ``S3``: audit chain), so the hosts of a
       ``system``-placed viable system each write their own. A save replaces the row.
    2. The file is in WAL mode with a busy timeout, so the hosts of one machine write it
       concurrently. SQLite is local: a tree spread over several machines needs a shared
       store (PostgreSQL, later), not one file.
    3. Data is msgpack of the model's plain checkpoint data; nothing is pickled.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import msgpack

__all__ = ["CheckpointStore"]

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


class CheckpointStore:
    """The checkpoints of the trees kept in the SQLite file at ``path`` (module rules)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db = sqlite3.connect(path, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
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
