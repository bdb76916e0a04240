"""Stateless conditions, twice: as Python source for one event, as numpy for a batch.

Rules:
    1. Both forms read a condition the same way (docs/rules.md, "Semantics"):

       - ``field == v`` holds when the field is present and equal to ``v`` *of the same type*
         (number, string, boolean, null); ``!=`` when it is present and not equal (any type);
       - ordering (``> >= < <=``) holds when the field holds a number and ``v`` is a number,
         or both are strings (compared by code point);
       - ``in`` is ``==`` against any of the values; ``not in`` is present and ``in`` false;
       - ``exists``/``missing`` test presence; ``and``, ``or``, ``not`` are Boolean logic, so
         ``not x > 1`` holds when ``x`` is missing.

    2. A stateful node (a window or a sequence) is not evaluated here: the one-event form reads
       its result from ``s[slot]``, the batch form from ``results[node]``; the compiler
       computes those first, for every event, so that no short-circuit skips a state update.
    3. The one-event form is source code compiled once per rule (as goldrush compiles rules
       to a module): literals and field names enter it as names bound in its namespace, never
       as text, so no value can change what the code does. It reads a normalised row (see
       :mod:`vsm.rules._fields`: numbers are floats, absent values are left out).
    4. The batch form memoises every node with no stateful part in ``memo`` (keyed by the node,
       by value), so rules of one set share work on one batch; masks in ``memo`` are shared
       and never written in place. (The compiler keeps other per-batch work there too, under
       keys that are not conditions: the running maximum of ``at``, keys grouped by field.)
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from vsm.rules._ast import And, Compare, Condition, Exists, In, Missing, Not, Or, Scalar
from vsm.rules._batch import Batch, Bools

__all__ = ["Source", "vector"]

_ORDER: dict[str, Callable[[Any, Any], Any]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


class Source:
    """Builds the Python source of the one-event form, with the namespace it runs in.

    Args:
        slots: The slot in ``s`` of each stateful node's result.
    """

    __slots__ = ("_names", "namespace", "slots")

    def __init__(self, slots: Mapping[Condition, int]) -> None:
        self.slots = slots
        self.namespace: dict[str, Any] = {"MISSING": _MISSING}
        self._names: dict[tuple[type, object], str] = {}

    def function(
        self, condition: Condition, name: str
    ) -> Callable[[dict[str, Scalar], list[bool]], bool]:
        """Compile ``condition`` into ``name(f, s) -> bool``; its source is in ``namespace``."""
        body = self.expression(condition)
        text = f"def {name}(f, s):\n    return {body}\n"
        self.namespace.setdefault("__sources__", []).append(text)
        code = compile(text, f"<rule condition {name}>", "exec")
        exec(code, self.namespace)  # noqa: S102  # rule 3: generated code binds values by name
        function: Callable[[dict[str, Scalar], list[bool]], bool] = self.namespace[name]
        return function

    def constant(self, value: object) -> str:
        """A name bound to ``value`` in the namespace (one name per distinct value)."""
        key = (
            type(value),
            value if not isinstance(value, frozenset) else tuple(sorted(map(repr, value))),
        )
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = f"c{len(self._names)}"
            self.namespace[name] = value
        return name

    def expression(self, node: Condition) -> str:
        """The Python expression for ``node`` over the row ``f`` and stateful results ``s``."""
        slot = self.slots.get(node)
        if slot is not None:
            return f"s[{slot}]"
        match node:
            case Compare(field=field, op=op, value=value):
                return self._compare(self.constant(field), op, value)
            case In(field=field, values=values, negated=negated):
                return self._in(self.constant(field), values, negated)
            case Exists(field=field):
                return f"({self.constant(field)} in f)"
            case Missing(field=field):
                return f"({self.constant(field)} not in f)"
            case And(operands=operands):
                return "(" + " and ".join(self.expression(c) for c in operands) + ")"
            case Or(operands=operands):
                return "(" + " or ".join(self.expression(c) for c in operands) + ")"
            case Not(operand=operand):
                return f"(not {self.expression(operand)})"
        raise ValueError(f"a stateful condition has no slot: {node!r}")

    def _compare(self, key: str, op: str, value: Scalar) -> str:
        if op in _ORDER:
            typename = "float" if isinstance(value, float) else "str"
            return f"(type(_v := f.get({key})) is {typename} and _v {op} {self.constant(value)})"
        if op == "==" and isinstance(value, str):
            return f"({self.constant(value)} == f.get({key}))"  # only a str equals a str
        equal = self._equal("_v", value)
        if op == "==":
            return f"((_v := f.get({key}, MISSING)) is not MISSING and {equal})"
        return f"((_v := f.get({key}, MISSING)) is not MISSING and not {equal})"

    def _equal(self, var: str, value: Scalar) -> str:
        if value is None or isinstance(value, bool):
            return f"({var} is {value!r})"
        typename = "float" if isinstance(value, float) else "str"
        return f"(type({var}) is {typename} and {var} == {self.constant(value)})"

    def _in(self, key: str, values: tuple[Scalar, ...], negated: bool) -> str:
        parts = []
        strings = frozenset(v for v in values if isinstance(v, str))
        numbers = frozenset(v for v in values if isinstance(v, float))
        if strings and len(strings) == len(values) and not negated:
            return f"(f.get({key}) in {self.constant(strings)})"  # only a str is in a str set
        if strings:
            parts.append(f"(type(_v) is str and _v in {self.constant(strings)})")
        if numbers:
            parts.append(f"(type(_v) is float and _v in {self.constant(numbers)})")
        parts += [f"(_v is {v!r})" for v in (True, False, None) if any(w is v for w in values)]
        either = "(" + " or ".join(parts) + ")" if parts else "False"
        test = f"not {either}" if negated else either
        return f"((_v := f.get({key}, MISSING)) is not MISSING and {test})"


_FEW = 4
"""Up to this many values, ``in`` compares each (cheaper than ``np.isin`` on a batch)."""


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


_MISSING = _Missing()


def vector(
    node: Condition,
    batch: Batch,
    results: Mapping[Condition, Bools],
    memo: dict[Any, Any] | None,
    pure: Callable[[Condition], bool],
) -> Bools:
    """The batch form of ``node``: a bool mask over the batch's events (rule 1).

    Args:
        node: The condition.
        batch: The events.
        results: The masks of the stateful nodes, computed before.
        memo: Masks of stateless nodes already computed on this batch (rule 4), or ``None``.
        pure: Whether a node has no stateful part (only those are memoised).
    """
    found = results.get(node)
    if found is not None:
        return found
    if memo is not None:
        cached: Bools | None = memo.get(node)
        if cached is not None:
            return cached
    match node:
        case Compare(field=field, op=op, value=value):
            mask = _compare(batch, field, op, value)
        case In(field=field, values=values, negated=negated):
            mask = _in(batch, field, values, negated)
        case Exists(field=field) | Missing(field=field):
            column = batch.columns.get(field)
            present = column.present(batch.n) if column else np.zeros(batch.n, np.bool_)
            mask = present if isinstance(node, Exists) else ~present
        case And(operands=operands):
            mask = vector(operands[0], batch, results, memo, pure)
            for c in operands[1:]:
                mask = mask & vector(c, batch, results, memo, pure)
        case Or(operands=operands):
            mask = vector(operands[0], batch, results, memo, pure)
            for c in operands[1:]:
                mask = mask | vector(c, batch, results, memo, pure)
        case Not(operand=operand):
            mask = ~vector(operand, batch, results, memo, pure)
        case _:
            raise ValueError(f"a stateful condition has no result: {node!r}")
    if memo is not None and pure(node):
        memo[node] = mask
    return mask


def _compare(batch: Batch, field: str, op: str, value: Scalar) -> Bools:
    column = batch.columns.get(field)
    n = batch.n
    if column is None:
        return np.zeros(n, np.bool_)
    if op in _ORDER:
        if isinstance(value, float):
            if column.numbers is None:
                return np.zeros(n, np.bool_)
            return _ORDER[op](column.numbers, value)  # type: ignore[no-any-return]
        if column.codes is None:
            return np.zeros(n, np.bool_)
        compare = _ORDER[op]
        table = [type(v) is str and bool(compare(v, value)) for v in column.levels]
        ordered: Bools = np.array([*table, False], np.bool_)[column.codes]  # -1: the False
        return ordered
    equal = _equal(column, n, value)
    if op == "==":
        return equal
    return column.present(n) & ~equal


def _equal(column: Any, n: int, value: Scalar) -> Bools:
    if isinstance(value, float):
        if column.numbers is None:
            return np.zeros(n, np.bool_)
        return column.numbers == value  # type: ignore[no-any-return]
    code = column.code(value)
    if code < 0 or column.codes is None:
        return np.zeros(n, np.bool_)
    return column.codes == code  # type: ignore[no-any-return]


def _in(batch: Batch, field: str, values: tuple[Scalar, ...], negated: bool) -> Bools:
    column = batch.columns.get(field)
    n = batch.n
    if column is None:
        return np.zeros(n, np.bool_)
    mask = np.zeros(n, np.bool_)
    numbers = sorted({v for v in values if isinstance(v, float)})
    if numbers and column.numbers is not None:
        mask = mask | _any_equal(column.numbers, numbers)
    codes = sorted({column.code(v) for v in values if not isinstance(v, float)} - {-1})
    if codes and column.codes is not None:
        mask = mask | _any_equal(column.codes, codes)
    return column.present(n) & ~mask if negated else mask


def _any_equal(array: Any, values: list[Any]) -> Bools:
    """Where ``array`` holds one of ``values``: a few comparisons, or one table or isin."""
    if len(values) <= _FEW:
        mask: Bools = array == values[0]
        for value in values[1:]:
            mask = mask | (array == value)
        return mask
    return np.isin(array, values)
