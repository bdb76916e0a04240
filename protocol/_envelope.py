"""The aMCP envelope: who sends what to whom, when, why, and until when.

Rules:
    1. An :class:`Envelope` is a strict, frozen pydantic model with ``extra="forbid"``: a field
       it does not know, a value of the wrong type (no coercion: ``"1"`` is not ``1``) or a
       ``kind`` it does not know is refused, never guessed at.
    2. ``body`` is a discriminated union on ``kind``, one model per kind; the envelope's own
       ``kind`` must equal its body's.
    3. Plain data (intent ``params``, outcome ``result``, registry and audit data) is
       msgpack-plain: ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, lists (or
       tuples) and maps with ``str`` or ``bytes`` keys, nested at most
       :data:`MAX_PLAIN_DEPTH` deep. msgpack extension types (timestamps included) are refused.
    4. ``schema_version`` is :data:`SCHEMA_VERSION`; the evolution rules are in
       ``docs/protocol.md``.
    5. :meth:`Envelope.new` fills ``id`` (a random UUID, hex), ``nonce`` (16 bytes from
       :func:`os.urandom`) and ``expires`` (``now + ttl``); time is an argument.

The conversions to and from :mod:`vsm` types (:meth:`IntentBody.of` and
:meth:`IntentBody.intent`, likewise for outcomes, progress, algedonic signals and registry
deltas) are the only place the wire meets the model.
"""

from __future__ import annotations

import math
import os
import re
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from protocol.errors import DecodeError
from vsm.address import SystemId
from vsm.crdt import Stamp
from vsm.intents import Intent, Outcome, Refusal, Status
from vsm.messages import Algedonic, CancelIntent, IntentProgress
from vsm.registry import RegistryDelta

__all__ = [
    "MAX_META_ENTRIES",
    "MAX_PLAIN_DEPTH",
    "NONCE_SIZE",
    "SCHEMA_VERSION",
    "AlgedonicBody",
    "AuditBody",
    "Body",
    "CancelBody",
    "Causality",
    "Envelope",
    "IntentBody",
    "OutcomeBody",
    "ProgressBody",
    "RegistryBody",
    "Sender",
]

SCHEMA_VERSION: Final = 1
"""The envelope schema this code writes and reads."""

NONCE_SIZE = 16
"""Length of an envelope's nonce, in bytes."""

MAX_META_ENTRIES = 32
"""The most entries ``Envelope.meta`` may hold."""

MAX_META_KEY = 64
MAX_META_VALUE = 256
MAX_PARENTS = 64

MAX_PLAIN_DEPTH = 32
"""How deeply plain data (params, results, registry and audit data) may nest."""

_HEX_ID = re.compile(r"[0-9a-f]{32}")
_TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_STAMP_LIMIT = 2**64


def _check_plain(value: Any, depth: int = 0) -> None:
    if depth > MAX_PLAIN_DEPTH:
        raise ValueError(f"plain data nests deeper than {MAX_PLAIN_DEPTH}")
    if value is None or type(value) in (bool, int, str, bytes):
        return
    if type(value) is float:
        return
    if type(value) in (list, tuple):
        for item in value:
            _check_plain(item, depth + 1)
        return
    if type(value) is dict:
        for key, item in value.items():
            if type(key) not in (str, bytes):
                raise ValueError(f"plain map keys must be str or bytes, got {type(key).__name__}")
            _check_plain(item, depth + 1)
        return
    raise ValueError(f"not msgpack-plain data: {type(value).__name__}")


def _plain(value: Any) -> Any:
    _check_plain(value)
    return value


def _as_tuple(value: Any) -> Any:
    """Let a list (msgpack decodes arrays as lists) stand for a tuple; items stay strict."""
    return tuple(value) if type(value) is list else value


def _hex_id(value: str) -> str:
    if not _HEX_ID.fullmatch(value):
        raise ValueError("expected 32 lowercase hex digits (a UUID's hex)")
    return value


