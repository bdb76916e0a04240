"""What rules mean, on hand-written streams: fields, comparisons, windows, sequences, bounds."""

from __future__ import annotations

import math

import pytest

from vsm.effects import Event
from vsm.rules import (
    Audit,
    EventFieldError,
    Rule,
    columns_of,
    compile_rule,
    fields_of,
    parse_condition,
)


def run(text: str, events: list[dict], max_entries: int = 10_000) -> list[int]:
    """Indices of the events that match ``text``, one by one; checked against a batch."""
    rule = Rule("r", parse_condition(text), Audit("path"))
    one = compile_rule(rule, max_entries=max_entries)
    single = [i for i, e in enumerate(events) if one.evaluate(e)]
    batch = compile_rule(rule, max_entries=max_entries).evaluate_batch(columns_of(events))
    assert batch.tolist() == single
    return single


def at(*times: float, **fields: object) -> list[dict]:
    """Events at ``times``, each with ``fields``."""
    return [{"at": t, **fields} for t in times]


# ---------------------------------------------------------------- fields


def test_fields_of_flattens_an_event():
    """kind, path and at come first; data keys follow; values rules cannot see are left out."""
    event = Event(kind="unit.health", path="/a", at=3.0, data={"cpu": 0.5, "tags": ["x"]})
    assert fields_of(event) == {"kind": "unit.health", "path": "/a", "at": 3.0, "cpu": 0.5}


@pytest.mark.parametrize("name", ["kind", "path", "at"])
def test_fields_of_refuses_data_that_shadows_the_events_own_fields(name):
    """A data key named kind, path or at is an error naming the key and showing the value."""
    event = Event(kind="k", path="/", at=0.0, data={name: "sneaky"})
    with pytest.raises(EventFieldError, match=f"field '{name}'.*got 'sneaky'"):
        fields_of(event)


def test_missing_fields_make_comparisons_false_and_their_negation_true():
    """On a missing field every comparison is false, != too; not of one is true."""
    events = [{}, {"x": 1}]
    for text in ("x > 0", "x < 0", "x == 1", "x != 1", "x != 2", 'x in [1, "a"]', "x not in [2]"):
        assert 0 not in run(text, events), text
    assert run("not x > 5", events) == [0, 1]
    assert run("x != 2", events) == [1]
    assert run("x not in [2]", events) == [1]
    assert run("missing(x)", events) == [0]
    assert run("exists(x)", events) == [1]


def test_nan_and_values_rules_cannot_see_count_as_missing():
    """NaN, lists, maps, bytes and ints beyond float range are absent; inf is a number."""
    events = [{"x": math.nan}, {"x": [1]}, {"x": {"a": 1}}, {"x": b"1"}, {"x": 10**400}]
    assert run("exists(x)", events) == []
    assert run("x > 0", [{"x": math.inf}]) == [0]


def test_types_do_not_mix():
    """1 == 1.0, but true is not 1, "1" is not 1, and null equals only null."""
    events = [{"x": 1}, {"x": 1.0}, {"x": True}, {"x": "1"}, {"x": None}]
    assert run("x == 1", events) == [0, 1]
    assert run("x == true", events) == [2]
    assert run('x == "1"', events) == [3]
    assert run("x == null", events) == [4]
    assert run("x != null", events) == [0, 1, 2, 3]
    assert run("x > 0", events) == [0, 1]
    assert run('x >= ""', events) == [3]
    assert run("x in [true, null]", events) == [2, 4]


def test_strings_order_by_code_point():
    """String ordering compares code points, like Python's str."""
    events = [{"x": "a"}, {"x": "B"}, {"x": "é"}, {"x": ""}]
    assert run('x > "Z"', events) == [0, 2]
    assert run('x <= "B"', events) == [1, 3]


# ---------------------------------------------------------------- windows


def test_a_window_includes_events_exactly_T_seconds_old():
    """An event at t - T is still in the window [t - T, t]; one just older is not."""
    events = at(0.0, 10.0, kind="x")
    assert run('count(kind == "x") within 10s >= 2', events) == [1]
    events = at(0.0, 10.000001, kind="x")
    assert run('count(kind == "x") within 10s >= 2', events) == []


def test_a_window_counts_the_current_event_and_is_level_triggered():
    """The event itself counts; any later event while the window holds matches too."""
    events = at(0, 1, 2, kind="x") + at(3, kind="y") + at(20, kind="y")
    assert run('count(kind == "x") within 5s >= 3', events) == [2, 3]


