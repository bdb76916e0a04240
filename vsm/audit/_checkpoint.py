"""Signed checkpoints: a key holder's word that a chain had this length and this head.

Rules:
    1. A checkpoint signs :data:`CHECKPOINT_DOMAIN` followed by the msgpack bytes of
       ``[chain, length, head, at]`` (``at`` as a float). The prefix differs from the entry
       prefix, so a signature over a checkpoint can never be passed off as anything else.
    2. Keys never enter the model: signing and verifying go through the :class:`Signer` and
       :class:`Verifier` protocols, implemented outside (Ed25519 in ``protocol``, HMAC in tests).
    3. A checkpoint with ``length == 0`` vouches for the empty chain; its head is
       :data:`~vsm.audit.GENESIS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from vsm.audit._entry import GENESIS, _check_digest, _check_text, _check_time
from vsm.crdt._data import pack
from vsm.errors import MalformedDataError

__all__ = ["CHECKPOINT_DOMAIN", "Checkpoint", "Signer", "Verifier", "checkpoint_message"]

CHECKPOINT_DOMAIN = b"vsm-ray/audit-checkpoint/v1\x00"
"""Prefix signed before a checkpoint's content (domain separation)."""


@runtime_checkable
class Signer(Protocol):
    """Something that signs with one key; the key itself stays outside the model."""

    @property
    def key_id(self) -> str:
        """The id under which verifiers find the matching public (or shared) key."""
        ...

    def sign(self, message: bytes) -> bytes:
        """Return the signature of ``message``."""
        ...


@runtime_checkable
class Verifier(Protocol):
    """Something that checks signatures made by the keys it knows."""

    def verify(self, key_id: str, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is a valid signature of ``message`` by key ``key_id``.

        An unknown key id is not an error: the answer is ``False``.
        """
        ...


def checkpoint_message(chain: str, length: int, head: bytes, at: float) -> bytes:
    """Return the bytes a checkpoint's signature covers (rule 1)."""
    return CHECKPOINT_DOMAIN + pack([chain, length, head, float(at)])


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement: chain ``chain`` had ``length`` entries, the last with digest ``head``.

    Attributes:
        chain: Name of the audit chain.
        length: Number of entries the checkpoint covers.
        head: Digest of entry ``length - 1`` (:data:`~vsm.audit.GENESIS` when ``length`` is 0).
        at: When the checkpoint was made (stored as a float).
        key_id: Id of the key that signed it.
        signature: The signature over :meth:`message`.
    """

    chain: str
    length: int
    head: bytes
    at: float
    key_id: str
    signature: bytes

    def __post_init__(self) -> None:
        _check_text("Checkpoint", "chain", self.chain)
        if type(self.length) is not int or self.length < 0:
            raise ValueError(f"Checkpoint.length must be an int >= 0, got {self.length!r}")
        _check_digest("Checkpoint", "head", self.head)
        if self.length == 0 and self.head != GENESIS:
            raise ValueError(
                f"Checkpoint.head of an empty chain must be GENESIS, got {self.head!r}"
            )
        _check_time("Checkpoint", self.at)
        _check_text("Checkpoint", "key_id", self.key_id)
        if not isinstance(self.signature, bytes):
            raise ValueError(f"Checkpoint.signature must be bytes, got {self.signature!r}")
        object.__setattr__(self, "at", float(self.at))

    @classmethod
    def sign(cls, chain: str, length: int, head: bytes, at: float, signer: Signer) -> Checkpoint:
        """Make a checkpoint signed by ``signer``.

        Raises:
            ValueError: a field is out of range, or ``signer`` returned no bytes.
        """
        signature = signer.sign(checkpoint_message(chain, length, head, at))
        return cls(chain, length, head, at, signer.key_id, signature)

    def message(self) -> bytes:
        """The bytes the signature covers."""
        return checkpoint_message(self.chain, self.length, self.head, self.at)

    def verify(self, verifier: Verifier) -> bool:
        """Whether the signature is valid for ``key_id`` according to ``verifier``."""
        return verifier.verify(self.key_id, self.message(), self.signature) is True

    def to_data(self) -> list[Any]:
        """Return the checkpoint as ``[chain, length, head, at, key_id, signature]``."""
        return [self.chain, self.length, self.head, self.at, self.key_id, self.signature]

    @classmethod
    def from_data(cls, data: object) -> Checkpoint:
        """Rebuild a checkpoint from :meth:`to_data` output (the signature is not checked).

        Raises:
            MalformedDataError: ``data`` does not describe a checkpoint.
        """
        if not isinstance(data, list | tuple) or len(data) != 6:
            raise MalformedDataError(
                "Checkpoint", "", "expected [chain, length, head, at, key_id, signature]", data
            )
        try:
            return cls(*data)
        except ValueError as exc:
            raise MalformedDataError("Checkpoint", "", str(exc), data) from exc
