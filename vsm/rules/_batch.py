"""Columnar batches: many events' fields as numpy arrays, for the vectorised evaluator.

Rules:
    1. A :class:`Batch` holds ``n`` events as one :class:`Column` per field. A column has two
       parts, either of which may be ``None`` when no event has such a value:

       - ``numbers``: float64, the field's value where it is a number, NaN elsewhere (absent,
         or not a number);
       - ``codes``: indices into ``levels`` (the distinct strings, booleans and ``None`` of
         the column), -1 elsewhere; int16 while there are fewer than 32,767 levels (less
         memory to stream through), wider beyond.

       A field is present in an event where ``numbers`` is not NaN or ``codes`` is >= 0.
    2. Values are read by the rules of :mod:`vsm.rules._fields`, so a batch sees exactly what
       the one-event evaluator sees.
    3. :func:`columns_of` builds a batch from field dicts (or events) and keeps the rows, so a
       match can hand back the event's fields as given; :meth:`Batch.from_arrays` builds one
       from arrays you already have: numeric arrays are numbers (NaN for absent), bool arrays
       booleans, str arrays strings, object arrays any mix (a float NaN for absent).
    4. Categorical codes make string comparisons cheap: ``kind == "x"`` compares int codes, and
       ordering or membership looks each level up once, then indexes a table by the codes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from vsm.effects import Event
from vsm.rules._ast import Scalar
from vsm.rules._fields import ABSENT, fields_of, normalise

__all__ = ["Batch", "Column", "Events", "as_batch", "columns_of"]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Codes = npt.NDArray[np.signedinteger[Any]]
Bools = npt.NDArray[np.bool_]

_NAN = float("nan")


class Column:
    """One field of a batch (rule 1).

    Attributes:
        numbers: The numbers, NaN elsewhere; ``None`` if there are none.
        codes: Indices into ``levels``, -1 elsewhere; ``None`` if there are no other values.
        levels: The distinct strings, booleans and ``None`` values.
    """

    __slots__ = ("_present", "codes", "index", "levels", "numbers")

    def __init__(self, numbers: Floats | None, codes: Codes | None, levels: list[Scalar]) -> None:
        self.numbers = numbers
        self.codes = None if codes is None else codes.astype(_code_type(len(levels)), copy=False)
        self.levels = levels
        self.index: dict[object, int] = {_level_key(v): i for i, v in enumerate(levels)}
        self._present: Bools | None = None

    def code(self, value: Scalar) -> int:
        """The code of a string, boolean or ``None`` value; -1 if no event holds it."""
        return self.index.get(_level_key(value), -1)

    def present(self, n: int) -> Bools:
        """Where the field is present (cached: treat it as read-only)."""
        if self._present is None:
            mask = np.zeros(n, dtype=np.bool_)
            if self.numbers is not None:
                mask |= ~np.isnan(self.numbers)
            if self.codes is not None:
                mask |= self.codes >= 0
            self._present = mask
        return self._present

    def value(self, i: int) -> Scalar | object:
        """The value of event ``i``, or :data:`~vsm.rules._fields.ABSENT`."""
        if self.numbers is not None and not np.isnan(self.numbers[i]):
            return float(self.numbers[i])
        if self.codes is not None and self.codes[i] >= 0:
            return self.levels[int(self.codes[i])]
        return ABSENT


def _code_type(levels: int) -> type[np.signedinteger[Any]]:
    if levels < 2**15 - 1:
        return np.int16
    return np.int32 if levels < 2**31 - 1 else np.int64


def _level_key(value: object) -> object:
    # True == 1 and hash alike; no number is ever a level, but keep bools apart from anything.
    return (bool, value) if isinstance(value, bool) else value


class Batch:
    """``n`` events as columns (rule 1); build one with :func:`columns_of` or :meth:`from_arrays`.

    Attributes:
        n: How many events.
        columns: One column per field.
        rows: The events' fields as given to :func:`columns_of`, or ``None``.
    """

    __slots__ = ("columns", "n", "rows")

    def __init__(
        self,
        n: int,
        columns: Mapping[str, Column],
        rows: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"Batch.n must be an int >= 0, got {n!r}")
        for name, column in columns.items():
            for part in (column.numbers, column.codes):
                if part is not None and part.shape != (n,):
                    raise ValueError(f"column {name!r} has shape {part.shape}, expected ({n},)")
        self.n = n
        self.columns = dict(columns)
        self.rows = rows

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.NDArray[Any]], n: int) -> Batch:
        """A batch from one array per field (rule 3).

        Raises:
            ValueError: An array is not one-dimensional of length ``n``, or of an unreadable
                dtype (complex, bytes, datetime...).
        """
        columns: dict[str, Column] = {}
        for name, array in arrays.items():
            array = np.asarray(array)
            if array.shape != (n,):
                raise ValueError(f"array {name!r} has shape {array.shape}, expected ({n},)")
            columns[name] = _column_of_array(name, array)
        return cls(n, columns)

    def row(self, i: int) -> Mapping[str, Any]:
        """The fields of event ``i``: the row as given, or rebuilt from the columns."""
        if self.rows is not None:
            return self.rows[i]
        row = {}
        for name, column in self.columns.items():
            value = column.value(i)
            if value is not ABSENT:
                row[name] = value
        return row

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"Batch(n={self.n}, fields={sorted(self.columns)})"


def columns_of(events: Iterable[Mapping[str, Any] | Event]) -> Batch:
    """A batch from events or their field dicts (``fields_of`` is applied to events).

    Raises:
        EventFieldError: An event's data shadows ``kind``, ``path`` or ``at``.
    """
    rows = [fields_of(e) if isinstance(e, Event) else e for e in events]
    names = sorted(set().union(*rows)) if rows else []
    columns = {}
    for name in names:
        values = [row.get(name, _NAN) for row in rows]
        columns[name] = _column_of_values(values)
    return Batch(len(rows), columns, rows)


def _column_of_values(values: list[Any]) -> Column:
    kinds = set(map(type, values))
    if kinds <= {float, int}:
        try:
            return Column(np.array(values, dtype=np.float64), None, [])
        except OverflowError:
            pass  # an int beyond the float range: the general path reads it as absent
    elif kinds <= {str, float}:
        index: dict[str, int] = {}
        codes = [index.setdefault(v, len(index)) if type(v) is str else -1 for v in values]
        numbers = None
        if float in kinds:
            floats = np.array([v if type(v) is float else _NAN for v in values], np.float64)
            numbers = floats if not np.isnan(floats).all() else None
        return Column(numbers, np.array(codes, dtype=np.int64), list(index))
    return _column_general(values)


def _column_general(values: Iterable[Any]) -> Column:
    numbers: list[float] = []
    codes: list[int] = []
    index: dict[object, int] = {}
    levels: list[Scalar] = []
    for raw in values:
        value = normalise(raw)
        if value is ABSENT:
            numbers.append(_NAN)
            codes.append(-1)
        elif type(value) is float:
            numbers.append(value)
            codes.append(-1)
        else:
            key = _level_key(value)
            code = index.get(key)
            if code is None:
                code = index[key] = len(levels)
                levels.append(value)  # type: ignore[arg-type]  # a str, bool or None
            numbers.append(_NAN)
            codes.append(code)
    floats = np.array(numbers, dtype=np.float64)
    return Column(
        floats if not np.isnan(floats).all() else None,
        np.array(codes, dtype=np.int64) if levels else None,
        levels,
    )


def _column_of_array(name: str, array: npt.NDArray[Any]) -> Column:
    kind = array.dtype.kind
    if kind in "iuf":
        return Column(array.astype(np.float64), None, [])
    if kind == "b":
        return Column(None, array.astype(np.int64), [False, True])
    if kind == "U":
        levels, inverse = np.unique(array, return_inverse=True)
        return Column(None, inverse.astype(np.int64).reshape(-1), [str(v) for v in levels])
    if kind == "O":
        return _column_general(array.tolist())
    raise ValueError(f"array {name!r} has dtype {array.dtype}, which rules cannot read")


Events = Batch | Mapping[str, npt.NDArray[Any]] | Sequence[Mapping[str, Any] | Event]
"""What the batch evaluators take: a batch, arrays by field, or events (or their fields)."""


def as_batch(events: Events, n: int | None = None) -> Batch:
    """``events`` as a :class:`Batch`.

    A batch is taken as given; arrays by field make one with :meth:`Batch.from_arrays` (``n``
    events, read from the arrays when ``None``); events or field dicts with :func:`columns_of`.

    Raises:
        ValueError: Arrays of different lengths, or not of ``n``.
    """
    if isinstance(events, Batch):
        return events
    if isinstance(events, Mapping):
        if n is None:
            lengths = {len(a) for a in events.values()}
            if len(lengths) > 1:
                raise ValueError(f"arrays of different lengths: {sorted(lengths)}")
            n = lengths.pop() if lengths else 0
        return Batch.from_arrays(events, n)
    return columns_of(events)
