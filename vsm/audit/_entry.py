"""One entry of the audit chain, and the hash that links it to the one before.

Rules:
    1. An entry's digest is BLAKE2b-256 over :data:`ENTRY_DOMAIN` followed by the msgpack bytes
       of ``[index, at, actor, kind, data, prev]``, with ``at`` as a float and ``data`` in
       canonical form. The domain prefix keeps an entry's hash from ever equalling the hash of
       anything else this project signs or hashes (a checkpoint, an envelope).
    2. ``prev`` is the digest of the entry before; the first entry's ``prev`` is
       :data:`GENESIS` (32 zero bytes). Editing, dropping or moving any entry therefore changes
       every later link.
    3. ``data`` is normalised on construction (:func:`vsm.crdt._data.canonical`: tuples become
       lists, dict keys are sorted), so equal content always gives equal bytes.
    4. The stored ``digest`` is a claim, not a fact. The digest of the content is computed
       afresh whenever an entry is built (:meth:`AuditEntry.compute_digest`), and
       :func:`~vsm.audit.verify_chain` compares the claim against it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from typing import Any

from vsm.crdt._data import canonical, pack
from vsm.errors import MalformedDataError

__all__ = ["DIGEST_SIZE", "ENTRY_DOMAIN", "GENESIS", "AuditEntry", "entry_digest"]

DIGEST_SIZE = 32
"""Bytes in every digest of the chain (BLAKE2b-256)."""

ENTRY_DOMAIN = b"vsm-ray/audit-entry/v1\x00"
"""Prefix hashed before an entry's content (domain separation)."""

GENESIS = bytes(DIGEST_SIZE)
"""The ``prev`` of the first entry, and the head of an empty chain."""


def _check_text(owner: str, name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{owner}.{name} must be a non-empty str, got {value!r}")


def _check_time(owner: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{owner}.at must be a finite number, got {value!r}")


def _check_digest(owner: str, name: str, value: object) -> None:
    if not isinstance(value, bytes) or len(value) != DIGEST_SIZE:
        raise ValueError(f"{owner}.{name} must be {DIGEST_SIZE} bytes, got {value!r}")


def entry_digest(index: int, at: float, actor: str, kind: str, data: object, prev: bytes) -> bytes:
    """Return the digest an entry with this content must carry (rule 1).

    Raises:
        TypeError: the content holds something msgpack cannot carry (an int out of range, a
            str that is not valid Unicode, an unknown type).
    """
    try:
        body = pack([index, float(at), actor, kind, canonical(data), prev])
    except (OverflowError, ValueError) as exc:
        raise TypeError(f"cannot encode audit entry content: {exc}") from exc
    return hashlib.blake2b(ENTRY_DOMAIN + body, digest_size=DIGEST_SIZE).digest()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One record of the audit chain: who recorded what, when, linked to the entry before.

    Entries are normally made by :meth:`AuditChain.append`, which fills in ``index``,
    ``prev`` and ``digest``; building one directly is for decoding and for tests.

    Attributes:
        index: Position in the chain, from 0.
        at: When it was recorded (time comes in as an argument; stored as a float).
        actor: Who recorded it: the viable system's path and System (``"root/billing#S3"``).
        kind: What kind of record it is (``"intent.accepted"``, ``"audit.sporadic"``...).
        data: The record's plain data (msgpack-ready), in canonical form.
        prev: Digest of the entry before, or :data:`GENESIS` for the first.
        digest: The digest this entry claims (see :meth:`compute_digest`).
    """

    index: int
    at: float
    actor: str
    kind: str
    data: Any
    prev: bytes
    digest: bytes
    _content_digest: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.index) is not int or self.index < 0:
            raise ValueError(f"AuditEntry.index must be an int >= 0, got {self.index!r}")
        _check_time("AuditEntry", self.at)
        _check_text("AuditEntry", "actor", self.actor)
        _check_text("AuditEntry", "kind", self.kind)
        _check_digest("AuditEntry", "prev", self.prev)
        _check_digest("AuditEntry", "digest", self.digest)
        # Frozen, so normalise through object.__setattr__ (rule 3).
        object.__setattr__(self, "at", float(self.at))
        object.__setattr__(self, "data", canonical(self.data))
        content = entry_digest(self.index, self.at, self.actor, self.kind, self.data, self.prev)
        object.__setattr__(self, "_content_digest", content)

    # ``data`` may be a dict or list, which do not hash; the digest stands in for the content.
    def __hash__(self) -> int:
        return hash((self.index, self.digest))

    @classmethod
    def seal(
        cls, index: int, at: float, actor: str, kind: str, data: object, prev: bytes
    ) -> AuditEntry:
        """Build an entry whose ``digest`` is the true digest of its content.

        Raises:
            ValueError: a field is out of range (see the attributes).
            TypeError: the content holds something msgpack cannot carry.
        """
        draft = cls(index, at, actor, kind, data, prev, GENESIS)  # validates every field
        return replace(draft, digest=draft.compute_digest())

    def compute_digest(self) -> bytes:
        """The digest of the content, computed on construction; the stored ``digest`` is ignored."""
        return self._content_digest

    def to_data(self) -> list[Any]:
        """Return the entry as a plain list: ``[index, at, actor, kind, data, prev, digest]``."""
        return [self.index, self.at, self.actor, self.kind, self.data, self.prev, self.digest]

    @classmethod
    def from_data(cls, data: object) -> AuditEntry:
        """Rebuild an entry from :meth:`to_data` output.

        Only the shape is checked; whether the digest is honest is for
        :func:`~vsm.audit.verify_chain` to say.

        Raises:
            MalformedDataError: ``data`` does not describe an entry.
        """
        if not isinstance(data, list | tuple) or len(data) != 7:
            raise MalformedDataError(
                "AuditEntry", "", "expected [index, at, actor, kind, data, prev, digest]", data
            )
        try:
            return cls(*data)
        except (TypeError, ValueError) as exc:
            raise MalformedDataError("AuditEntry", "", str(exc), data) from exc