def test_windows_by_key_count_each_key_apart_and_skip_events_without_it():
    """count(...) by user counts that user's events; an event without a user never matches."""
    events = [
        {"at": 0.0, "kind": "intent.rejected", "user": "ann"},
        {"at": 1.0, "kind": "intent.rejected", "user": "bob"},
        {"at": 2.0, "kind": "intent.rejected", "user": "ann"},
        {"at": 3.0, "kind": "intent.rejected"},
        {"at": 4.0, "kind": "intent.accepted", "user": "ann"},
    ]
    text = 'count(kind == "intent.rejected") by user within 30s >= 2'
    assert run(text, events) == [2, 4]


def test_keys_of_different_types_stay_apart():
    """Keyed by user, 1 and 1.0 are one key; true and "1" are others."""
    events = [{"at": 0.0, "user": 1}, {"at": 0.0, "user": 1.0}, {"at": 0.0, "user": True},
              {"at": 0.0, "user": "1"}]  # fmt: skip
    assert run("count() by user within 1s >= 2", events) == [1]


def test_aggregates_over_a_window():
    """sum, avg, min and max read finite numbers of the field among the window's events."""
    events = [
        {"at": 0.0, "cpu": 0.5},
        {"at": 1.0, "cpu": 1.0},
        {"at": 2.0, "cpu": "high"},
        {"at": 3.0, "cpu": math.inf},
        {"at": 4.0},
        {"at": 12.0, "cpu": 0.2},
    ]
    assert run("sum(cpu) within 10s == 1.5", events) == [1, 2, 3, 4]
    assert run("avg(cpu) within 10s == 0.75", events) == [1, 2, 3, 4]
    assert run("min(cpu) within 10s == 0.5", events) == [0, 1, 2, 3, 4]
    assert run("max(cpu) within 10s == 1.0", events) == [1, 2, 3, 4]
    assert run("max(cpu) within 10s < 0.5", events) == [5]


def test_an_empty_window_sums_to_zero_and_has_no_average():
    """With nothing in the window, sum is 0 and count is 0; avg, min and max are false."""
    events = at(0.0, kind="y")
    assert run("sum(cpu) within 1s == 0", events) == [0]
    assert run('count(kind == "x") within 1s < 1', events) == [0]
    for text in ("avg(cpu) within 1s < 1", "min(cpu) within 1s < 1", "max(cpu) within 1s < 1"):
        assert run(text, events) == []


def test_sums_are_exact():
    """0.1 + 0.2 in a window is the exact sum rounded once: 0.30000000000000004 (not 0.3)."""
    events = [{"at": 0.0, "v": 0.1}, {"at": 0.0, "v": 0.2}]
    assert run("sum(v) within 1s == 0.30000000000000004", events) == [1]
    # Adding then removing a huge value leaves no rounding residue behind.
    events = [{"at": 0.0, "v": 1e300}, {"at": 5.0, "v": 0.1}, {"at": 5.0, "v": 0.2}]
    assert run("sum(v) within 1s == 0.30000000000000004", events) == [2]


def test_a_where_filter_picks_the_events_an_aggregate_reads():
    """avg(cpu where path == "/a") ignores the cpu of other paths."""
    events = [{"at": 0.0, "path": "/a", "cpu": 1.0}, {"at": 1.0, "path": "/b", "cpu": 0.0}]
    assert run('avg(cpu where path == "/a") within 10s == 1', events) == [0, 1]


def test_time_that_goes_back_counts_as_no_time_elapsed():
    """An event stamped earlier than one seen is taken at the later time (the clock holds)."""
    events = at(10.0, 0.0, kind="x")
    assert run('count(kind == "x") within 1s >= 2', events) == [1]


# ---------------------------------------------------------------- sequences


def test_a_sequence_matches_the_second_within_T_of_the_first():
    """A then B within T: B matches when an earlier A is at most T old (exactly T included)."""
    events = [
        {"at": 0.0, "kind": "a"},
        {"at": 5.0, "kind": "b"},
        {"at": 5.5, "kind": "b"},
        {"at": 6.0, "kind": "a"},
        {"at": 6.0, "kind": "b"},
    ]
    assert run('kind == "a" then kind == "b" within 5s', events) == [1, 4]


def test_a_sequence_never_pairs_an_event_with_itself():
    """An event satisfying both sides needs an earlier first; it becomes the next first."""
    events = at(0.0, 1.0, kind="ab")
    assert run('kind == "ab" then kind == "ab" within 5s', events) == [1]


