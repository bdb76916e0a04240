"""Hypothesis strategies for the tests, and the small runners that turn draws into states.

Dot-based CRDTs are only meaningful in the states their mutators can reach, so states are
never drawn directly: a *history* (random operations on 2-4 replicas, with occasional full-state
syncs and delta deliveries) is drawn and run, and its replicas, deltas and intermediate
snapshots are the states the properties use. A history's steps do not depend on the CRDT that
runs them, so one history can drive a CRDT and a naive reference model side by side.

Registry histories work the same way over :class:`~vsm.registry.CapabilityRegistry` replicas.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from random import Random
from typing import Any

from hypothesis import note
from hypothesis import strategies as st

from vsm.crdt import HLC, GCounter, LWWRegister, ORMap, ORSet, PNCounter, Stamp
from vsm.registry import Advert, CapabilityRegistry, RegistryDelta

# ---------------------------------------------------------------- plain values

REPLICAS = ("r0", "r1", "r2", "r3")
"""Replica ids; a history with n replicas uses the first n."""

MSGPACK_INTS = st.integers(-(2**63), 2**64 - 1)
"""Every int msgpack can carry."""

KEYS = ("a", "b", "", -1, 0, 1, b"a", b"", (), ("a",), (0, "a"), ("a", 0), (b"", ("b",)))
keys = st.sampled_from(KEYS)
"""ORSet elements: str, int, bytes and tuples of those, from a small domain so they collide."""

MAP_KEYS = ("x", "y", 0, b"x", ("x", 0))
map_keys = st.sampled_from(MAP_KEYS)
"""ORMap keys: few, so updates and removes meet on the same key."""

VALUES = (0, 1, -1, "a", "", "ab", b"a", b"", [0, 1], [])
lww_values = st.sampled_from(VALUES)
"""Register values whose ``==`` agrees with their msgpack bytes (no 1 == 1.0 == True)."""


scalars = (
    st.none()
    | st.booleans()
    | MSGPACK_INTS
    | st.floats(allow_nan=False)
    | st.text(max_size=4)
    | st.binary(max_size=4)
)

plain_data = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=4) | st.integers(-2, 2), inner, max_size=3)
    ),
    max_leaves=8,
)
"""Garbage: any msgpack-ready plain data (no NaN: it is not equal to itself)."""


def shaped_garbage(tag: str | None, fields: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts with exactly ``fields`` holding garbage (``type`` usually ``tag``)."""
    shape: dict[str, st.SearchStrategy[Any]] = {name: plain_data for name in fields}
    if tag is not None and "type" in fields:
        shape["type"] = st.just(tag) | plain_data
    return st.fixed_dictionaries(shape)


# ---------------------------------------------------------------- mutating plain data

Path = tuple[int | str, ...]


def _paths(data: Any, here: Path = ()) -> list[Path]:
    found = [here]
    if isinstance(data, list):
        for i, item in enumerate(data):
            found += _paths(item, (*here, i))
    elif isinstance(data, dict):
        for name, item in data.items():
            found += _paths(item, (*here, name))
    return found


def _at(data: Any, path: Path) -> Any:
    for step in path:
        data = data[step]
    return data


EDITS = ("replace", "bool", "wrap", "drop", "duplicate")

edits = st.tuples(
    st.integers(0, 2**16), st.sampled_from(EDITS), scalars | st.lists(scalars, max_size=3)
)
"""``(where, how, garbage)`` for :func:`edited`."""


def edited(data: Any, where: int, how: str, garbage: Any) -> Any:
    """A copy of ``data`` with one edit at node ``where`` (modulo the number of nodes).

    ``how``: replace the node with ``garbage`` or with a bool, wrap it in a list, drop it from
    its container, or duplicate it in its list (the last two replace it at the root).
    """
    out = copy.deepcopy(data)
    paths = _paths(out)
    path = paths[where % len(paths)]
    new = {"replace": garbage, "bool": where % 2 == 0, "wrap": [_at(out, path)]}.get(how, garbage)
    if not path:
        return new
    parent, last = _at(out, path[:-1]), path[-1]
    if how == "drop":
        del parent[last]
    elif how == "duplicate" and isinstance(parent, list):
        assert isinstance(last, int)
        parent.insert(last, copy.deepcopy(parent[last]))
    else:
        parent[last] = new
    return out


# ---------------------------------------------------------------- CRDT kinds and histories

Op = tuple[Any, ...]