def _traceparent(value: str | None) -> str | None:
    if value is not None and not _TRACEPARENT.fullmatch(value):
        raise ValueError("traceparent must be '00-<32 hex>-<16 hex>-<2 hex>' (W3C trace context)")
    return value


def _stamp(value: tuple[int, int, str]) -> tuple[int, int, str]:
    physical, counter, replica = value
    if not (0 <= physical < _STAMP_LIMIT and 0 <= counter < _STAMP_LIMIT) or not replica:
        raise ValueError("hlc must be [physical_ms, counter, replica] with ints in [0, 2**64)")
    return value


def _meta(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_META_ENTRIES:
        raise ValueError(f"meta holds {len(value)} entries; at most {MAX_META_ENTRIES}")
    for key, item in value.items():
        if not 0 < len(key) <= MAX_META_KEY or len(item) > MAX_META_VALUE:
            raise ValueError(
                f"meta keys must be 1..{MAX_META_KEY} chars and values <= {MAX_META_VALUE}"
            )
    return value


Name = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
"""A non-empty, bounded string (paths, ids, users, zones)."""

HexId = Annotated[str, AfterValidator(_hex_id)]
Plain = Annotated[Any, AfterValidator(_plain)]
PlainMap = Annotated[dict[str, Any], AfterValidator(_plain)]
Finite = Annotated[float, Field(allow_inf_nan=False)]

StatusName = Literal["completed", "failed", "rejected"]
RefusalName = Literal[
    "policy",
    "rate_limit",
    "no_capability",
    "depth_guard",
    "circuit_open",
    "deadline",
    "unit_failed",
    "unit_lost",
    "cancelled",
]
SystemName = Literal["S1", "S2", "S3", "S4", "S5"]

_STRICT = ConfigDict(strict=True, extra="forbid", frozen=True)


class Sender(BaseModel):
    """Who sent an envelope: a viable system's path, its cluster, and the key it signs with."""

    model_config = _STRICT

    path: Name
    cluster: Name
    key_id: Name

    def replay_sender(self) -> str:
        """The sender id the replay guard keys on: ``"cluster/path#key_id"``."""
        return f"{self.cluster}/{self.path}#{self.key_id}"


class Causality(BaseModel):
    """Why an envelope exists: the envelopes it answers, and W3C trace context."""

    model_config = _STRICT

    parents: Annotated[
        tuple[HexId, ...], BeforeValidator(_as_tuple), Field(max_length=MAX_PARENTS)
    ] = ()
    traceparent: Annotated[str | None, AfterValidator(_traceparent)] = None
    tracestate: Annotated[str | None, StringConstraints(max_length=512)] = None


# ---------------------------------------------------------------- bodies


class IntentBody(BaseModel):
    """An intent submitted to a viable system (a plain, non-composite :class:`Intent`)."""

    model_config = _STRICT

    kind: Literal["intent"] = "intent"
    intent_id: Name
    capability: Name | None = None
    text: str | None = None
    params: PlainMap = Field(default_factory=dict)
    user: Name = "anonymous"
    zone: Name = "default"
    deadline: Finite | None = None

    @classmethod
    def of(cls, intent: Intent) -> IntentBody:
        """The body carrying ``intent``.

        Raises:
            ValueError: the intent is composite (plans are run locally, not sent).
        """
        if intent.plan:
            raise ValueError(f"intent {intent.id!r} is composite; plans do not travel")
        return cls(
            intent_id=intent.id,
            capability=intent.capability,
            text=intent.text,
            params=dict(intent.params),
            user=intent.user,
            zone=intent.zone,
            deadline=intent.deadline,
        )

    def intent(self) -> Intent:
        """The :class:`Intent` this body carries (raises ``ValueError`` if it has no task)."""
        return Intent(
            id=self.intent_id,
            capability=self.capability,
            text=self.text,
            params=dict(self.params),
            user=self.user,
            zone=self.zone,
            deadline=self.deadline,
        )


class OutcomeBody(BaseModel):
    """The terminal outcome of an intent."""

    model_config = _STRICT

    kind: Literal["outcome"] = "outcome"
    intent_id: Name
    status: StatusName
    result: Plain = None
    reason: RefusalName | None = None
    detail: str = ""
    by: SystemName | None = None
    path: str = ""

    @classmethod
    def of(cls, outcome: Outcome) -> OutcomeBody:
        """The body carrying ``outcome``."""
        return cls.model_validate(
            {
                "intent_id": outcome.intent_id,
                "status": str(outcome.status),
                "result": outcome.result,
                "reason": None if outcome.reason is None else str(outcome.reason),
                "detail": outcome.detail,
                "by": None if outcome.by is None else str(outcome.by),
                "path": outcome.path,
            }
        )

    def outcome(self) -> Outcome:
        """The :class:`Outcome` this body carries."""
        return Outcome(
            intent_id=self.intent_id,
            status=Status(self.status),
            result=self.result,
            reason=None if self.reason is None else Refusal(self.reason),
            detail=self.detail,
            by=None if self.by is None else SystemId(self.by),
            path=self.path,
        )


class ProgressBody(BaseModel):
    """A step on an intent's way (not an outcome)."""

    model_config = _STRICT

    kind: Literal["progress"] = "progress"
    intent_id: Name
    path: str
    stage: Name
    detail: str = ""

    @classmethod
    def of(cls, progress: IntentProgress) -> ProgressBody:
        """The body carrying ``progress``."""
        return cls(
            intent_id=progress.intent_id,
            path=progress.path,
            stage=progress.stage,
            detail=progress.detail,
        )

    def progress(self) -> IntentProgress:
        """The :class:`IntentProgress` this body carries."""
        return IntentProgress(
            intent_id=self.intent_id, path=self.path, stage=self.stage, detail=self.detail
        )


class RegistryBody(BaseModel):
    """Capability-registry deltas, as :meth:`RegistryDelta.to_data` writes them."""

    model_config = _STRICT

    kind: Literal["registry"] = "registry"
    data: PlainMap

    @classmethod
    def of(cls, delta: RegistryDelta) -> RegistryBody:
        """The body carrying ``delta``."""
        return cls(data=delta.to_data())

    def delta(self) -> RegistryDelta:
        """The :class:`RegistryDelta` this body carries, validated now.

        Raises:
            DecodeError: the data is not a valid delta (the vsm error is the cause).
        """
        try:
            return RegistryDelta.from_data(self.data)
        except Exception as exc:
            raise DecodeError(b"", exc) from exc


class AlgedonicBody(BaseModel):
    """Pain (< 0) or pleasure (> 0) from ``source``, straight to S5."""

    model_config = _STRICT

    kind: Literal["algedonic"] = "algedonic"
    source: Name
    intensity: Annotated[float, Field(ge=-1.0, le=1.0, allow_inf_nan=False)]
    detail: str = ""

    @classmethod
    def of(cls, signal: Algedonic) -> AlgedonicBody:
        """The body carrying ``signal``."""
        return cls(source=signal.source, intensity=float(signal.intensity), detail=signal.detail)

    def algedonic(self) -> Algedonic:
        """The :class:`Algedonic` message this body carries."""
        return Algedonic(source=self.source, intensity=self.intensity, detail=self.detail)


class AuditBody(BaseModel):
    """An audit-chain checkpoint, as plain data."""

    model_config = _STRICT

    kind: Literal["audit"] = "audit"
    checkpoint: PlainMap


class CancelBody(BaseModel):
    """The requester cancels an intent (``CancelIntent``).

    Added in a minor change (a new kind): receivers first, see docs/protocol.md.
    """

    model_config = _STRICT

    kind: Literal["cancel"] = "cancel"
    intent_id: Name
    reason: Annotated[str, StringConstraints(max_length=1024)] = ""

    @classmethod
    def of(cls, cancel: CancelIntent) -> CancelBody:
        """The body of ``cancel``."""
        return cls(intent_id=cancel.intent_id, reason=cancel.reason)

    def cancel(self) -> CancelIntent:
        """The ``CancelIntent`` it carries."""
        return CancelIntent(intent_id=self.intent_id, reason=self.reason)


Body = Annotated[
    IntentBody | OutcomeBody | ProgressBody | RegistryBody | AlgedonicBody | AuditBody | CancelBody,
    Field(discriminator="kind"),
]
"""Every body an envelope may carry, discriminated by ``kind``."""

Kind = Literal["intent", "outcome", "progress", "registry", "algedonic", "audit", "cancel"]


# ---------------------------------------------------------------- the envelope


class Envelope(BaseModel):
    """One aMCP message: addressing, causality, time, replay protection and a body.

    Attributes:
        schema_version: Always :data:`SCHEMA_VERSION`.
        id: A UUID as 32 lowercase hex digits.
        kind: The body's kind.
        sender: Who sent it (path, cluster, key id).
        recipient: The path of the viable system it goes to.
        correlation_id: The id of the envelope (or intent) this one answers, if any.
        causality: Parent envelope ids and W3C trace context.
        hlc: The sender's hybrid-logical-clock stamp, as :meth:`Stamp.to_data` writes it.
        nonce: 16 random bytes; with the sender, the replay guard's key.
        expires: Absolute time (seconds) from which the envelope is refused.
        meta: Semantic metadata, at most :data:`MAX_META_ENTRIES` short strings.
        body: The domain message.
    """

    model_config = _STRICT

    schema_version: Literal[1] = SCHEMA_VERSION
    id: HexId
    kind: Kind
    sender: Sender
    recipient: Name
    correlation_id: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = None
    causality: Causality = Field(default_factory=Causality)
    hlc: Annotated[tuple[int, int, str], BeforeValidator(_as_tuple), AfterValidator(_stamp)]
    nonce: Annotated[bytes, Field(min_length=NONCE_SIZE, max_length=NONCE_SIZE)]
    expires: Finite
    meta: Annotated[dict[str, str], AfterValidator(_meta)] = Field(default_factory=dict)
    body: Body

    @model_validator(mode="after")
    def _kind_matches_body(self) -> Envelope:
        if self.kind != self.body.kind:
            raise ValueError(f"kind {self.kind!r} differs from the body's {self.body.kind!r}")
        return self

    @classmethod
    def new(
        cls,
        *,
        sender: Sender,
        recipient: str,
        body: IntentBody
        | OutcomeBody
        | ProgressBody
        | RegistryBody
        | AlgedonicBody
        | AuditBody
        | CancelBody,
        hlc: Stamp,
        now: float,
        ttl: float,
        correlation_id: str | None = None,
        causality: Causality | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> Envelope:
        """A fresh envelope: a new id and nonce, expiring ``ttl`` seconds after ``now``.

        Raises:
            ValueError: ``ttl`` is not a positive finite number, or a field is invalid
                (pydantic's ``ValidationError`` is a ``ValueError``).
        """
        if not (math.isfinite(ttl) and ttl > 0):
            raise ValueError(f"ttl must be a positive finite number of seconds, got {ttl!r}")
        return cls(
            id=uuid.uuid4().hex,
            kind=body.kind,
            sender=sender,
            recipient=recipient,
            correlation_id=correlation_id,
            causality=causality if causality is not None else Causality(),
            hlc=(hlc.physical_ms, hlc.counter, hlc.replica),
            nonce=os.urandom(NONCE_SIZE),
            expires=float(now + ttl),
            meta=dict(meta or {}),
            body=body,
        )

    def stamp(self) -> Stamp:
        """The sender's HLC stamp."""
        return Stamp(*self.hlc)

    def replay_id(self) -> tuple[str, bytes, float]:
        """``(sender_id, nonce, expires)``: what :meth:`ReplayGuard.record` takes."""
        return (self.sender.replay_sender(), self.nonce, self.expires)