def test_a_sequence_by_key_pairs_only_within_a_key():
    """Keyed by user, bob's B does not follow ann's A; an event without a user never matches."""
    events = [
        {"at": 0.0, "kind": "a", "user": "ann"},
        {"at": 1.0, "kind": "b", "user": "bob"},
        {"at": 2.0, "kind": "b"},
        {"at": 3.0, "kind": "b", "user": "ann"},
    ]
    assert run('kind == "a" then kind == "b" by user within 5s', events) == [3]


# ---------------------------------------------------------------- trailing within


def test_a_trailing_within_needs_each_part_seen_in_the_window():
    """In `cpu > 0.8 and temp > 90 within 30s` each part held in some event of the last 30 s."""
    events = [
        {"at": 0.0, "cpu": 0.9},
        {"at": 10.0, "temp": 95},
        {"at": 20.0, "temp": 20},
        {"at": 35.0, "temp": 95},
        {"at": 40.0, "cpu": 0.9, "temp": 95},
    ]
    assert run("cpu > 0.8 and temp > 90 within 30s", events) == [1, 2, 4]
    assert run("cpu > 0.8 and temp > 90", events) == [4]


def test_a_trailing_within_by_key_looks_at_one_key():
    """With by path, the parts must be seen in events of the same path."""
    events = [
        {"at": 0.0, "path": "/a", "cpu": 0.9},
        {"at": 1.0, "path": "/b", "temp": 95},
        {"at": 2.0, "path": "/a", "temp": 95},
    ]
    assert run("cpu > 0.8 and temp > 90 by path within 30s", events) == [2]


# ---------------------------------------------------------------- bounds and errors


def test_a_full_window_evicts_its_oldest_entry():
    """With room for 2 entries, a third evicts the oldest: the window reads as shorter."""
    rule = Rule("r", parse_condition("count() within 100s >= 3"), Audit("path"))
    compiled = compile_rule(rule, max_entries=2)
    assert [compiled.evaluate(e) for e in at(0, 1, 2, 3)] == [False] * 4
    assert compiled.statistics()["evicted"] == 2
    assert compiled.statistics()["entries"] == 2
    assert run("count() within 100s >= 3", at(0, 1, 2, 3), max_entries=2) == []
    assert run("count() within 100s >= 3", at(0, 1, 2, 3), max_entries=3) == [2, 3]


def test_a_full_sequence_evicts_the_key_with_the_oldest_first():
    """With room for one key, ann's first is evicted by bob's; ann's second then fails."""
    events = [
        {"at": 0.0, "kind": "a", "user": "ann"},
        {"at": 1.0, "kind": "a", "user": "bob"},
        {"at": 2.0, "kind": "b", "user": "ann"},
        {"at": 3.0, "kind": "b", "user": "bob"},
    ]
    text = 'kind == "a" then kind == "b" by user within 10s'
    assert run(text, events, max_entries=1) == [3]
    assert run(text, events, max_entries=2) == [2, 3]


def test_a_stateful_rule_refuses_an_event_without_a_time():
    """Without a finite at, a window refuses the event (one or in a batch) and changes nothing."""
    rule = Rule("r", parse_condition("count() within 1s >= 1"), Audit("path"))
    compiled = compile_rule(rule)
    for bad in ({}, {"at": "now"}, {"at": math.nan}, {"at": math.inf}):
        with pytest.raises(EventFieldError, match="field 'at'"):
            compiled.evaluate(bad)
        with pytest.raises(EventFieldError, match="event 1 of the batch"):
            compiled.evaluate_batch(columns_of([{"at": 0.0}, bad]))
    assert compiled.input == 0
    stateless = compile_rule(Rule("s", parse_condition("x > 1"), Audit("path")))
    assert stateless.evaluate({"x": 2}) is True


def test_counters_count_input_matched_and_filtered():
    """Counters: input is events offered, matched + filtered = input, in both modes."""
    compiled = compile_rule(Rule("r", parse_condition("x > 1"), Audit("path")))
    compiled.evaluate({"x": 2})
    compiled.evaluate({"x": 0})
    compiled.evaluate_batch(columns_of([{"x": 5}, {}, {"x": 3}]))
    assert (compiled.input, compiled.matched, compiled.filtered) == (5, 3, 2)


def test_the_compiled_source_is_there_to_read():
    """The one-event form is readable Python: literals bound by name, never pasted as text."""
    compiled = compile_rule(Rule("r", parse_condition('kind == "a\\")"'), Audit("path")))
    assert "def condition(f, s):" in compiled.source
    assert 'a")' not in compiled.source
    assert compiled.evaluate({"kind": 'a")'}) is True
