"""The conditions of rules: a closed union of frozen nodes, and their JSON form.

Rules:
    1. A node checks itself when built and raises ``ValueError`` showing the bad value; a node
       that exists is well formed, so the compiler trusts it.
    2. Numbers are stored as ``float`` (an ``int`` given is converted; ``bool`` is not a
       number). Literals are finite numbers, strings, booleans or ``None`` (``null``).
    3. Ordering operators (``>``, ``>=``, ``<``, ``<=``) take a number or a string, never a
       boolean or ``null``; windows compare their aggregate with a number.
    4. ``And`` and ``Or`` hold at least two operands; ``AllWithin`` at least one. Durations
       (``seconds``) are finite and > 0. Field names are non-empty strings.
    5. The JSON form (``to_data``) is a dict tagged by ``"type"`` (``compare``, ``in``,
       ``exists``, ``missing``, ``and``, ``or``, ``not``, ``window``, ``then``,
       ``all_within``) holding the node's fields by name, nested nodes as their JSON forms and
       tuples as lists. ``from_data`` accepts exactly that (an int where a float is expected
       too) and raises ``MalformedDataError`` naming the path in the JSON
       (``operands[1].value``) and showing the bad value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal, Self, TypeAlias

from vsm.errors import MalformedDataError

__all__ = [
    "AGGREGATES",
    "CONDITION_TYPES",
    "OPERATORS",
    "ORDERING",
    "AllWithin",
    "And",
    "Compare",
    "Condition",
    "Exists",
    "In",
    "Missing",
    "Not",
    "Or",
    "Scalar",
    "Then",
    "Window",
    "condition_from_data",
]

Scalar: TypeAlias = float | str | bool | None
"""A literal, and a field's value as rules see it (``int`` is read as ``float``)."""

Operator: TypeAlias = Literal[">", ">=", "<", "<=", "==", "!="]
Aggregate: TypeAlias = Literal["count", "sum", "avg", "min", "max"]
OPERATORS: tuple[Operator, ...] = (">", ">=", "<", "<=", "==", "!=")
ORDERING = frozenset({">", ">=", "<", "<="})
AGGREGATES: tuple[Aggregate, ...] = ("count", "sum", "avg", "min", "max")