class Kind:
    """One CRDT under test: how to make an empty state and how to run one operation on it.

    Attributes:
        name: Test id.
        empty: Builds the bottom state.
        domain: Every operation (plain data, independent of any state), simplest first.
        perform: ``perform(state, replica, clock, op)`` mutates ``state`` in place and returns
            the delta.
        decode: The class-specific ``from_data``.
    """

    __slots__ = ("decode", "domain", "empty", "name", "perform")

    def __init__(
        self,
        name: str,
        empty: Callable[[], Any],
        domain: tuple[Op, ...],
        perform: Callable[[Any, str, HLC, Op], Any],
        decode: Callable[[Any], Any],
    ) -> None:
        self.name = name
        self.empty = empty
        self.domain = domain
        self.perform = perform
        self.decode = decode

    @property
    def ops(self) -> st.SearchStrategy[Op]:
        """Draws one operation."""
        return st.sampled_from(self.domain)

    def __repr__(self) -> str:
        return self.name


def _lww(state: Any, replica: str, clock: HLC, op: Op) -> Any:
    _, value, wall = op
    return state.set(value, clock.now(wall))


def _gcounter(state: Any, replica: str, clock: HLC, op: Op) -> Any:
    return state.increment(replica, op[1])


def _pncounter(state: Any, replica: str, clock: HLC, op: Op) -> Any:
    name, by = op
    return state.increment(replica, by) if name == "inc" else state.decrement(replica, by)


def _orset(state: Any, replica: str, clock: HLC, op: Op) -> Any:
    name, element = op
    return state.add(replica, element) if name == "add" else state.remove(element)


ValueMaker = Callable[[Any, str, HLC, Op], Any]


def _ormap(make_value: ValueMaker) -> Callable[[Any, str, HLC, Op], Any]:
    def perform(state: Any, replica: str, clock: HLC, op: Op) -> Any:
        if op[0] == "remove":
            return state.remove(op[1])
        key = op[1]
        return state.update(replica, key, make_value(state.get(key), replica, clock, op))

    return perform


def _lww_value(current: Any, replica: str, clock: HLC, op: Op) -> Any:
    return LWWRegister(op[2], clock.now(op[3]))


def _gcounter_value(current: Any, replica: str, clock: HLC, op: Op) -> Any:
    # The delta of an increment of the current value, as a user of the map would write it.
    return (current or GCounter()).increment(replica, op[2])


def _orset_value(current: Any, replica: str, clock: HLC, op: Op) -> Any:
    inner = current or ORSet()
    return inner.add(replica, op[2]) if op[0] == "add" else inner.remove(op[2])


WALLS = range(10)
AMOUNTS = (1, 0, 2, 3)


def _ormap_domain(writes: list[Op]) -> tuple[Op, ...]:
    """Every write, and a remove of each map key."""
    return tuple([("remove", k) for k in MAP_KEYS] + writes)


LWW = Kind(
    "lww",
    LWWRegister,
    tuple(("set", v, w) for w in WALLS for v in VALUES),
    _lww,
    LWWRegister.from_data,
)
GCOUNTER = Kind(
    "gcounter", GCounter, tuple(("inc", n) for n in AMOUNTS), _gcounter, GCounter.from_data
)
PNCOUNTER = Kind(
    "pncounter",
    PNCounter,
    tuple((name, n) for n in AMOUNTS for name in ("inc", "dec")),
    _pncounter,
    PNCounter.from_data,
)
ORSET = Kind(
    "orset",
    ORSet,
    tuple((name, k) for k in KEYS for name in ("add", "remove")),
    _orset,
    ORSet.from_data,
)
ORMAP_LWW = Kind(
    "ormap-lww",
    ORMap,
    _ormap_domain([("set", k, v, w) for w in WALLS for v in VALUES for k in MAP_KEYS]),
    _ormap(_lww_value),
    ORMap.from_data,
)
ORMAP_GCOUNTER = Kind(
    "ormap-gcounter",
    ORMap,
    _ormap_domain([("inc", k, n) for n in AMOUNTS for k in MAP_KEYS]),
    _ormap(_gcounter_value),
    ORMap.from_data,
)
ORMAP_ORSET = Kind(
    "ormap-orset",
    ORMap,
    _ormap_domain([(name, k, e) for e in KEYS for k in MAP_KEYS for name in ("add", "discard")]),
    _ormap(_orset_value),
    ORMap.from_data,
)

KINDS = (LWW, GCOUNTER, PNCOUNTER, ORSET, ORMAP_LWW, ORMAP_GCOUNTER, ORMAP_ORSET)
DOT_KINDS = (ORSET, ORMAP_LWW, ORMAP_GCOUNTER, ORMAP_ORSET)

