"""The S3 audit chain: an append-only, hash-chained log with signed checkpoints.

An :class:`AuditChain` links every :class:`AuditEntry` to the one before by a domain-separated
BLAKE2b-256 digest; :meth:`AuditChain.checkpoint` has a :class:`Signer` sign the chain's
length and head; :func:`verify_chain` recomputes every digest and holds the chain to its
checkpoints, so any edit, reorder, insertion, deletion or truncation is found and reported in a
:class:`VerifyReport`. Keys stay outside the model: signing and verifying go through the
:class:`Signer` and :class:`Verifier` protocols.

See :mod:`vsm.audit._entry`, :mod:`vsm.audit._checkpoint` and :mod:`vsm.audit._verify` for the
rules.
"""

from vsm.audit._chain import AuditChain
from vsm.audit._checkpoint import CHECKPOINT_DOMAIN, Checkpoint, Signer, Verifier
from vsm.audit._entry import DIGEST_SIZE, ENTRY_DOMAIN, GENESIS, AuditEntry, entry_digest
from vsm.audit._verify import Problem, VerifyReport, verify_chain

__all__ = [
    "CHECKPOINT_DOMAIN",
    "DIGEST_SIZE",
    "ENTRY_DOMAIN",
    "GENESIS",
    "AuditChain",
    "AuditEntry",
    "Checkpoint",
    "Problem",
    "Signer",
    "Verifier",
    "VerifyReport",
    "entry_digest",
    "verify_chain",
]
