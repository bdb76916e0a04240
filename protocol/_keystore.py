"""The key store: which key ids a receiver trusts, for how long, and checking signatures.

Rules:
    1. A key id names exactly one key for ever. Adding a different key under a known id, or
       any key under a revoked id, is refused; re-adding the identical key is a no-op, so
       configuration can be applied again safely.
    2. The store, not the message, says which algorithm a key id uses: Ed25519 public keys come
       in through :meth:`KeyStore.add`, HMAC secrets through :meth:`KeyStore.add_hmac`.
    3. Rotation: add the new key, move signers to it, then :meth:`KeyStore.retire` the old one
       at a time that leaves messages in flight room to arrive. A key verifies while
       ``now < not_after``; from ``not_after`` on it is refused as if unknown. Retirement can
       be brought forward, never pushed back.
    4. :meth:`KeyStore.revoke` is immediate and permanent (for a key that leaked). An id may be
       revoked before it is ever added, as a block list.
    5. :meth:`KeyStore.verify` raises :class:`~protocol.errors.UnknownKeyError` for an unknown,
       revoked or retired key, and :class:`~protocol.errors.SignatureError` for a signature
       that does not match; HMAC tags are compared in constant time
       (:func:`hmac.compare_digest`), Ed25519 by ``cryptography``.
    6. Time is an argument (``now``, float seconds); the store reads no clock.

:class:`AuditVerifier` adapts a store to :class:`vsm.audit.Verifier` (``verify(key_id, message,
signature) -> bool``), so the audit chain's checkpoints are checked against the same keys.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocol._identity import (
    ED25519_PUBLIC_KEY_SIZE,
    ED25519_SIGNATURE_SIZE,
    HMAC_SIGNATURE_SIZE,
    MIN_HMAC_SECRET_SIZE,
)
from protocol.errors import ProtocolError, SignatureError, UnknownKeyError

__all__ = ["AuditVerifier", "KeyStore", "Verifier"]


@runtime_checkable
class Verifier(Protocol):
    """Something that checks a signature at a given time, raising when it does not hold.

    :class:`KeyStore` is the implementation; the envelope codec depends on this protocol only.
    """

    def verify(self, key_id: str, message: bytes, signature: bytes, now: float) -> None:
        """Return if ``signature`` is ``key_id``'s valid signature of ``message`` at ``now``.

        Raises:
            UnknownKeyError: the key is unknown, revoked, or retired at ``now``.
            SignatureError: the signature does not match.
        """
        ...


@dataclass(frozen=True, slots=True)
class _Key:
    algorithm: str
    raw: bytes
    public: Ed25519PublicKey | None
    not_after: float | None


class KeyStore:
    """Public keys (Ed25519) and shared secrets (HMAC) by key id, with rotation and revocation.

    An empty store trusts nothing. See the module rules.
    """

    __slots__ = ("_keys", "_revoked")

    def __init__(self) -> None:
        self._keys: dict[str, _Key] = {}
        self._revoked: set[str] = set()

    def add(self, key_id: str, public_key_bytes: bytes, not_after: float | None = None) -> None:
        """Trust an Ed25519 public key under ``key_id`` until ``not_after`` (for ever if None).

        Raises:
            ValueError: the key is not 32 bytes, or ``key_id`` is revoked or names another key.
        """
        if not isinstance(public_key_bytes, bytes) or len(public_key_bytes) != (
            ED25519_PUBLIC_KEY_SIZE
        ):
            raise ValueError(
                f"an Ed25519 public key is {ED25519_PUBLIC_KEY_SIZE} bytes; key {key_id!r} got "
                f"{public_key_bytes!r}"
            )
        public = Ed25519PublicKey.from_public_bytes(public_key_bytes)
        self._put(key_id, _Key("ed25519", public_key_bytes, public, not_after))

    def add_hmac(self, key_id: str, secret: bytes, not_after: float | None = None) -> None:
        """Trust an HMAC-SHA256 shared secret under ``key_id`` until ``not_after``.

        Raises:
            ValueError: the secret is shorter than 32 bytes (its length is shown, not its
                bytes), or ``key_id`` is revoked or names another key.
        """
        if not isinstance(secret, bytes) or len(secret) < MIN_HMAC_SECRET_SIZE:
            shown = f"{len(secret)} bytes" if isinstance(secret, bytes) else type(secret).__name__
            raise ValueError(
                f"HMAC secret for {key_id!r} must be bytes of length >= {MIN_HMAC_SECRET_SIZE}, "
                f"got {shown}"
            )
        self._put(key_id, _Key("hmac-sha256", secret, None, not_after))

    def _put(self, key_id: str, key: _Key) -> None:
        if not isinstance(key_id, str) or not key_id:
            raise ValueError(f"key_id must be a non-empty str, got {key_id!r}")
        if key.not_after is not None and not key.not_after == key.not_after:
            raise ValueError(f"not_after must be a number or None, got {key.not_after!r}")
        if key_id in self._revoked:
            raise ValueError(f"key {key_id!r} was revoked; key ids are never reused")
        old = self._keys.get(key_id)
        if old is not None and (old.algorithm, old.raw) != (key.algorithm, key.raw):
            raise ValueError(
                f"key {key_id!r} already names another {old.algorithm} key; key ids are never "
                "reused, pick a new one"
            )
        if old is not None and old.not_after != key.not_after:
            raise ValueError(
                f"key {key_id!r} is already trusted with not_after={old.not_after!r}; "
                f"use retire() to change it (got not_after={key.not_after!r})"
            )
        self._keys[key_id] = key

    def retire(self, key_id: str, at: float) -> None:
        """Stop trusting ``key_id`` from ``at`` on; it keeps verifying while ``now < at``.

        A later ``at`` than an earlier retirement is ignored: retirement only comes forward.

        Raises:
            UnknownKeyError: ``key_id`` is not in the store (or was revoked).
        """
        key = self._keys.get(key_id)
        if key is None:
            raise UnknownKeyError(key_id, self._why_missing(key_id))
        if key.not_after is None or at < key.not_after:
            self._keys[key_id] = _Key(key.algorithm, key.raw, key.public, at)

    def revoke(self, key_id: str) -> None:
        """Stop trusting ``key_id`` now and for ever, known or not (rule 4)."""
        self._keys.pop(key_id, None)
        self._revoked.add(key_id)

    def _why_missing(self, key_id: str) -> str:
        return "it was revoked" if key_id in self._revoked else "no such key in the key store"

    def _usable(self, key_id: str, now: float | None) -> _Key:
        key = self._keys.get(key_id)
        if key is None:
            raise UnknownKeyError(key_id, self._why_missing(key_id))
        if now is not None and key.not_after is not None and not now < key.not_after:
            raise UnknownKeyError(key_id, f"it retired at {key.not_after!r} (now {now!r})")
        return key

    def verify(self, key_id: str, message: bytes, signature: bytes, now: float) -> None:
        """Return if ``signature`` is ``key_id``'s valid signature of ``message`` at ``now``.

        Raises:
            UnknownKeyError: the key is unknown, revoked, or retired at ``now``.
            SignatureError: the signature does not match (or has the wrong length).
        """
        self._check(self._usable(key_id, now), key_id, message, signature)

    def _check(self, key: _Key, key_id: str, message: bytes, signature: bytes) -> None:
        if key.public is None:
            if len(signature) != HMAC_SIGNATURE_SIZE:
                raise SignatureError(
                    key_id, f"expected {HMAC_SIGNATURE_SIZE} bytes, got {len(signature)}"
                )
            if not hmac.compare_digest(hmac.digest(key.raw, message, "sha256"), signature):
                raise SignatureError(key_id)
            return
        if len(signature) != ED25519_SIGNATURE_SIZE:
            raise SignatureError(
                key_id, f"expected {ED25519_SIGNATURE_SIZE} bytes, got {len(signature)}"
            )
        try:
            key.public.verify(signature, message)
        except InvalidSignature as exc:
            raise SignatureError(key_id) from exc

    def audit_verifier(self, now: float | None = None) -> AuditVerifier:
        """Return this store as a :class:`vsm.audit.Verifier` judging keys at ``now``.

        See :class:`AuditVerifier` for what ``now=None`` means.
        """
        return AuditVerifier(self, now)

    def algorithm(self, key_id: str) -> str:
        """Return ``"ed25519"`` or ``"hmac-sha256"``: how ``key_id`` signs.

        Raises:
            UnknownKeyError: ``key_id`` is not in the store (or was revoked).
        """
        return self._usable(key_id, None).algorithm

    def not_after(self, key_id: str) -> float | None:
        """Return when ``key_id`` retires (None: never).

        Raises:
            UnknownKeyError: ``key_id`` is not in the store (or was revoked).
        """
        return self._usable(key_id, None).not_after

    def key_ids(self) -> Iterator[str]:
        """Iterate over the ids of the keys held (retired ones included, revoked ones not)."""
        return iter(list(self._keys))

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"KeyStore(keys={len(self._keys)}, revoked={len(self._revoked)})"


class AuditVerifier:
    """A :class:`KeyStore` seen as a :class:`vsm.audit.Verifier`: answers instead of raising.

    Args:
        store: The key store to consult.
        now: The time at which keys are judged. ``None`` ignores retirement (a retired key
            still vouches for checkpoints it signed while it was current) but still refuses
            revoked keys; pass a time to apply retirement as :meth:`KeyStore.verify` does.
    """

    __slots__ = ("now", "store")

    def __init__(self, store: KeyStore, now: float | None = None) -> None:
        self.store = store
        self.now = now

    def verify(self, key_id: str, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is ``key_id``'s valid signature of ``message``.

        An unknown, revoked or (with ``now`` set) retired key is ``False``, as the audit
        protocol asks, never an exception.
        """
        try:
            store = self.store
            store._check(store._usable(key_id, self.now), key_id, message, signature)
        except ProtocolError:
            return False
        return True

    def __repr__(self) -> str:
        return f"AuditVerifier({self.store!r}, now={self.now!r})"
