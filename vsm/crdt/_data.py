"""Deterministic plain data: the bridge between CRDT states and msgpack.

Rules:
    1. A *key* (an ORSet element, an ORMap key) is ``str``, ``int``, ``bytes`` or a tuple of
       keys. ``bool`` and ``float`` are refused: ``True == 1`` and ``0.0 == -0.0`` would make
       two different keys collide in a dict.
    2. In plain data a tuple becomes a list; decoding turns lists back into tuples. Lists are
       never keys, so the mapping is unambiguous.
    3. Collections are written sorted by the msgpack bytes of their items, so equal states give
       equal data and equal bytes whatever order they were built in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import msgpack

from vsm.errors import MalformedDataError

__all__ = [
    "Key",
    "canonical",
    "check_tag",
    "fits_msgpack",
    "key_from_plain",
    "key_to_plain",
    "pack",
    "require",
    "sort_by_bytes",
]

Key = str | int | bytes | tuple[Any, ...]
"""What may key an ORSet or ORMap (a tuple holds keys in its turn)."""

T = TypeVar("T")


def fits_msgpack(n: int) -> bool:
    """Whether msgpack can carry the int ``n`` (from -2**63 up to 2**64 - 1)."""
    return -(2**63) <= n < 2**64


def pack(data: object) -> bytes:
    """Encode plain data with msgpack (binary strings kept distinct from text)."""
    return msgpack.packb(data, use_bin_type=True)


def key_to_plain(key: object) -> Any:
    """Return ``key`` as plain data, refusing what cannot be a key.

    Raises:
        TypeError: ``key`` is not a str, int, bytes or tuple of those.
    """
    if isinstance(key, str | bytes) or (type(key) is int and fits_msgpack(key)):
        return key
    if isinstance(key, tuple):
        return [key_to_plain(part) for part in key]
    raise TypeError(
        "a key must be str, int (within msgpack's 64-bit range), bytes or a tuple of those, "
        f"got {type(key).__name__}: {key!r}"
    )


def key_from_plain(data: object, what: str, path: str) -> Key:
    """Rebuild a key from plain data.

    Raises:
        MalformedDataError: ``data`` is not a valid plain key.
    """
    if isinstance(data, str | bytes) or (type(data) is int and fits_msgpack(data)):
        return data
    if isinstance(data, list):
        return tuple(key_from_plain(part, what, path) for part in data)
    raise MalformedDataError(what, path, "expected a str, int, bytes or list key", data)


def canonical(value: object) -> Any:
    """Return ``value`` as canonical plain data (tuples as lists, dict keys sorted).

    Objects with a ``to_data()`` method are converted through it.

    Raises:
        TypeError: ``value`` holds something msgpack cannot carry.
    """
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return value
    if isinstance(value, list | tuple):
        return [canonical(item) for item in value]
    if isinstance(value, dict):
        items = [(canonical(k), canonical(v)) for k, v in value.items()]
        items.sort(key=lambda kv: pack(kv[0]))
        return dict(items)
    to_data = getattr(value, "to_data", None)
    if callable(to_data):
        return canonical(to_data())
    raise TypeError(f"cannot encode a value of type {type(value).__name__}: {value!r}")


def sort_by_bytes(items: Iterable[T], key: Callable[[T], object]) -> list[T]:
    """Sort ``items`` by the msgpack bytes of ``key(item)``: a total, stable, typed order."""
    return sorted(items, key=lambda item: pack(key(item)))


def require(data: object, what: str, fields: tuple[str, ...]) -> dict[str, Any]:
    """Check that ``data`` is a dict holding exactly ``fields``.

    Raises:
        MalformedDataError: ``data`` is not such a dict.
    """
    if not isinstance(data, dict):
        raise MalformedDataError(what, "", "expected a dict", data)
    missing = [f for f in fields if f not in data]
    extra = [f for f in data if f not in fields]
    if missing or extra:
        raise MalformedDataError(
            what, "", f"expected fields {list(fields)}; missing {missing}, unexpected {extra}", data
        )
    return data


def check_tag(data: dict[str, Any], what: str, tag: str) -> None:
    """Check that ``data["type"] == tag``.

    Raises:
        MalformedDataError: the tag names another type.
    """
    if data["type"] != tag:
        raise MalformedDataError(what, "type", f"expected {tag!r}", data["type"])
