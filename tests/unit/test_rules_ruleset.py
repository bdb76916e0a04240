"""RuleSet: versions, swaps while events flow, state and counters across changes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies_rules import conditions, rows
from vsm.effects import Event
from vsm.rules import (
    Algedonic,
    Audit,
    Batch,
    Rule,
    RuleSet,
    Throttle,
    columns_of,
    fields_of,
    parse_condition,
)

BURST = 'count(kind == "x") within 100s >= 2'


def rule(name: str, text: str, enabled: bool = True) -> Rule:
    """A rule named ``name`` on ``text`` that asks for an audit."""
    return Rule(name, parse_condition(text), Audit("path"), enabled)


def x(at: float) -> dict:
    """An event of kind x at ``at``."""
    return {"at": at, "kind": "x"}


def test_every_change_bumps_the_version_and_matches_carry_it():
    """add, replace, remove bump the version; a match names the version it was evaluated by."""
    rules = RuleSet([rule("a", "v > 1")])
    assert rules.version == 0
    assert rules.evaluate({"v": 2})[0].version == 0
    assert rules.add(rule("b", "v > 0")) == 1
    assert [m.version for m in rules.evaluate({"v": 2})] == [1, 1]
    assert rules.replace(rule("a", "v > 5")) == 2
    assert rules.remove("b") == 3
    assert rules.evaluate({"v": 2}) == []
    assert [r.name for r in rules.rules] == ["a"]


def test_unknown_and_duplicate_names_are_refused():
    """A present name cannot be added (ValueError), nor an absent one replaced, removed, got."""
    rules = RuleSet([rule("a", "v > 1")])
    with pytest.raises(ValueError, match="'a' is already in the set"):
        rules.add(rule("a", "v > 2"))
    with pytest.raises(KeyError, match="'b'"):
        rules.replace(rule("b", "v > 2"))
    with pytest.raises(KeyError, match="'b'"):
        rules.remove("b")
    with pytest.raises(KeyError, match="'b'"):
        rules.get("b")
    with pytest.raises(ValueError, match="'a' is already in the set"):
        RuleSet([rule("a", "v > 1"), rule("a", "v > 2")])
    assert rules.version == 0


def test_an_unchanged_rule_keeps_its_state_across_changes_of_others():
    """A window's count goes on across add, replace and remove of other rules."""
    rules = RuleSet([rule("burst", BURST), rule("other", "v > 1")])
    assert rules.evaluate(x(0.0)) == []
    rules.add(rule("new", "v > 2"))
    rules.replace(rule("other", "v > 3"))
    rules.remove("new")
    assert [m.rule for m in rules.evaluate(x(1.0))] == ["burst"]


def test_a_replaced_rule_starts_with_fresh_state_and_keeps_its_counters():
    """Replacing empties the rule's windows; its input and matched counters go on."""
    rules = RuleSet([rule("burst", BURST)])
    rules.evaluate(x(0.0))
    assert [m.rule for m in rules.evaluate(x(1.0))] == ["burst"]
    rules.replace(rule("burst", BURST))
    assert rules.evaluate(x(2.0)) == []
    assert [m.rule for m in rules.evaluate(x(3.0))] == ["burst"]
    stats = rules.statistics()["rules"]["burst"]
    assert (stats["input"], stats["matched"], stats["filtered"]) == (4, 2, 2)


def test_a_removed_name_added_again_starts_counting_at_zero():
    """Removing a rule takes its counters with it."""
    rules = RuleSet([rule("a", "v > 1")])
    rules.evaluate({"v": 2})
    rules.remove("a")
    rules.add(rule("a", "v > 1"))
    assert rules.statistics()["rules"]["a"]["input"] == 0


def test_a_disabled_rule_is_offered_nothing():
    """A disabled rule matches nothing, counts nothing, holds no state."""
    rules = RuleSet([rule("off", "v > 1", enabled=False), rule("on", "v > 1")])
    assert [m.rule for m in rules.evaluate({"v": 2})] == ["on"]
    assert [m.rule for m in rules.evaluate_batch([{"v": 2}])] == ["on"]
    assert rules.statistics()["rules"]["off"] == {
        "input": 0,
        "matched": 0,
        "filtered": 0,
        "enabled": False,
    }