def _number(owner: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{owner}.{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"{owner}.{name} must be a finite number, got {value!r}")
    return number


def _seconds(owner: str, value: object) -> float:
    seconds = _number(owner, "seconds", value)
    if seconds <= 0:
        raise ValueError(f"{owner}.seconds must be > 0, got {value!r}")
    return seconds


def _literal(owner: str, name: str, value: object) -> Scalar:
    if value is None or isinstance(value, bool | str):
        return value
    return _number(owner, name, value)


def _field(owner: str, name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{owner}.{name} must be a non-empty str, got {value!r}")
    return value


def _operator(owner: str, value: object) -> Operator:
    if value not in OPERATORS:
        raise ValueError(f"{owner}.op must be one of {' '.join(OPERATORS)}, got {value!r}")
    return value


def _conditions(owner: str, name: str, value: object, least: int) -> tuple[Condition, ...]:
    if not isinstance(value, tuple) or len(value) < least:
        raise ValueError(f"{owner}.{name} must be a tuple of at least {least}, got {value!r}")
    for item in value:
        if not isinstance(item, CONDITION_TYPES):
            raise ValueError(f"{owner}.{name} holds a non-condition: {item!r}")
    return value


def _set(node: object, name: str, value: object) -> None:
    object.__setattr__(node, name, value)  # normalising a frozen node while it is built


class _Node:
    """What every condition node shares: its JSON tag, ``to_data`` and ``from_data``."""

    __slots__ = ()
    tag: ClassVar[str]

    def to_data(self) -> dict[str, Any]:
        """The JSON form: ``{"type": tag, field: value, ...}``, nodes nested as JSON forms."""
        data: dict[str, Any] = {"type": self.tag}
        for item in fields(self):  # type: ignore[arg-type]  # every subclass is a dataclass
            value = getattr(self, item.name)
            if isinstance(value, _Node):
                value = value.to_data()
            elif isinstance(value, tuple):
                value = [v.to_data() if isinstance(v, _Node) else v for v in value]
            data[item.name] = value
        return data

    @classmethod
    def from_data(cls, data: object) -> Self:
        """Rebuild a node of this class from its JSON form.

        Raises:
            MalformedDataError: ``data`` is not a condition of this class; the error names the
                path in the JSON.
        """
        node = condition_from_data(data)
        if not isinstance(node, cls):
            raise MalformedDataError(cls.__name__, "type", f"expected {cls.tag!r}", node.tag)
        return node


@dataclass(frozen=True, slots=True)
class Compare(_Node):
    """``field op value``: true when the field is present and compares as asked.

    ``==`` needs a value of the literal's type (numbers, strings, booleans and ``null`` are
    four types); ``!=`` is true for any present value that is not equal; ordering compares a
    number with a number or a string with a string (by code point).
    """

    field: str
    op: Operator
    value: Scalar
    tag: ClassVar[str] = "compare"

    def __post_init__(self) -> None:
        _field("Compare", "field", self.field)
        _operator("Compare", self.op)
        _set(self, "value", _literal("Compare", "value", self.value))
        if self.op in ORDERING and (self.value is None or isinstance(self.value, bool)):
            raise ValueError(f"Compare: {self.op} needs a number or a string, got {self.value!r}")


@dataclass(frozen=True, slots=True)
class In(_Node):
    """``field in [values]``, or ``field not in [values]`` when ``negated``.

    True when the field is present and equal (``==``) to one of the values; negated, when it
    is present and equal to none of them.
    """

    field: str
    values: tuple[Scalar, ...]
    negated: bool = False
    tag: ClassVar[str] = "in"

    def __post_init__(self) -> None:
        _field("In", "field", self.field)
        if not isinstance(self.values, tuple):
            raise ValueError(f"In.values must be a tuple, got {self.values!r}")
        _set(self, "values", tuple(_literal("In", "values", v) for v in self.values))
        if not isinstance(self.negated, bool):
            raise ValueError(f"In.negated must be a bool, got {self.negated!r}")


@dataclass(frozen=True, slots=True)
class Exists(_Node):
    """``exists(field)``: the event has the field (a NaN or a non-scalar counts as absent)."""

    field: str
    tag: ClassVar[str] = "exists"

    def __post_init__(self) -> None:
        _field("Exists", "field", self.field)


@dataclass(frozen=True, slots=True)
class Missing(_Node):
    """``missing(field)``: the event lacks the field; the negation of :class:`Exists`."""

    field: str
    tag: ClassVar[str] = "missing"

    def __post_init__(self) -> None:
        _field("Missing", "field", self.field)


@dataclass(frozen=True, slots=True)
class And(_Node):
    """Every operand holds."""

    operands: tuple[Condition, ...]
    tag: ClassVar[str] = "and"

    def __post_init__(self) -> None:
        _conditions("And", "operands", self.operands, 2)


@dataclass(frozen=True, slots=True)
class Or(_Node):
    """At least one operand holds."""

    operands: tuple[Condition, ...]
    tag: ClassVar[str] = "or"

    def __post_init__(self) -> None:
        _conditions("Or", "operands", self.operands, 2)


@dataclass(frozen=True, slots=True)
class Not(_Node):
    """The operand does not hold (plain negation: ``not x > 1`` holds when ``x`` is missing)."""

    operand: Condition
    tag: ClassVar[str] = "not"

    def __post_init__(self) -> None:
        _conditions("Not", "operand", (self.operand,), 1)


@dataclass(frozen=True, slots=True)
class Window(_Node):
    """``func(...) [by field] within seconds op value``: an aggregate over recent events.

    The aggregate runs over the events, this one included, that match ``where`` (all events
    when ``None``) and arrived in the last ``seconds`` (``[t - seconds, t]``), sharing this
    event's ``by`` field when it is set. ``count`` counts them; ``sum``, ``avg``, ``min`` and
    ``max`` read ``field`` of those where it holds a finite number.
    """

    func: Aggregate
    field: str | None
    where: Condition | None
    by: str | None
    seconds: float
    op: Operator
    value: float
    tag: ClassVar[str] = "window"

    def __post_init__(self) -> None:
        if self.func not in AGGREGATES:
            raise ValueError(f"Window.func must be one of {AGGREGATES}, got {self.func!r}")
        if self.func == "count":
            if self.field is not None:
                raise ValueError(f"Window: count takes no field, got {self.field!r}")
        else:
            _field("Window", "field", self.field)
        if self.where is not None:
            _conditions("Window", "where", (self.where,), 1)
        if self.by is not None:
            _field("Window", "by", self.by)
        _set(self, "seconds", _seconds("Window", self.seconds))
        _operator("Window", self.op)
        _set(self, "value", _number("Window", "value", self.value))


@dataclass(frozen=True, slots=True)
class Then(_Node):
    """``first then second [by field] within seconds``: a sequence.

    True at an event matching ``second`` when an earlier event matching ``first`` (sharing the
    ``by`` field, if set) arrived at most ``seconds`` before it.
    """

    first: Condition
    second: Condition
    by: str | None
    seconds: float
    tag: ClassVar[str] = "then"

    def __post_init__(self) -> None:
        _conditions("Then", "first/second", (self.first, self.second), 2)
        if self.by is not None:
            _field("Then", "by", self.by)
        _set(self, "seconds", _seconds("Then", self.seconds))


@dataclass(frozen=True, slots=True)
class AllWithin(_Node):
    """``a and b ... [by field] within seconds``: a trailing ``within``.

    True when each operand held in some event (sharing the ``by`` field, if set) in the last
    ``seconds``: the same as ``count(a) within seconds >= 1 and count(b) within seconds >= 1
    ...``.
    """

    operands: tuple[Condition, ...]
    by: str | None
    seconds: float
    tag: ClassVar[str] = "all_within"

    def __post_init__(self) -> None:
        _conditions("AllWithin", "operands", self.operands, 1)
        if self.by is not None:
            _field("AllWithin", "by", self.by)
        _set(self, "seconds", _seconds("AllWithin", self.seconds))


Condition: TypeAlias = Compare | In | Exists | Missing | And | Or | Not | Window | Then | AllWithin
"""Every condition node: the closed union."""

CONDITION_TYPES = (Compare, In, Exists, Missing, And, Or, Not, Window, Then, AllWithin)
_BY_TAG: dict[str, type[Condition]] = {cls.tag: cls for cls in CONDITION_TYPES}
_FIELDS = {tag: tuple(f.name for f in fields(cls)) for tag, cls in _BY_TAG.items()}
_NESTED = frozenset({"operands", "operand", "where", "first", "second"})


def condition_from_data(data: object, path: str = "") -> Condition:
    """Rebuild a condition from its JSON form (:meth:`to_data` of any node).

    Args:
        data: The JSON form.
        path: Where ``data`` sits in a larger document; prefixed to the path in errors.

    Raises:
        MalformedDataError: ``data`` is not a condition; ``path`` says where, in the JSON.
    """
    if not isinstance(data, dict):
        raise MalformedDataError("Condition", path, "expected a dict with a 'type'", data)
    tag = data.get("type")
    if tag not in _BY_TAG:
        where = _join(path, "type")
        raise MalformedDataError("Condition", where, f"expected one of {sorted(_BY_TAG)}", tag)
    names = _FIELDS[tag]
    extra = sorted(set(data) - {"type", *names}, key=str)
    if extra:
        raise MalformedDataError("Condition", _join(path, str(extra[0])), "unknown key", data)
    args: dict[str, Any] = {}
    for name in names:
        if name not in data:
            raise MalformedDataError("Condition", _join(path, name), "missing key", data)
        value = data[name]
        here = _join(path, name)
        if name == "operands":
            if not isinstance(value, list):
                raise MalformedDataError("Condition", here, "expected a list", value)
            value = tuple(condition_from_data(v, f"{here}[{i}]") for i, v in enumerate(value))
        elif name in _NESTED and not (name == "where" and value is None):
            value = condition_from_data(value, here)
        elif name == "values":
            if not isinstance(value, list):
                raise MalformedDataError("Condition", here, "expected a list", value)
            value = tuple(value)
        args[name] = value
    try:
        return _BY_TAG[tag](**args)
    except ValueError as exc:
        raise MalformedDataError("Condition", path, str(exc), data) from exc


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
