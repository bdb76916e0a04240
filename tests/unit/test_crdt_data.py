"""Plain data at the edge: canonical bytes, and every malformed input refused the same way.

``from_data`` is where untrusted bytes become state, so for every decoder: corrupted valid data
(dropped fields, wrong types, wrong tags, dots missing from the context, duplicate keys, bools as
keys...) and random garbage raise :class:`MalformedDataError` and nothing else; whatever is
accepted is a valid state that encodes again.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from random import Random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import (
    DOT_KINDS,
    GCOUNTER,
    KINDS,
    LWW,
    ORSET,
    PNCOUNTER,
    Kind,
    Plan,
    edited,
    edits,
    indices,
    plain_data,
    plans,
    run_history,
    seeds,
    shaped_garbage,
)
from vsm import crdt
from vsm.crdt import CausalContext, GCounter, LWWRegister, ORMap, ORSet, PNCounter, pack
from vsm.errors import ForeignWriteError, MalformedDataError
from vsm.registry import Advert, CapabilityRegistry, RegistryDelta

every_kind = pytest.mark.parametrize("kind", KINDS, ids=repr)
TAGS = ["lww", "gcounter", "pncounter", "orset", "ormap", "registry", "registry-delta"]


def assert_valid(decode: Callable[[Any], Any], decoded: Any) -> None:
    """What a decoder accepted is a state that encodes to msgpack and decodes to itself."""
    plain = decoded.to_data()
    pack(plain)
    assert decode(plain) == decoded


def decodes_or_refuses(decode: Callable[[Any], Any], data: Any, *refusals: type) -> None:
    """Check that ``decode(data)`` raises MalformedDataError or ``refusals``, or decodes validly.

    Any other exception escapes and fails the test.
    """
    try:
        decoded = decode(data)
    except (MalformedDataError, *refusals):
        return
    assert_valid(decode, decoded)


# ---------------------------------------------------------------- canonical bytes


def shuffled(data: dict[str, Any], rnd: Random) -> dict[str, Any]:
    """``data`` with its rows (entries, dots, context, totals) in another order."""
    out = copy.deepcopy(data)
    rows = [out[name] for name in ("totals", "p", "n", "entries") if name in out]
    rows += [row[1] for row in out.get("entries", [])]
    if "context" in out:
        rows += [out["context"]["vv"], out["context"]["cloud"]]
        rows += [counters for _, counters in out["context"]["cloud"]]
    for some in rows:
        rnd.shuffle(some)
    return out


@pytest.mark.parametrize("kind", [GCOUNTER, PNCOUNTER, *DOT_KINDS], ids=repr)
@given(plan=plans, i=indices, seed=seeds)
def test_rows_in_any_order_decode_to_the_canonical_bytes(
    kind: Kind, plan: Plan, i: int, seed: int
) -> None:
    """Rows decoded in any order give the same state, and to_data writes them back sorted."""
    state = run_history(kind, plan).pick(i)
    plain = state.to_data()
    jumbled = shuffled(plain, Random(seed))
    if jumbled != plain:
        decoded = kind.decode(jumbled)
        assert decoded == state
        assert pack(decoded.to_data()) == pack(plain)


# ---------------------------------------------------------------- targeted corruption

BAD_KEYS = [True, False, 1.5, None, {}, {"a": 1}, [True], ["a", 0.5], [[False]]]
BAD_COUNTS = [0, -1, True, 1.0, "1", None, [1]]
BAD_REPLICAS = ["", 1, None, b"r0", True, ["r0"]]
Corruption = Callable[[dict[str, Any], int], bool]
"""Corrupts plain data in place (choices made from the int); False when it does not apply."""


def drop_field(data: dict[str, Any], n: int) -> bool:
    del data[sorted(data)[n % len(data)]]
    return True


def extra_field(data: dict[str, Any], n: int) -> bool:
    data[["extra", "value", "entries", "totals"][n % 4] + "!"] = n
    return True


def wrong_tag(data: dict[str, Any], n: int) -> bool:
    wrong = [t for t in TAGS if t != data["type"]] + ["", None, 1, [data["type"]], "LWW"]
    data["type"] = wrong[n % len(wrong)]
    return True


def _row(data: dict[str, Any], n: int) -> list[Any] | None:
    entries = data["entries"]
    return entries[n % len(entries)] if entries else None


def drop_context_dot(data: dict[str, Any], n: int) -> bool:
    row = _row(data, n)
    if row is None:
        return False
    dot = (row[1][0][0], row[1][0][1])
    seen = CausalContext.from_data(data["context"]).dots()
    data["context"] = CausalContext.of(d for d in seen if d != dot).to_data()
    return True


def duplicate_key(data: dict[str, Any], n: int) -> bool:
    row = _row(data, n)
    if row is None:
        return False
    data["entries"].append(copy.deepcopy(row))
    return True


def shared_dot(data: dict[str, Any], n: int) -> bool:
    row = _row(data, n)
    if row is None:
        return False
    data["entries"].append(["a key nobody uses", [copy.deepcopy(row[1][0])]])
    return True


def bad_key(data: dict[str, Any], n: int) -> bool:
    row = _row(data, n)
    if row is None:
        return False
    row[0] = BAD_KEYS[n % len(BAD_KEYS)]
    return True


def bad_dot(data: dict[str, Any], n: int) -> bool:
    row = _row(data, n)
    if row is None:
        return False
    dot = row[1][n % len(row[1])]
    if n % 3 == 0:
        dot[1] = BAD_COUNTS[n % len(BAD_COUNTS)]
    elif n % 3 == 1:
        dot[0] = BAD_REPLICAS[n % len(BAD_REPLICAS)]
    else:
        row[1] = [] if n % 2 else dot
    return True


def bad_payload(data: dict[str, Any], n: int) -> bool:
    row = _row(data, n)
    if row is None:
        return False
    dot = row[1][0]
    if data["type"] == "orset":
        dot.append([None, 0, "x"][n % 3])
    elif n % 3 == 0:
        del dot[2:]
    elif n % 3 == 1:
        dot.append(dot[2])
    else:
        dot[2] = [5, None, {"type": "nope"}, {"type": "lww"}, []][n % 5]
    return True


def bad_context(data: dict[str, Any], n: int) -> bool:
    context = data["context"]
    vv, cloud = context["vv"], context["cloud"]
    choice = n % 7
    if choice == 0:
        vv.append(["r-new", BAD_COUNTS[n % len(BAD_COUNTS)]])
    elif choice == 1:
        vv.append([BAD_REPLICAS[n % len(BAD_REPLICAS)], 1])
    elif choice == 2:
        vv += [["r-twice", 1], ["r-twice", 2]]
    elif choice == 3:
        cloud.append(["r-new", [3, BAD_COUNTS[n % len(BAD_COUNTS)]]])
    elif choice == 4:
        context["cloud"] = {"r-new": [3]}
    elif choice == 5:
        del context[["vv", "cloud"][n % 2]]
    else:
        vv.append(["r-short"])
    return True


def bad_totals(data: dict[str, Any], n: int) -> bool:
    part = ["totals"] if "totals" in data else ["p", "n"]
    totals = data[part[n % len(part)]]
    choice = n % 5
    if choice == 0:
        totals.append(["r-new", BAD_COUNTS[n % len(BAD_COUNTS)]])
    elif choice == 1:
        totals.append([BAD_REPLICAS[n % len(BAD_REPLICAS)], 1])
    elif choice == 2:
        totals += [["r-twice", 1], ["r-twice", 2]]
    elif choice == 3:
        totals.append(["r-long", 1, 1])
    else:
        data[part[n % len(part)]] = {"r-new": 1}
    return True


def bad_register(data: dict[str, Any], n: int) -> bool:
    if data["stamp"] is None and n % 2:
        data["value"] = 1
    elif data["stamp"] is None:
        data["stamp"] = [1, 0, "r0"]
    elif n % 3 == 0:
        data["value"] = None
    elif n % 3 == 1:
        data["stamp"] = None
    else:
        data["stamp"] = [[-1, 0, "r0"], [0, 0, ""], [0, True, "r0"], "r0", [0, 0]][n % 5]
    return True


COMMON: list[Corruption] = [drop_field, extra_field, wrong_tag]
DOTS: list[Corruption] = [
    drop_context_dot,
    duplicate_key,
    shared_dot,
    bad_key,
    bad_dot,
    bad_payload,
    bad_context,
]
CORRUPTIONS: dict[str, list[Corruption]] = {
    "lww": [*COMMON, bad_register],
    "gcounter": [*COMMON, bad_totals],
    "pncounter": [*COMMON, bad_totals],
    "orset": [*COMMON, *DOTS],
    "ormap-lww": [*COMMON, *DOTS],
    "ormap-gcounter": [*COMMON, *DOTS],
    "ormap-orset": [*COMMON, *DOTS],
}


@every_kind
@given(plan=plans, i=indices, which=indices, n=indices)
def test_corrupted_data_is_refused(kind: Kind, plan: Plan, i: int, which: int, n: int) -> None:
    """Dropped or extra fields, wrong tags, wrong types, missing dots, duplicates are refused."""
    history = run_history(kind, plan)
    corruptions = CORRUPTIONS[kind.name]
    corrupt = corruptions[which % len(corruptions)]
    # Prefer a state the corruption applies to (one with entries, for most of them).
    states = history.states
    for offset in range(len(states)):
        data = states[(i + offset) % len(states)].to_data()
        if corrupt(data, n):
            break
    else:
        data = history.pick(i).to_data()
        wrong_tag(data, n)
    with pytest.raises(MalformedDataError):
        kind.decode(data)
    with pytest.raises(MalformedDataError):
        kind.decode([data])


@every_kind
@given(plan=plans, i=indices, edit=edits)
def test_any_single_edit_is_refused_or_gives_a_valid_state(
    kind: Kind, plan: Plan, i: int, edit: tuple[int, str, Any]
) -> None:
    """One random edit anywhere in valid data is refused or decodes to a valid state."""
    plain = run_history(kind, plan).pick(i).to_data()
    broken = edited(plain, *edit)
    decodes_or_refuses(kind.decode, broken)
    decodes_or_refuses(crdt.from_data, broken)


# ---------------------------------------------------------------- garbage


def _registry_delta(data: Any) -> RegistryDelta:
    return RegistryDelta.from_data(data)


def _registry(data: Any) -> CapabilityRegistry:
    return CapabilityRegistry.from_data(data)


DECODERS: list[tuple[str, Callable[[Any], Any], Any]] = [
    ("crdt", crdt.from_data, None),
    ("lww", LWWRegister.from_data, ("type", "stamp", "value")),
    ("gcounter", GCounter.from_data, ("type", "totals")),
    ("pncounter", PNCounter.from_data, ("type", "p", "n")),
    ("orset", ORSet.from_data, ("type", "entries", "context")),
    ("ormap", ORMap.from_data, ("type", "entries", "context")),
    ("context", CausalContext.from_data, ("vv", "cloud")),
    ("advert", Advert.from_data, Advert.__dataclass_fields__.keys()),
    ("registry-delta", _registry_delta, ("type", "state")),
    ("registry", _registry, ("type", "replica", "clock", "state")),
]


@pytest.mark.parametrize(("tag", "decode", "fields"), DECODERS, ids=[d[0] for d in DECODERS])
@given(data=st.data())
def test_garbage_raises_only_malformed_data_error(
    tag: str, decode: Callable[[Any], Any], fields: Any, data: st.DataObject
) -> None:
    """Every decoder refuses garbage with MalformedDataError (or ForeignWriteError), only."""
    shaped = shaped_garbage(tag, tuple(fields)) if fields is not None else plain_data
    garbage = data.draw(plain_data | shaped)
    decodes_or_refuses(decode, garbage, ForeignWriteError)


# ---------------------------------------------------------------- ints msgpack cannot carry

HUGE = [2**64, -(2**63) - 1, 10**30, 10**400]


def _orset_with_key(key: Any) -> dict[str, Any]:
    context = {"vv": [["r0", 1]], "cloud": []}
    return {"type": "orset", "entries": [[key, [["r0", 1]]]], "context": context}


UNENCODABLE: list[tuple[str, Callable[[Any], Any], Callable[[int], Any]]] = [
    ("orset key", ORSet.from_data, _orset_with_key),
    ("orset tuple key", ORSet.from_data, lambda n: _orset_with_key(["a", n])),
    ("gcounter total", GCounter.from_data, lambda n: {"type": "gcounter", "totals": [["r0", n]]}),
    ("context counter", CausalContext.from_data, lambda n: {"vv": [["r0", n]], "cloud": []}),
    ("stamp", LWWRegister.from_data, lambda n: {"type": "lww", "stamp": [n, 0, "r0"], "value": 1}),
    ("advert cost", Advert.from_data, lambda n: ["c", "root/a", "e", "1", n, "z", "", 0]),
    ("advert lease", Advert.from_data, lambda n: ["c", "root/a", "e", "1", 1.0, "z", "", n]),
]


@given(case=st.sampled_from(UNENCODABLE), huge=st.sampled_from(HUGE))
def test_ints_msgpack_cannot_carry_are_refused(
    case: tuple[str, Callable[[Any], Any], Callable[[int], Any]], huge: int
) -> None:
    """An int outside msgpack's range (in a key, a count, a stamp, an advert) is refused."""
    _, decode, build = case
    decodes_or_refuses(decode, build(huge))


@given(key=st.sampled_from([*HUGE, ("a", 2**64), True, 1.5, None, ["a"]]))
def test_unencodable_keys_are_refused_before_any_change(key: Any) -> None:
    """ORSet.add and ORMap.update refuse a key to_data could not encode, changing nothing."""
    elements: ORSet[Any] = ORSet()
    elements.add("r0", "a")
    mapping: ORMap[Any, Any] = ORMap()
    mapping.update("r0", "a", GCounter({"r0": 1}))
    before = (pack(elements.to_data()), pack(mapping.to_data()))
    with pytest.raises(TypeError):
        elements.add("r0", key)
    with pytest.raises(TypeError):
        mapping.update("r0", key, GCounter({"r0": 1}))
    assert (pack(elements.to_data()), pack(mapping.to_data())) == before


def test_tags_dispatch_to_their_type() -> None:
    """crdt.from_data rebuilds each type from its tag and refuses an unknown or missing tag."""
    for kind in (LWW, GCOUNTER, PNCOUNTER, ORSET):
        assert type(crdt.from_data(kind.empty().to_data())) is type(kind.empty())
    for data in ({"type": "nope"}, {}, {"type": None}, [], "orset"):
        with pytest.raises(MalformedDataError):
            crdt.from_data(data)