Step = tuple[Any, ...]
"""A decoded step: ``("op", i, op)``, ``("sync", i, j)`` (replica i merges j's full state) or
``("deliver", i, k)`` (replica i applies delta number ``k`` modulo the deltas made so far)."""

Plan = bytes
"""A history, encoded: the first byte picks 2-4 replicas, each later pair of bytes is a step code
(see :func:`decode_step`)."""

plans = st.binary(min_size=1, max_size=21)
"""Histories of up to 10 steps, kind-agnostic so they combine with ``pytest.mark.parametrize``.

A plan is drawn as one byte string and decoded by the runner: hypothesis draws are what a test
pays for, and one draw per history keeps a few thousand examples per test file affordable.
Bytes shrink towards zero and towards shorter strings: fewer steps, the simplest operations.
"""


def _codes(plan: bytes, start: int) -> list[int]:
    """The big-endian 16-bit numbers in ``plan`` from ``start`` (an odd last byte is spare)."""
    return [int.from_bytes(plan[k : k + 2], "big") for k in range(start, len(plan) - 1, 2)]


def decode_step(code: int, replicas: int, domain: tuple[Op, ...]) -> Step:
    """Turn a step code into a step: half operations, a quarter syncs, a quarter deliveries."""
    what, i, arg = code % 4, (code // 4) % replicas, code // 16
    if what < 2:
        return ("op", i, domain[arg % len(domain)])
    if what == 2:
        return ("sync", i, (i + 1 + arg % (replicas - 1)) % replicas)
    return ("deliver", i, arg)


@dataclasses.dataclass
class History:
    """What running a history left behind.

    Attributes:
        replicas: The final state of each replica.
        deltas: ``(origin, delta)`` for every operation, in the order they happened.
        snapshots: A copy of the touched replica after every step.
    """

    replicas: list[Any]
    deltas: list[tuple[int, Any]]
    snapshots: list[Any]

    @property
    def states(self) -> list[Any]:
        """Every reachable state the history produced (deltas are states too)."""
        return [*self.replicas, *(d for _, d in self.deltas), *self.snapshots]

    def pick(self, index: int) -> Any:
        """One of :attr:`states`, by an index taken modulo their number."""
        states = self.states
        return states[index % len(states)]


def run_history(kind: Kind, plan: Plan) -> History:
    """Run ``plan`` on fresh states of ``kind`` (its decoded steps go into hypothesis' notes)."""
    replicas = 2 + plan[0] % 3
    steps = [decode_step(code, replicas, kind.domain) for code in _codes(plan, 1)]
    note(f"{kind.name} history over {replicas} replicas: {steps}")
    states = [kind.empty() for _ in range(replicas)]
    clocks = [HLC(REPLICAS[i]) for i in range(replicas)]
    deltas: list[tuple[int, Any]] = []
    snapshots: list[Any] = []
    for what, i, arg in steps:
        if what == "op":
            deltas.append((i, kind.perform(states[i], REPLICAS[i], clocks[i], arg)))
        elif what == "sync":
            states[i] = states[i].merge(states[arg])
            clocks[i].observe(clocks[arg].last, 0)
        elif deltas:
            states[i].apply(deltas[arg % len(deltas)][1])
        snapshots.append(states[i].copy())
    return History(states, deltas, snapshots)


def histories(kind: Kind) -> st.SearchStrategy[History]:
    """Histories of one kind, already run."""
    return plans.map(lambda plan: run_history(kind, plan))


indices = st.integers(0, 2**16)
"""Picks an item of a list whose length is not known yet (taken modulo the length)."""


seeds = st.integers(0, 2**32 - 1)
"""Seeds for :func:`reordered` (one draw, where shuffling through ``st.randoms()`` takes many)."""


def reordered(items: list[Any], rnd: Random) -> list[Any]:
    """``items`` in a random order, some of them repeated."""
    out = [*items, *(rnd.choices(items, k=rnd.randint(0, len(items))) if items else [])]
    rnd.shuffle(out)
    return out


# ---------------------------------------------------------------- the registry

PROVIDERS = ("root/a", "root/b", "root/c")
CAPABILITIES = ("cap.x", "cap.y", "cap.z")
ZONES = ("default", "eu")
COSTS = (0.0, 0.5, 1.0, 2.0)
HORIZON_MS = 500
START_MS = 1_000

LEASES = (1_000, 0, 100, 300, 600, 2_000)
"""How long after ``now`` an advert's lease runs (the first is the simplest: comfortably live)."""

TICKS = (0, 50, 200, 500, 800)


def make_advert(provider: str, capability: str, cost: float, zone: str, lease: int) -> Advert:
    """An advert whose endpoint and description say who wrote it."""
    return Advert(
        capability,
        provider,
        endpoint=f"{provider}#{capability}",
        cost=cost,
        zone=zone,
        description=f"{capability} by {provider}",
        lease_expires_ms=lease,
    )


RegistryPlan = bytes
"""A registry history, encoded like :data:`Plan`: the first byte picks 2-3 replicas and 1, 2, 3
or 64 digest buckets, each later pair of bytes is a step (see :func:`decode_registry_step`)."""

registry_plans = st.binary(min_size=1, max_size=33)
"""Registry histories of up to 16 steps."""


def decode_registry_step(code: int, replicas: int) -> Step:
    """Turn a step code into a registry step.

    The steps: ``("advertise", i, capability, cost, zone, lease)``, ``("withdraw", i,
    capability)``, ``("deliver", i, k)``, ``("tick", ms)``, ``("collect", i)`` and
    ``("restart", i)`` (the replica starts again, empty, under its next epoch).
    """
    what, rest = code % 9, code // 9
    i, rest = rest % replicas, rest // replicas
    if what < 3:
        capability, rest = CAPABILITIES[rest % 3], rest // 3
        cost, rest = COSTS[rest % len(COSTS)], rest // len(COSTS)
        zone, rest = ZONES[rest % 2], rest // 2
        return ("advertise", i, capability, cost, zone, LEASES[rest % len(LEASES)])
    if what == 3:
        return ("withdraw", i, CAPABILITIES[rest % 3])
    if what < 6:
        return ("deliver", i, rest)
    if what == 6:
        return ("tick", TICKS[rest % len(TICKS)])
    if what == 7:
        return ("collect", i)
    return ("restart", i)


@dataclasses.dataclass
class RegistryHistory:
    """What running a registry history left behind.

    Attributes:
        replicas: The replicas (``PROVIDERS[i]`` owns the i-th).
        deltas: ``(origin, delta)`` for every advertise and withdraw, in order.
        now: The time the history ended at.
        written: Every advert written, in order.
    """

    replicas: list[CapabilityRegistry]
    deltas: list[tuple[int, RegistryDelta]]
    now: int
    written: list[Advert]


def run_registry_history(plan: RegistryPlan) -> RegistryHistory:
    """Run ``plan`` on fresh registries owned by the first providers (steps noted)."""
    replicas, buckets = 2 + plan[0] % 2, (1, 2, 3, 64)[plan[0] // 2 % 4]
    steps = [decode_registry_step(code, replicas) for code in _codes(plan, 1)]
    note(f"registry history over {replicas} replicas, {buckets} buckets: {steps}")

    def start(i: int, epoch: int) -> CapabilityRegistry:
        return CapabilityRegistry(PROVIDERS[i], horizon_ms=HORIZON_MS, buckets=buckets, epoch=epoch)

    regs = [start(i, 0) for i in range(replicas)]
    epochs = [0] * replicas
    deltas: list[tuple[int, RegistryDelta]] = []
    written: list[Advert] = []
    now = START_MS
    for step in steps:
        if step[0] == "tick":
            now += step[1]
            continue
        i = step[1]
        reg = regs[i]
        if step[0] == "advertise":
            _, _, capability, cost, zone, lease = step
            advert = make_advert(reg.replica, capability, cost, zone, now + lease)
            deltas.append((i, reg.advertise(advert, now)))
            written.append(advert)
        elif step[0] == "withdraw":
            delta = reg.withdraw(step[2], now)
            if delta is not None:
                deltas.append((i, delta))
                written += delta.adverts()
        elif step[0] == "deliver":
            if deltas:
                reg.apply(deltas[step[2] % len(deltas)][1], now)
        elif step[0] == "collect":
            reg.collect(now)
        else:
            epochs[i] += 1
            regs[i] = start(i, epochs[i])
    return RegistryHistory(regs, deltas, now, written)


registry_histories = registry_plans.map(run_registry_history)
"""Registry histories, already run."""


stamps = st.builds(Stamp, st.integers(0, 2), st.integers(0, 1), st.sampled_from(["r0", "r1"]))
"""Stamps from a tiny domain, so that distinct writes collide on the same stamp."""

registers = st.just(LWWRegister()) | st.builds(
    LWWRegister, st.integers(-2, 2) | st.text(alphabet="ab", max_size=2), stamps
)
"""Arbitrary registers, including the ones a misbehaving writer makes (equal stamps)."""
