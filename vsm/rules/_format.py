"""The printer: ``format_condition(c)`` is text that parses back to ``c``.

Rules:
    1. ``parse_condition(format_condition(c)) == c`` for every condition (a hypothesis
       property in ``tests/unit/test_rules_text.py``).
    2. An operand is put in parentheses exactly when the grammar would otherwise read it
       differently: by binding strength, ``then``/``within`` < ``or`` < ``and`` < ``not`` <
       the rest, and a nested ``and`` in ``and`` (or ``or`` in ``or``) keeps its own node.
    3. Numbers print with ``repr`` (so they read back to the same float), strings as JSON
       strings, durations in seconds (``30.0s``), field names bare when they are identifiers
       and not reserved, in backquotes otherwise.
"""

from __future__ import annotations

import json

from vsm.rules._ast import (
    AllWithin,
    And,
    Compare,
    Condition,
    Exists,
    In,
    Missing,
    Not,
    Or,
    Scalar,
    Then,
    Window,
)
from vsm.rules._parse import IDENTIFIER, RESERVED

__all__ = ["format_condition", "format_field", "format_literal"]

_STRENGTH = {Then: 0, AllWithin: 0, Or: 1, And: 2, Not: 3}
"""How tightly a node binds; every node not listed binds tightest (4)."""


def format_condition(condition: Condition) -> str:
    """The text form of ``condition``, which :func:`parse_condition` reads back to it."""
    match condition:
        case Compare(field=field, op=op, value=value):
            return f"{format_field(field)} {op} {format_literal(value)}"
        case In(field=field, values=values, negated=negated):
            listed = ", ".join(format_literal(v) for v in values)
            return f"{format_field(field)} {'not in' if negated else 'in'} [{listed}]"
        case Exists(field=field):
            return f"exists({format_field(field)})"
        case Missing(field=field):
            return f"missing({format_field(field)})"
        case And(operands=operands):
            return " and ".join(_operand(c, 2) for c in operands)
        case Or(operands=operands):
            return " or ".join(_operand(c, 1) for c in operands)
        case Not(operand=operand):
            return f"not {_operand(operand, 2)}"
        case Window():
            return _window(condition)
        case Then(first=first, second=second, by=by, seconds=seconds):
            return f"{_operand(first, 0)} then {_operand(second, 0)}{_within(by, seconds)}"
        case AllWithin(operands=operands, by=by, seconds=seconds):
            joined = " and ".join(_operand(c, 2) for c in operands)
            return f"{joined}{_within(by, seconds)}"
    raise TypeError(f"not a condition: {condition!r}")  # pragma: no cover - the union is closed


def format_field(name: str) -> str:
    """A field name as the grammar reads it: bare, or in backquotes."""
    if IDENTIFIER.fullmatch(name) and name not in RESERVED:
        return name
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def format_literal(value: Scalar) -> str:
    """A literal as the grammar reads it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(float(value))


def _operand(condition: Condition, strength: int) -> str:
    text = format_condition(condition)
    if _STRENGTH.get(type(condition), 4) <= strength:
        return f"({text})"
    return text


def _within(by: str | None, seconds: float) -> str:
    key = "" if by is None else f" by {format_field(by)}"
    return f"{key} within {seconds!r}s"


def _window(window: Window) -> str:
    if window.field is None:
        inner = "" if window.where is None else format_condition(window.where)
    else:
        inner = format_field(window.field)
        if window.where is not None:
            inner += f" where {format_condition(window.where)}"
    key = "" if window.by is None else f" by {format_field(window.by)}"
    return (
        f"{window.func}({inner}){key} within {window.seconds!r}s "
        f"{window.op} {format_literal(window.value)}"
    )
