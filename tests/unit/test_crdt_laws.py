"""The lattice laws and the add-wins semantics of every CRDT, on states histories can reach.

The law properties run for each kind in ``KINDS``: LWWRegister, GCounter, PNCounter, ORSet, and
ORMap with LWWRegister, GCounter and ORSet values. States come from random histories over 2-4
replicas (see ``tests/strategies.py``); arbitrary states mean nothing for dot-based types.
"""

from __future__ import annotations

import functools
from random import Random
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import (
    DOT_KINDS,
    KINDS,
    ORMAP_GCOUNTER,
    ORMAP_LWW,
    ORMAP_ORSET,
    ORSET,
    REPLICAS,
    Kind,
    Plan,
    histories,
    indices,
    keys,
    map_keys,
    plans,
    registers,
    reordered,
    run_history,
    seeds,
)
from vsm import crdt
from vsm.crdt import HLC, ORSet, Stamp, pack

every_kind = pytest.mark.parametrize("kind", KINDS, ids=repr)
map_kinds = pytest.mark.parametrize("kind", [ORMAP_LWW, ORMAP_GCOUNTER, ORMAP_ORSET], ids=repr)
some_ops = st.lists(indices, min_size=1, max_size=3)


def wire(state: Any) -> bytes:
    """The msgpack bytes of a state: equal states must give equal bytes."""
    return pack(state.to_data())


def join(states: list[Any]) -> Any:
    return functools.reduce(lambda a, b: a.merge(b), states)


def perform(kind: Kind, state: Any, ops: list[int]) -> None:
    """Run some operations on ``state`` in place, as a replica outside the history would."""
    clock = HLC("r-extra")
    for op in ops:
        kind.perform(state, "r-extra", clock, kind.domain[op % len(kind.domain)])


# ---------------------------------------------------------------- lattice laws


@every_kind
@given(plan=plans, i=indices, j=indices, k=indices)
def test_merge_is_a_join(kind: Kind, plan: Plan, i: int, j: int, k: int) -> None:
    """Merge is commutative, associative and idempotent, down to the serialised bytes."""
    history = run_history(kind, plan)
    a, b, c = history.pick(i), history.pick(j), history.pick(k)
    ab = a.merge(b)
    # commutative
    assert ab == b.merge(a)
    assert wire(ab) == wire(b.merge(a))
    # associative
    left, right = ab.merge(c), a.merge(b.merge(c))
    assert left == right
    assert wire(left) == wire(right)
    # idempotent, with the bottom as identity
    assert a.merge(a) == a
    assert ab.merge(a) == ab
    assert ab.merge(b) == ab
    assert a.merge(kind.empty()) == a
    assert kind.empty().merge(a) == a


@every_kind
@given(plan=plans, i=indices, j=indices, ops=some_ops)
def test_merge_and_copy_leave_their_inputs_alone(
    kind: Kind, plan: Plan, i: int, j: int, ops: list[int]
) -> None:
    """Merge changes neither input; results and copies share nothing mutable with the inputs."""
    history = run_history(kind, plan)
    a, b = history.pick(i), history.pick(j)
    a_before, b_before = wire(a), wire(b)
    out = a.merge(b)
    assert wire(a) == a_before
    assert wire(b) == b_before
    perform(kind, out, ops)
    for _, delta in history.deltas:
        out.apply(delta)
    duplicate = a.copy()
    assert duplicate == a
    perform(kind, duplicate, ops)
    assert wire(a) == a_before
    assert wire(b) == b_before
    out, duplicate = a.merge(b), a.copy()
    out_before = wire(out)
    perform(kind, a, ops)
    perform(kind, b, ops)
    assert wire(out) == out_before
    assert wire(duplicate) == a_before


@every_kind
@given(plan=plans, i=indices, d=indices)
def test_apply_equals_merge(kind: Kind, plan: Plan, i: int, d: int) -> None:
    """s.copy().apply(x) equals s.merge(x) for any replica's deltas and states; x is unchanged."""
    history = run_history(kind, plan)
    state = history.pick(i)
    deltas = [delta for _, delta in history.deltas]
    for other in ([deltas[d % len(deltas)]] if deltas else []) + [history.pick(d)]:
        state_before, other_before = wire(state), wire(other)
        applied = state.copy()
        applied.apply(other)
        assert applied == state.merge(other)
        assert wire(applied) == wire(state.merge(other))
        assert wire(state) == state_before
        assert wire(other) == other_before


@every_kind
@given(plan=plans, i=indices)
def test_data_round_trip(kind: Kind, plan: Plan, i: int) -> None:
    """from_data(to_data()) rebuilds the state, through msgpack too, and re-encodes identically."""
    state = run_history(kind, plan).pick(i)
    plain = state.to_data()
    assert state.to_data() == plain
    assert kind.decode(plain) == state
    assert crdt.from_data(plain) == state
    over_the_wire = msgpack.unpackb(pack(plain))
    assert kind.decode(over_the_wire) == state
    assert wire(kind.decode(over_the_wire)) == pack(plain)


