"""Events as rules see them: flat records of scalar fields.

Rules:
    1. An event's fields are ``kind``, ``path`` and ``at``, plus every key of ``Event.data``.
       A data key named ``kind``, ``path`` or ``at`` is refused (:class:`EventFieldError`):
       it would shadow the event's own field, and renaming it silently would make rules read
       something other than what their author wrote.
    2. Values are scalars: ``str``, numbers, ``bool`` and ``None``. Every number is read as a
       float64 (``int`` converted, rounding to nearest); a NaN, an int beyond the float range,
       and any non-scalar value (a list, a map, bytes) count as *absent*: rules cannot see them,
       ``exists`` is false for them. ``bool`` is not a number. numpy scalars read as the Python
       scalar they stand for, a str subclass as its plain str.
    3. Both evaluation modes read fields through these rules (:func:`normalise` here and the
       column builders of ``_batch``), so they see the same values.
    4. Keys of windows and sequences (``by field``) compare as field values do: ``1`` and
       ``1.0`` are one key, ``true`` and ``1`` are two.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

import numpy as np

from vsm.effects import Event
from vsm.rules._ast import Scalar
from vsm.rules._errors import EventFieldError

__all__ = ["ABSENT", "OWN_FIELDS", "Flag", "fields_of", "key_of", "normalise", "row_of"]

OWN_FIELDS: Final = frozenset({"kind", "path", "at"})
"""The fields every event has, which ``Event.data`` may not shadow."""


class _Absent:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()
"""What :func:`normalise` returns for a value rules cannot see."""


def fields_of(event: Event) -> dict[str, Any]:
    """The fields of ``event`` as rules see them: ``kind``, ``path``, ``at`` and the data.

    Values rules cannot see (rule 2) are left out.

    Raises:
        EventFieldError: A data key is ``kind``, ``path`` or ``at``.
    """
    fields: dict[str, Any] = {"kind": event.kind, "path": event.path, "at": event.at}
    for name, value in event.data.items():
        if name in OWN_FIELDS:
            raise EventFieldError(
                name, value, f"Event.data may not hold {sorted(OWN_FIELDS)}: they are the event's"
            )
        if normalise(value) is not ABSENT:
            fields[name] = value
    return fields


def normalise(value: object) -> Scalar | _Absent:
    """A field's value as rules see it (rule 2), or :data:`ABSENT`."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value  # type: ignore[return-value]  # just checked
    if kind is float:
        return value if value == value else ABSENT  # type: ignore[return-value]  # a float
    if kind is int:
        try:
            return float(value)  # type: ignore[arg-type]  # an int
        except OverflowError:
            return ABSENT
    return _normalise_other(value)


def _normalise_other(value: object) -> Scalar | _Absent:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int | np.integer | float | np.floating):
        try:
            number = float(value)
        except OverflowError:
            return ABSENT
        return ABSENT if math.isnan(number) else number
    return ABSENT


def row_of(fields: Mapping[str, Any], names: Iterable[str] | None = None) -> dict[str, Scalar]:
    """The normalised fields of one event, only ``names`` if given, absent ones left out."""
    row: dict[str, Scalar] = {}
    if names is None:
        items: Iterable[tuple[str, Any]] = fields.items()
    else:
        items = ((name, fields[name]) for name in names if name in fields)
    for name, value in items:
        kind = type(value)
        if kind is str or kind is bool or (kind is float and value == value) or value is None:
            row[name] = value
        else:
            seen = normalise(value)
            if seen is not ABSENT:
                row[name] = seen  # type: ignore[assignment]  # ABSENT excluded just above
    return row


class Flag:
    """The key a boolean field value gives (so ``true`` and ``1.0`` stay two keys)."""

    __slots__ = ("value",)

    def __init__(self, value: bool) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Flag) and other.value == self.value

    def __hash__(self) -> int:
        return hash((Flag, self.value))

    def __repr__(self) -> str:
        return f"Flag({self.value!r})"


_TRUE, _FALSE = Flag(True), Flag(False)


def key_of(value: Scalar) -> object:
    """The key of a normalised field value, for windows and sequences ``by`` a field."""
    if value is True:
        return _TRUE
    if value is False:
        return _FALSE
    return value