def test_matches_hand_back_the_fields_and_the_response():
    """A match holds the event's fields (fields_of an Event) and the rule's response."""
    throttle = Throttle("user", "user", 5.0, 60.0)
    rules = RuleSet([Rule("t", parse_condition('kind == "intent.rejected"'), throttle)])
    event = Event(kind="intent.rejected", path="/a", at=1.0, data={"user": "ann"})
    (match,) = rules.evaluate(event)
    assert match.fields == {"kind": "intent.rejected", "path": "/a", "at": 1.0, "user": "ann"}
    assert match.response is throttle
    assert throttle.key_of(match.fields) == "ann"
    (match,) = rules.evaluate_batch([event])
    assert (match.index, match.seq) == (0, 1)
    assert throttle.key_of(match.fields) == "ann"


def test_matches_from_a_batch_of_arrays_rebuild_the_fields():
    """Without rows, a match's fields are read back from the columns."""
    rules = RuleSet([Rule("a", parse_condition("v > 1"), Algedonic(0.5, "high"))])
    batch = Batch.from_arrays({"v": np.array([0.0, 2.0, np.nan])}, 3)
    (match,) = rules.evaluate_batch(batch)
    assert (match.index, dict(match.fields)) == (1, {"v": 2.0})
    (match,) = rules.evaluate_batch({"v": np.array([0.0, 2.0, np.nan])})  # arrays by field
    assert (match.index, match.seq) == (1, 4)
    with pytest.raises(ValueError, match="different lengths"):
        rules.evaluate_batch({"v": np.zeros(2), "w": np.zeros(3)})


def test_a_bad_time_in_a_batch_offers_no_event_of_it():
    """A batch holding an event without a finite at is refused whole: nothing is counted."""
    rules = RuleSet([rule("burst", BURST), rule("plain", "v > 1")])
    with pytest.raises(ValueError, match="'at'"):
        rules.evaluate_batch([x(0.0), {"kind": "x"}])
    assert rules.offered == 0
    assert rules.statistics()["rules"]["plain"]["input"] == 0


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from("abc"), conditions(max_leaves=3), st.booleans()),
        st.tuples(
            st.just("replace"), st.sampled_from("abc"), conditions(max_leaves=3), st.booleans()
        ),
        st.tuples(st.just("remove"), st.sampled_from("abc")),
        st.tuples(st.just("one"), rows(max_size=4)),
        st.tuples(st.just("batch"), rows(max_size=6)),
    ),
    max_size=12,
)


@given(OPERATIONS)
def test_swaps_while_events_flow_neither_lose_nor_double_count(operations):
    """Each name's input counts the events offered while it was enabled in the set (a model).

    Every match names the version current when its event was offered, and its seq lies among
    the events offered in that call.
    """
    rules = RuleSet()
    present: dict[str, bool] = {}
    expected: dict[str, int] = {}
    offered = 0
    clock = 0.0
    for op in operations:
        kind = op[0]
        if kind in ("add", "replace"):
            _, name, condition, enabled = op
            made = Rule(name, condition, Audit("path"), enabled)
            if (kind == "add") == (name in present):
                continue  # the refusals are tested above
            getattr(rules, kind)(made)
            present[name] = enabled
            expected.setdefault(name, 0)
        elif kind == "remove":
            if op[1] in present:
                rules.remove(op[1])
                del present[op[1]]
                del expected[op[1]]
        else:
            events = [{**e, "at": e["at"] + clock} for e in op[1]]
            clock = max([clock, *(e["at"] for e in events)])
            version = rules.version
            matches = rules.evaluate_batch(events) if kind == "batch" else [
                m for e in events for m in rules.evaluate(e)
            ]  # fmt: skip
            assert all(m.version == version for m in matches)  # one version per event
            assert all(offered <= m.seq < offered + len(events) for m in matches)
            assert all(present.get(m.rule) for m in matches)
            offered += len(events)
            for name, enabled in present.items():
                expected[name] += len(events) if enabled else 0
    stats = rules.statistics()
    assert stats["offered"] == offered
    assert {name: s["input"] for name, s in stats["rules"].items()} == expected
    assert all(s["matched"] + s["filtered"] == s["input"] for s in stats["rules"].values())


def test_a_batch_can_be_given_as_columns_or_as_events():
    """evaluate_batch takes a Batch, field dicts, or Events, with the same matches."""
    events = [Event(kind="x", path="/", at=float(i), data={"v": i}) for i in range(4)]
    made = [rule("a", "v > 1"), rule("burst", BURST)]
    by_events = RuleSet(made).evaluate_batch(events)
    by_dicts = RuleSet(made).evaluate_batch([fields_of(e) for e in events])
    by_batch = RuleSet(made).evaluate_batch(columns_of(events))
    assert by_events == by_dicts == by_batch
    assert [(m.rule, m.index) for m in by_events] == [("burst", 1), ("a", 2), ("burst", 2),
                                                       ("a", 3), ("burst", 3)]  # fmt: skip