# ---------------------------------------------------------------- convergence


@every_kind
@given(plan=plans, seed=seeds)
def test_replicas_converge_in_any_delivery_order(kind: Kind, plan: Plan, seed: int) -> None:
    """All deltas, or all full states, delivered in any order with duplicates, give one state."""
    history = run_history(kind, plan)
    everything = join(history.replicas)
    deltas = [d for _, d in history.deltas]
    rnd = Random(seed)
    for start in [kind.empty(), *history.replicas]:
        replica = start.copy()
        for delta in reordered(deltas, rnd):
            replica.apply(delta)
        assert replica == everything
        assert wire(replica) == wire(everything)
    merged, in_place = kind.empty(), kind.empty()
    for state in reordered(history.replicas, rnd):
        merged = merged.merge(state)
        in_place.apply(state)
    assert merged == everything
    assert wire(merged) == wire(everything)
    assert wire(in_place) == wire(everything)


@given(a=registers, b=registers, c=registers)
def test_lww_laws_hold_for_colliding_stamps(a: Any, b: Any, c: Any) -> None:
    """Two writes with the same stamp (a misbehaving writer) still merge as a lattice join."""
    assert a.merge(b) == b.merge(a)
    assert wire(a.merge(b)) == wire(b.merge(a))
    assert a.merge(b).merge(c) == a.merge(b.merge(c))
    assert a.merge(a) == a


# ---------------------------------------------------------------- add-wins semantics


class RefSet:
    """Naive OR-Set: every add kept with a unique tag; a remove tombstones the tags it saw."""

    def __init__(self, adds: Any = (), removed: Any = ()) -> None:
        self.adds: set[tuple[Any, tuple[str, int]]] = set(adds)
        self.removed: set[tuple[str, int]] = set(removed)

    def _live(self, element: Any) -> set[tuple[str, int]]:
        return {t for e, t in self.adds if e == element and t not in self.removed}

    def add(self, replica: str, element: Any) -> RefSet:
        n = 1 + max((t[1] for _, t in self.adds if t[0] == replica), default=0)
        delta = RefSet({(element, (replica, n))}, self._live(element))
        self.apply(delta)
        return delta

    def remove(self, element: Any) -> RefSet:
        delta = RefSet((), self._live(element))
        self.apply(delta)
        return delta

    def elements(self) -> frozenset[Any]:
        return frozenset(e for e, t in self.adds if t not in self.removed)

    def merge(self, other: RefSet) -> RefSet:
        return RefSet(self.adds | other.adds, self.removed | other.removed)

    def apply(self, delta: RefSet) -> None:
        self.adds |= delta.adds
        self.removed |= delta.removed

    def copy(self) -> RefSet:
        return RefSet(self.adds, self.removed)


class RefMap:
    """Naive OR-Map: tagged contributions, tombstones, a key's value the join of its live ones."""

    def __init__(self, contributions: Any = None, removed: Any = ()) -> None:
        self.contributions: dict[tuple[str, int], tuple[Any, Any]] = dict(contributions or {})
        self.removed: set[tuple[str, int]] = set(removed)

    def _live(self, key: Any) -> set[tuple[str, int]]:
        return {t for t, (k, _) in self.contributions.items() if k == key and t not in self.removed}

    def get(self, key: Any) -> Any:
        values = [self.contributions[t][1] for t in sorted(self._live(key))]
        return join(values).copy() if values else None

    def keys(self) -> frozenset[Any]:
        return frozenset(k for t, (k, _) in self.contributions.items() if t not in self.removed)

    def update(self, replica: str, key: Any, value: Any) -> RefMap:
        current = self.get(key)
        joined = value.copy() if current is None else current.merge(value)
        n = 1 + max((t[1] for t in self.contributions if t[0] == replica), default=0)
        delta = RefMap({(replica, n): (key, joined)}, self._live(key))
        self.apply(delta)
        return delta

    def remove(self, key: Any) -> RefMap:
        delta = RefMap({}, self._live(key))
        self.apply(delta)
        return delta

    def merge(self, other: RefMap) -> RefMap:
        return RefMap({**self.contributions, **other.contributions}, self.removed | other.removed)

    def apply(self, delta: RefMap) -> None:
        self.contributions.update(delta.contributions)
        self.removed |= delta.removed

    def copy(self) -> RefMap:
        return RefMap(self.contributions, self.removed)


def reference(kind: Kind) -> Kind:
    """The naive model of ``kind``, driven by the same operations."""
    empty = RefSet if kind is ORSET else RefMap
    return Kind(f"naive-{kind.name}", empty, kind.domain, kind.perform, kind.decode)


