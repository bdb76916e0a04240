"""The audit chain: S3's append-only log of what happened, hash-linked and checkpointed.

Rules:
    1. Append-only. Entries are added at the end and never changed or removed; the chain hands
       out frozen entries and tuples, never its own list.
    2. An :class:`AuditChain` is always intact: :meth:`AuditChain.append` links every entry to
       the head, and :meth:`AuditChain.from_data` refuses data whose entries do not link.
       Inspect a chain that may have been tampered with through :func:`verify_chain` on its
       entries.
    3. A checkpoint signs the chain's name, length and head (see
       :mod:`vsm.audit._checkpoint`); the caller keeps checkpoints somewhere the chain's
       writer cannot rewrite them, and passes them back to :meth:`AuditChain.verify`.
    4. A failed append (bad argument, data msgpack cannot carry) changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from vsm.audit._checkpoint import Checkpoint, Signer, Verifier
from vsm.audit._entry import GENESIS, AuditEntry
from vsm.audit._verify import VerifyReport, verify_chain
from vsm.crdt._data import check_tag, require
from vsm.errors import MalformedDataError

__all__ = ["AuditChain"]


class AuditChain:
    """An append-only, hash-chained log of audit entries.

    Args:
        name: The chain's name, signed into every checkpoint (``"root/billing#S3"``).

    Raises:
        ValueError: ``name`` is not a non-empty str.
    """

    __slots__ = ("_entries", "name")
    TAG = "audit-chain"

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"AuditChain name must be a non-empty str, got {name!r}")
        self.name = name
        self._entries: list[AuditEntry] = []

    @property
    def head(self) -> bytes:
        """Digest of the latest entry, or :data:`~vsm.audit.GENESIS` for an empty chain."""
        return self._entries[-1].digest if self._entries else GENESIS

    def __len__(self) -> int:
        return len(self._entries)

    def append(self, kind: str, actor: str, data: object, at: float) -> AuditEntry:
        """Record an entry at the end of the chain and return it.

        Args:
            kind: What kind of record it is (``"intent.accepted"``).
            actor: Who records it: path and System (``"root/billing#S3"``).
            data: The record's plain data (msgpack-ready; tuples become lists).
            at: When it happened (the model reads no clock; the host passes time in).

        Raises:
            ValueError: ``kind``, ``actor`` or ``at`` is out of range; nothing was recorded.
            TypeError: ``data`` holds something msgpack cannot carry; nothing was recorded.
        """
        entry = AuditEntry.seal(len(self._entries), at, actor, kind, data, self.head)
        self._entries.append(entry)
        return entry

    def entries(self, start: int = 0, stop: int | None = None) -> tuple[AuditEntry, ...]:
        """Return the entries with ``start <= index < stop`` (``stop=None``: to the end).

        Raises:
            ValueError: ``start`` is negative, or ``stop`` is below ``start``.
        """
        if type(start) is not int or start < 0:
            raise ValueError(f"start must be an int >= 0, got {start!r}")
        if stop is not None and (type(stop) is not int or stop < start):
            raise ValueError(f"stop must be None or an int >= start ({start}), got {stop!r}")
        return tuple(self._entries[start:stop])

    def checkpoint(self, signer: Signer, at: float) -> Checkpoint:
        """Sign the chain's current name, length and head with ``signer``.

        Raises:
            ValueError: ``at`` is not finite, or ``signer`` gave no bytes or no key id.
        """
        return Checkpoint.sign(self.name, len(self._entries), self.head, at, signer)

    def verify(
        self, checkpoints: Iterable[Checkpoint] = (), verifier: Verifier | None = None
    ) -> VerifyReport:
        """Check the chain against ``checkpoints`` (see :func:`~vsm.audit.verify_chain`).

        Checkpoints of another chain are reported as problems.
        """
        return verify_chain(self._entries, checkpoints, verifier, name=self.name)

    def to_data(self) -> dict[str, Any]:
        """Return the chain as plain data: its name and its entries in order."""
        return {
            "type": self.TAG,
            "name": self.name,
            "entries": [entry.to_data() for entry in self._entries],
        }

    @classmethod
    def from_data(cls, data: object) -> AuditChain:
        """Rebuild a chain from :meth:`to_data` output, refusing entries that do not link.

        Raises:
            MalformedDataError: ``data`` does not describe a chain, or its entries fail
                :func:`~vsm.audit.verify_chain`.
        """
        fields = require(data, "AuditChain", ("type", "name", "entries"))
        check_tag(fields, "AuditChain", cls.TAG)
        name, rows = fields["name"], fields["entries"]
        if not isinstance(name, str) or not name:
            raise MalformedDataError("AuditChain", "name", "expected a non-empty str", name)
        if not isinstance(rows, list | tuple):
            raise MalformedDataError("AuditChain", "entries", "expected a list", rows)
        entries = []
        for i, row in enumerate(rows):
            try:
                entries.append(AuditEntry.from_data(row))
            except MalformedDataError as exc:
                raise MalformedDataError("AuditChain", f"entries.{i}", str(exc), row) from exc
        report = verify_chain(entries)
        if not report.ok:
            where = f"entries.{report.index}"
            raise MalformedDataError(
                "AuditChain", where, report.reason or "", rows[report.index or 0]
            )
        chain = cls(name)
        chain._entries = entries
        return chain

    def __repr__(self) -> str:
        return f"AuditChain(name={self.name!r}, length={len(self)}, head={self.head.hex()[:16]}...)"
