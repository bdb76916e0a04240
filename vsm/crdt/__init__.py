"""Delta-state CRDTs and the hybrid logical clock.

Every CRDT here offers ``merge(other)`` (a pure join: neither input changes), ``apply(delta)``
(the same join, in place), mutators that change the state in place and return the delta to ship,
``copy()``, ``to_data()`` and ``from_data(data)`` (deterministic plain data, ready for msgpack).
Merge is commutative, associative and idempotent; applying a delta equals merging it.
"""

from vsm.crdt._codec import from_data
from vsm.crdt._context import CausalContext, Dot
from vsm.crdt._counters import GCounter, PNCounter
from vsm.crdt._data import Key, pack
from vsm.crdt._hlc import HLC, Stamp
from vsm.crdt._lww import LWWRegister
from vsm.crdt._ormap import Mergeable, ORMap
from vsm.crdt._orset import ORSet

__all__ = [
    "HLC",
    "CausalContext",
    "Dot",
    "GCounter",
    "Key",
    "LWWRegister",
    "Mergeable",
    "ORMap",
    "ORSet",
    "PNCounter",
    "Stamp",
    "from_data",
    "pack",
]
