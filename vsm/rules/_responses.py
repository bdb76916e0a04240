"""What a rule asks for when it matches: a closed union of frozen responses (data only).

Rules:
    1. A response is data: the host of the rule set (System 3) carries it out. Fields that name
       "the user" or "the unit" name a *field of the matching event* (``key_field``,
       ``unit_field``), so one rule serves every user or unit; :meth:`Throttle.key_of` and
       :meth:`Audit.unit_of` read it.
    2. A response checks itself when built and raises ``ValueError`` showing the bad value.
    3. ``ProposePatch.patch`` holds fields of :class:`~vsm.spec.PolicySpec` (not ``version``:
       System 5 versions its policy), and applied to the default policy it must validate.
    4. The JSON form is a dict tagged by ``"type"``; ``response_from_data`` raises
       ``MalformedDataError`` naming the path in the JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self, TypeAlias

from pydantic import ValidationError

from vsm.errors import MalformedDataError
from vsm.spec import PolicySpec

__all__ = [
    "PATCHABLE",
    "RESPONSE_TYPES",
    "Algedonic",
    "Audit",
    "EmitEvent",
    "ProposePatch",
    "Response",
    "Throttle",
    "response_from_data",
]

PATCHABLE = frozenset(PolicySpec.model_fields) - {"version"}
"""The policy fields a :class:`ProposePatch` may set."""


def _text(owner: str, name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{owner}.{name} must be a non-empty str, got {value!r}")
    return value


def _positive(owner: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{owner}.{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{owner}.{name} must be a finite number > 0, got {value!r}")
    return number


def _plain_dict(owner: str, name: str, value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{owner}.{name} must be a mapping with str keys, got {value!r}")
    return dict(value)


def _set(response: object, name: str, value: object) -> None:
    object.__setattr__(response, name, value)  # normalising a frozen response while it is built


class _Response:
    """What every response shares: its JSON tag, ``to_data`` and ``from_data``."""

    __slots__ = ()
    tag: ClassVar[str]

    def to_data(self) -> dict[str, Any]:
        """The JSON form: a dict tagged by ``"type"``."""
        raise NotImplementedError

    @classmethod
    def from_data(cls, data: object) -> Self:
        """Rebuild a response of this class from its JSON form.

        Raises:
            MalformedDataError: ``data`` is not a response of this class; the error names the
                path in the JSON.
        """
        response = response_from_data(data)
        if not isinstance(response, cls):
            raise MalformedDataError(cls.__name__, "type", f"expected {cls.tag!r}", response.tag)
        return response


@dataclass(frozen=True, slots=True)
class Algedonic(_Response):
    """Raise an algedonic signal (pain) to System 5, bypassing the normal channels.

    Attributes:
        intensity: How strong, in ``[0, 1]``.
        detail: What happened, for people.
    """

    intensity: float
    detail: str
    tag: ClassVar[str] = "algedonic"

    def __post_init__(self) -> None:
        value = self.intensity
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"Algedonic.intensity must be a number in [0, 1], got {value!r}")
        _set(self, "intensity", float(value))
        if not isinstance(self.detail, str):
            raise ValueError(f"Algedonic.detail must be a str, got {self.detail!r}")

    def to_data(self) -> dict[str, Any]:
        """The JSON form: ``{"type": "algedonic", "intensity", "detail"}``."""
        return {"type": self.tag, "intensity": self.intensity, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Throttle(_Response):
    """Throttle (System 2) the user or capability named by a field of the matching event.

    Attributes:
        target: ``"user"`` or ``"capability"``.
        key_field: The event field holding the user's or capability's name.
        rate: The rate to impose, per second (> 0).
        seconds: For how long (> 0).
    """

    target: Literal["user", "capability"]
    key_field: str
    rate: float
    seconds: float
    tag: ClassVar[str] = "throttle"

    def __post_init__(self) -> None:
        if self.target not in ("user", "capability"):
            raise ValueError(f"Throttle.target must be 'user' or 'capability', got {self.target!r}")
        _text("Throttle", "key_field", self.key_field)
        _set(self, "rate", _positive("Throttle", "rate", self.rate))
        _set(self, "seconds", _positive("Throttle", "seconds", self.seconds))

    def key_of(self, fields: Mapping[str, Any]) -> Any:
        """The user or capability to throttle: ``fields[key_field]``, ``None`` if absent."""
        return fields.get(self.key_field)

    def to_data(self) -> dict[str, Any]:
        """The JSON form: ``{"type": "throttle", "target", "key_field", "rate", "seconds"}``."""
        return {
            "type": self.tag,
            "target": self.target,
            "key_field": self.key_field,
            "rate": self.rate,
            "seconds": self.seconds,
        }


@dataclass(frozen=True, slots=True)
class Audit(_Response):
    """Open an S3* audit of the unit named by a field of the matching event.

    Attributes:
        unit_field: The event field holding the unit's path (``path`` for the emitter).
    """

    unit_field: str
    tag: ClassVar[str] = "audit"

    def __post_init__(self) -> None:
        _text("Audit", "unit_field", self.unit_field)

    def unit_of(self, fields: Mapping[str, Any]) -> Any:
        """The unit to audit: ``fields[unit_field]``, ``None`` if absent."""
        return fields.get(self.unit_field)

    def to_data(self) -> dict[str, Any]:
        """The JSON form: ``{"type": "audit", "unit_field"}``."""
        return {"type": self.tag, "unit_field": self.unit_field}


@dataclass(frozen=True, slots=True)
class ProposePatch(_Response):
    """Propose a change of policy to System 5 (which decides, and versions it).

    Attributes:
        patch: Policy fields and their new values (rule 3).
    """

    patch: Mapping[str, Any] = field(hash=False)
    tag: ClassVar[str] = "propose_patch"

    def __post_init__(self) -> None:
        patch = _plain_dict("ProposePatch", "patch", self.patch)
        unknown = sorted(set(patch) - PATCHABLE)
        if not patch or unknown:
            raise ValueError(
                f"ProposePatch.patch must set some of {sorted(PATCHABLE)}, got {patch!r}"
            )
        try:
            PolicySpec.model_validate({**PolicySpec().model_dump(), **patch})
        except ValidationError as exc:
            problem = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"ProposePatch.patch is not a valid policy: {problem}") from exc
        _set(self, "patch", patch)

    def to_data(self) -> dict[str, Any]:
        """The JSON form: ``{"type": "propose_patch", "patch"}``."""
        return {"type": self.tag, "patch": dict(self.patch)}


@dataclass(frozen=True, slots=True)
class EmitEvent(_Response):
    """Emit a new event (``Event(kind, path, at, data)`` at the rule set's host).

    Attributes:
        kind: The event's dotted kind.
        data: The event's details (msgpack-plain).
    """

    kind: str
    data: Mapping[str, Any] = field(default_factory=dict, hash=False)
    tag: ClassVar[str] = "emit_event"

    def __post_init__(self) -> None:
        _text("EmitEvent", "kind", self.kind)
        _set(self, "data", _plain_dict("EmitEvent", "data", self.data))

    def to_data(self) -> dict[str, Any]:
        """The JSON form: ``{"type": "emit_event", "kind", "data"}``."""
        return {"type": self.tag, "kind": self.kind, "data": dict(self.data)}


Response: TypeAlias = Algedonic | Throttle | Audit | ProposePatch | EmitEvent
"""Every response: the closed union."""

RESPONSE_TYPES = (Algedonic, Throttle, Audit, ProposePatch, EmitEvent)
_BY_TAG: dict[str, type[Response]] = {cls.tag: cls for cls in RESPONSE_TYPES}


def response_from_data(data: object, path: str = "") -> Response:
    """Rebuild a response from its JSON form.

    Args:
        data: The JSON form (``to_data`` of any response).
        path: Where ``data`` sits in a larger document; prefixed to the path in errors.

    Raises:
        MalformedDataError: ``data`` is not a response; the error names the path in the JSON.
    """
    if not isinstance(data, dict):
        raise MalformedDataError("Response", path, "expected a dict with a 'type'", data)
    tag = data.get("type")
    if tag not in _BY_TAG:
        where = f"{path}.type" if path else "type"
        raise MalformedDataError("Response", where, f"expected one of {sorted(_BY_TAG)}", tag)
    cls = _BY_TAG[tag]
    names = [f for f in cls.__dataclass_fields__ if f != "tag"]
    for key in data:
        if key != "type" and key not in names:
            raise MalformedDataError(
                "Response", f"{path}.{key}" if path else key, "unknown key", data
            )
    for name in names:
        if name not in data and not (cls is EmitEvent and name == "data"):
            raise MalformedDataError(
                "Response", f"{path}.{name}" if path else name, "missing key", data
            )
    try:
        return cls(**{k: v for k, v in data.items() if k != "type"})
    except ValueError as exc:
        raise MalformedDataError("Response", path, str(exc), data) from exc
