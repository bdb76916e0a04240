"""Verification of an audit chain against its signed checkpoints.

Rules:
    1. Nothing stored is trusted that can be recomputed: every entry's digest is recomputed
       from its content, and links are checked against the *recomputed* digest of the entry
       before.
    2. Entry ``i`` must have ``index == i`` (else a reorder, insertion, deletion or duplicate),
       ``prev`` equal to the recomputed digest of entry ``i - 1`` (:data:`GENESIS` for the
       first), and a stored digest equal to its recomputed one (else its content was edited).
    3. Each checkpoint must belong to the chain (when the chain's name is known) and carry a
       valid signature (when a verifier is given). A checkpoint that fails this is reported
       first: it is no evidence of anything.
    4. A checkpoint of length ``L`` needs at least ``L`` entries (else the chain was
       truncated) and entry ``L - 1``'s recomputed digest equal to its head (else something at
       or before ``L - 1`` was rewritten, however consistently).
    5. The report names the first problem: the one at the lowest entry index, an entry's own
       problem before a checkpoint's at the same index. A hash chain alone cannot see its last
       entries rewritten consistently; only a later checkpoint can, so checkpoint often.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from vsm.audit._checkpoint import Checkpoint, Verifier
from vsm.audit._entry import GENESIS, AuditEntry

__all__ = ["Problem", "VerifyReport", "verify_chain"]

Problem = Literal["chain", "signature", "index", "prev", "digest", "truncated", "head"]
"""What went wrong: a checkpoint of another ``chain``; a bad checkpoint ``signature``; an
entry's ``index``, ``prev`` link or ``digest`` is wrong; the chain is shorter than a checkpoint
(``truncated``); or a checkpoint's ``head`` does not match the chain."""


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of :func:`verify_chain`.

    Attributes:
        ok: Whether no problem was found.
        entries: How many entries were examined.
        checkpoints: How many checkpoints were examined.
        problem: The first problem's kind, or ``None`` when ``ok``.
        index: The entry index where the first problem lies (for ``truncated``, the first
            missing index); ``None`` when ``ok`` or when the problem is a checkpoint's own
            (``chain``, ``signature``).
        checkpoint: Position, in the checkpoints given, of the checkpoint at fault, if any.
        reason: A sentence describing the first problem, or ``None`` when ``ok``.
    """

    ok: bool
    entries: int
    checkpoints: int
    problem: Problem | None = None
    index: int | None = None
    checkpoint: int | None = None
    reason: str | None = None

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True, slots=True)
class _Found:
    problem: Problem
    index: int | None
    checkpoint: int | None
    reason: str


def _entry_problem(entries: tuple[AuditEntry, ...], digests: list[bytes]) -> _Found | None:
    expected_prev = GENESIS
    for i, (entry, digest) in enumerate(zip(entries, digests, strict=True)):
        if entry.index != i:
            return _Found("index", i, None, f"entry at position {i} says index {entry.index}")
        if entry.prev != expected_prev:
            before = f"entry {i - 1} hashes to" if i else "the first entry links to GENESIS,"
            reason = f"entry {i} links to {entry.prev.hex()}, but {before} {expected_prev.hex()}"
            return _Found("prev", i, None, reason)
        if entry.digest != digest:
            return _Found(
                "digest",
                i,
                None,
                f"entry {i} claims digest {entry.digest.hex()}, but its content hashes to "
                f"{digest.hex()}",
            )
        expected_prev = digest
    return None


def _claim_problem(position: int, cp: Checkpoint, digests: list[bytes]) -> _Found | None:
    if cp.length > len(digests):
        return _Found(
            "truncated",
            len(digests),
            position,
            f"checkpoint {position} vouches for {cp.length} entries, the chain has {len(digests)}",
        )
    head = digests[cp.length - 1] if cp.length else GENESIS
    if head != cp.head:  # never for length 0: a Checkpoint of no entries holds GENESIS
        return _Found(
            "head",
            cp.length - 1,
            position,
            f"checkpoint {position} says entry {cp.length - 1} hashes to {cp.head.hex()}, "
            f"it hashes to {head.hex()}",
        )
    return None


def verify_chain(
    entries: Iterable[AuditEntry],
    checkpoints: Iterable[Checkpoint] = (),
    verifier: Verifier | None = None,
    *,
    name: str | None = None,
) -> VerifyReport:
    """Check that ``entries`` form an untouched chain that every checkpoint vouches for.

    Args:
        entries: The entries, in chain order, from index 0.
        checkpoints: Checkpoints to hold the chain to, in any order.
        verifier: Checks the checkpoints' signatures; with ``None`` they are not checked, so
            the checkpoints are only as trustworthy as wherever they were kept.
        name: The chain's name; when given, every checkpoint must name this chain.

    Returns:
        A report: ok, or the first problem (see the module's rules).
    """
    chain = tuple(entries)
    cps = tuple(checkpoints)
    report = VerifyReport(ok=True, entries=len(chain), checkpoints=len(cps))
    for position, cp in enumerate(cps):
        if name is not None and cp.chain != name:
            reason = f"checkpoint {position} is for chain {cp.chain!r}, not {name!r}"
            return _fail(report, _Found("chain", None, position, reason))
        if verifier is not None and not cp.verify(verifier):
            reason = f"checkpoint {position} has no valid signature by key {cp.key_id!r}"
            return _fail(report, _Found("signature", None, position, reason))
    digests = [entry.compute_digest() for entry in chain]
    # Rule 5: lowest entry index first; at equal index the entry's own problem first.
    candidates = [(0, _entry_problem(chain, digests))]
    candidates += [(1, _claim_problem(position, cp, digests)) for position, cp in enumerate(cps)]
    found = [(f.index or 0, rank, f) for rank, f in candidates if f is not None]
    if not found:
        return report
    return _fail(report, min(found, key=lambda item: item[:2])[2])


def _fail(report: VerifyReport, found: _Found) -> VerifyReport:
    return VerifyReport(
        ok=False,
        entries=report.entries,
        checkpoints=report.checkpoints,
        problem=found.problem,
        index=found.index,
        checkpoint=found.checkpoint,
        reason=found.reason,
    )
