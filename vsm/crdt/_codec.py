"""Decode any CRDT from plain data by its ``type`` tag."""

from __future__ import annotations

from typing import Any

from vsm.crdt._counters import GCounter, PNCounter
from vsm.crdt._lww import LWWRegister
from vsm.crdt._ormap import ORMap
from vsm.crdt._orset import ORSet
from vsm.errors import MalformedDataError

__all__ = ["from_data"]

_DECODERS: dict[str, Any] = {
    LWWRegister.TAG: LWWRegister.from_data,
    GCounter.TAG: GCounter.from_data,
    PNCounter.TAG: PNCounter.from_data,
    ORSet.TAG: ORSet.from_data,
    ORMap.TAG: ORMap.from_data,
}


def from_data(data: object) -> Any:
    """Rebuild whichever CRDT ``data`` describes (by its ``type`` tag).

    Raises:
        MalformedDataError: ``data`` carries no known tag, or is malformed.
    """
    tag = data.get("type") if isinstance(data, dict) else None
    decoder = _DECODERS.get(tag) if isinstance(tag, str) else None
    if decoder is None:
        raise MalformedDataError("CRDT", "type", f"expected one of {sorted(_DECODERS)}", tag)
    return decoder(data)