def assert_same_content(real: Any, naive: Any) -> None:
    if isinstance(naive, RefSet):
        assert real.elements() == naive.elements()
        return
    assert real.keys() == naive.keys()
    for key in naive.keys():  # noqa: SIM118 - RefMap is not a mapping
        assert real.get(key) == naive.get(key)


@pytest.mark.parametrize("kind", DOT_KINDS, ids=repr)
@given(plan=plans)
def test_add_wins_types_match_the_tombstone_model(kind: Kind, plan: Plan) -> None:
    """ORSet and ORMap hold what a naive tombstone model holds, replica by replica and merged."""
    real = run_history(kind, plan)
    naive = run_history(reference(kind), plan)
    for mine, theirs in zip(real.replicas, naive.replicas, strict=True):
        assert_same_content(mine, theirs)
    assert_same_content(join(real.replicas), join(naive.replicas))


@given(ops=st.lists(st.tuples(st.sampled_from(REPLICAS), st.booleans(), keys), max_size=30))
def test_orset_on_one_replica_is_a_set(ops: list[tuple[str, bool, Any]]) -> None:
    """A sequence of adds and removes on one ORSet (any writer ids) behaves like a Python set."""
    real: ORSet[Any] = ORSet()
    model: set[Any] = set()
    for replica, adding, element in ops:
        if adding:
            real.add(replica, element)
            model.add(element)
        else:
            real.remove(element)
            model.discard(element)
        assert real.elements() == model
        assert len(real) == len(model)
        assert (element in real) == (element in model)


@given(base=histories(ORSET), i=indices, element=keys, writer=st.sampled_from(REPLICAS))
def test_orset_concurrent_add_wins_over_remove(
    base: Any, i: int, element: Any, writer: str
) -> None:
    """An add concurrent with a remove of the same element survives the merge."""
    adder, remover = base.pick(i).copy(), base.pick(i).copy()
    added = adder.add(writer, element)
    removed = remover.remove(element)
    assert element in adder.merge(remover)
    assert element in remover.merge(adder)
    adder.apply(removed)
    remover.apply(added)
    assert element in adder
    assert element in remover


@given(
    base=histories(ORSET),
    i=indices,
    element=keys,
    writer=st.sampled_from(REPLICAS),
    add_first=st.booleans(),
)
def test_orset_remove_of_observed_adds_removes(
    base: Any, i: int, element: Any, writer: str, add_first: bool
) -> None:
    """A remove that has seen every add of an element removes it wherever it is merged."""
    state = base.pick(i).copy()
    if add_first:
        state.add(writer, element)
    remover = state.copy()
    removed = remover.remove(element)
    assert element not in remover
    assert element not in state.merge(remover)
    state.apply(removed)
    assert element not in state


@map_kinds
@given(plan=plans, i=indices, key=map_keys, op=indices)
def test_ormap_concurrent_update_wins_over_remove(
    kind: Kind, plan: Plan, i: int, key: Any, op: int
) -> None:
    """An update concurrent with a remove of its key keeps the key, with the update's value."""
    base = run_history(kind, plan).pick(i)
    updater, remover = base.copy(), base.copy()
    writes = [w for w in kind.domain if w[0] != "remove"]
    write = writes[op % len(writes)]
    kind.perform(updater, "r-updater", HLC("r-updater"), (write[0], key, *write[2:]))
    removed = remover.remove(key)
    merged = remover.merge(updater)
    assert key in merged
    assert merged.get(key) == updater.get(key)
    updater.apply(removed)
    assert updater.get(key) == merged.get(key)


@map_kinds
@given(plan=plans, i=indices, key=map_keys)
def test_ormap_remove_of_observed_updates_removes(kind: Kind, plan: Plan, i: int, key: Any) -> None:
    """A remove that has seen every update of a key removes it wherever it is merged."""
    state = run_history(kind, plan).pick(i)
    remover = state.copy()
    removed = remover.remove(key)
    assert key not in remover
    assert remover.get(key) is None
    assert key not in state.merge(remover)
    state.apply(removed)
    assert key not in state


@map_kinds
@given(plan=plans, i=indices)
def test_ormap_get_returns_a_copy(kind: Kind, plan: Plan, i: int) -> None:
    """Changing a value returned by get leaves the map unchanged."""
    state = run_history(kind, plan).pick(i)
    before = wire(state)
    for key in list(state):
        value = state.get(key)
        if hasattr(value, "increment"):
            value.increment("r-outside", 1)
        elif hasattr(value, "add"):
            value.add("r-outside", "outside")
        else:
            value.set("outside", Stamp(10**6, 0, "r-outside"))
    assert wire(state) == before
