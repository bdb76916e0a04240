"""Addresses: where a message goes.

Every viable system has a path (``root``, ``root/billing``, ``root/billing/eu``); its depth is
the number of segments minus one. A message goes to one System of one viable system: an
:class:`Address` ``(path, system)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Address", "SystemId", "check_path", "depth", "is_within", "parent_of"]

_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


class SystemId(StrEnum):
    """The five Systems of a viable system."""

    S1 = "S1"
    S2 = "S2"
    S3 = "S3"
    S4 = "S4"
    S5 = "S5"


@dataclass(frozen=True, slots=True)
class Address:
    """One System of one viable system."""

    path: str
    system: SystemId

    def __str__(self) -> str:
        return f"{self.path}#{self.system}"


def check_path(path: str) -> str:
    """Return ``path`` if it is a valid path, else raise ``ValueError`` naming the bad segment."""
    if not isinstance(path, str) or not path:
        raise ValueError(f"a path is a non-empty str like 'root/billing', got {path!r}")
    for segment in path.split("/"):
        if not _SEGMENT.fullmatch(segment):
            raise ValueError(
                f"bad path segment {segment!r} in {path!r}: segments are 1-63 characters of "
                "letters, digits, '_', '.', '-', starting with a letter or digit"
            )
    return path


def depth(path: str) -> int:
    """Depth of ``path``: ``root`` is 0, ``root/a`` is 1."""
    return path.count("/")


def parent_of(path: str) -> str | None:
    """The parent's path, or ``None`` for a root."""
    head, sep, _ = path.rpartition("/")
    return head if sep else None


def is_within(path: str, ancestor: str) -> bool:
    """Whether ``path`` is ``ancestor`` or lies below it."""
    return path == ancestor or path.startswith(ancestor + "/")
