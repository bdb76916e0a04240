"""Intents and their outcomes: the contract of the hot path.

Rules:
    1. Every accepted intent ends in exactly one terminal :class:`Outcome`: ``completed`` with
       a result, ``failed`` with a reason, or ``rejected`` with a reason.
    2. A rejection names the System that refused and why (a :class:`Refusal`).
    3. Intents are immutable; a sub-intent of a composite plan gets the id ``parent/k``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from vsm.address import SystemId

__all__ = ["Intent", "Outcome", "Refusal", "Status"]


class Status(StrEnum):
    """The three terminal outcomes."""

    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"


class Refusal(StrEnum):
    """Why an intent was rejected or failed; each has one System that decides it."""

    POLICY = "policy"  # S5: zone not granted, limits exceeded
    RATE_LIMIT = "rate_limit"  # S2: a token bucket is empty
    NO_CAPABILITY = "no_capability"  # S1/S4: nothing offers it, nothing can be spawned
    DEPTH_GUARD = "depth_guard"  # S5: a child would be deeper than the guard
    CIRCUIT_OPEN = "circuit_open"  # S5: spawning failed too often recently
    DEADLINE = "deadline"  # S1: the deadline passed before an outcome
    UNIT_FAILED = "unit_failed"  # S1: the unit (kernel or child) failed it
    UNIT_LOST = "unit_lost"  # S1: the unit died and no healthy unit could take it
    CANCELLED = "cancelled"  # S1: the requester cancelled it before it ended


@dataclass(frozen=True, slots=True, kw_only=True)
class Intent:
    """A request to a viable system.

    Attributes:
        id: Unique id, chosen by the submitter.
        capability: The capability asked for by name, or ``None`` to classify ``text``.
        text: Free text, classified by S1 when ``capability`` is ``None``.
        params: Parameters for the capability (msgpack-plain).
        user: Who asks; S2 rate-limits per user and S5 grants zones per user.
        zone: The zone the intent belongs to; S5 checks the user may act in it.
        deadline: Absolute time by which an outcome is due (``None``: the policy default).
        plan: Sub-intents of a composite intent (run by S4), or empty.
        parallel: Whether the plan's steps run at once (else in sequence).
    """

    id: str
    capability: str | None = None
    text: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    user: str = "anonymous"
    zone: str = "default"
    deadline: float | None = None
    plan: tuple[Intent, ...] = ()
    parallel: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"Intent.id must be a non-empty str, got {self.id!r}")
        if self.capability is None and not self.text and not self.plan:
            raise ValueError(f"intent {self.id!r} names no capability, no text and no plan")

    @property
    def composite(self) -> bool:
        """Whether this intent is a plan of sub-intents."""
        return bool(self.plan)


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """The terminal outcome of one intent.

    Attributes:
        intent_id: The intent it ends.
        status: completed, failed or rejected.
        result: The result when completed.
        reason: Why it failed or was rejected (a :class:`Refusal`).
        detail: Human-readable explanation.
        by: The System that decided a rejection or failure.
        path: The viable system that decided it.
    """

    intent_id: str
    status: Status
    result: Any = None
    reason: Refusal | None = None
    detail: str = ""
    by: SystemId | None = None
    path: str = ""

    @classmethod
    def completed(cls, intent_id: str, result: Any, path: str) -> Outcome:
        """A completed outcome."""
        return cls(intent_id=intent_id, status=Status.COMPLETED, result=result, path=path)

    @classmethod
    def refused(
        cls,
        intent_id: str,
        status: Status,
        reason: Refusal,
        by: SystemId,
        path: str,
        detail: str,
    ) -> Outcome:
        """A failed or rejected outcome that names who refused and why."""
        return cls(
            intent_id=intent_id, status=status, reason=reason, by=by, path=path, detail=detail
        )
