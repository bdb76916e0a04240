"""The JSON form of conditions, responses, rules and rule sets: round trips and clear errors."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies_rules import responses, rules, wide_conditions
from vsm.errors import MalformedDataError
from vsm.rules import (
    Algedonic,
    And,
    Audit,
    Compare,
    EmitEvent,
    In,
    ProposePatch,
    Rule,
    RuleSet,
    Throttle,
    Window,
    condition_from_data,
    parse_condition,
    response_from_data,
)


@given(wide_conditions())
def test_conditions_round_trip_through_json(condition):
    """from_data(json(to_data(c))) == c, generically and through the node's own class."""
    data = json.loads(json.dumps(condition.to_data()))
    assert condition_from_data(data) == condition
    assert type(condition).from_data(data) == condition


@given(responses)
def test_responses_round_trip_through_json(response):
    """from_data(json(to_data(r))) == r, generically and through the response's own class."""
    data = json.loads(json.dumps(response.to_data()))
    assert response_from_data(data) == response
    assert type(response).from_data(data) == response


@given(rules())
def test_rules_round_trip_through_json(rule):
    """Rule.from_data(json(to_data(r))) == r; the text form of the condition reads the same."""
    data = json.loads(json.dumps(rule.to_data()))
    assert Rule.from_data(data) == rule
    assert Rule.from_data({**data, "condition": rule.text}) == rule


@given(st.lists(rules(), max_size=4, unique_by=lambda r: r.name), st.integers(1, 100))
def test_rule_sets_round_trip_through_json(listed, max_entries):
    """A set's JSON form holds its rules, in order, and its bound."""
    original = RuleSet(listed, max_entries=max_entries)
    copy = RuleSet.from_data(json.loads(json.dumps(original.to_data())))
    assert copy.rules == original.rules
    assert copy.max_entries == max_entries


def test_a_node_class_refuses_another_nodes_data():
    """Compare.from_data of an 'in' node names the type it expected."""
    with pytest.raises(MalformedDataError, match="expected 'compare'"):
        Compare.from_data(In("x", ()).to_data())


@pytest.mark.parametrize(
    ("data", "path", "words"),
    [
        ([], "", "expected a dict"),
        ({"type": "nope"}, "type", "expected one of"),
        ({"type": "compare", "field": "x", "op": ">"}, "value", "missing key"),
        ({"type": "compare", "field": "x", "op": ">", "value": 1, "z": 0}, "z", "unknown key"),
        ({"type": "compare", "field": "x", "op": "=", "value": 1}, "", "op must be one of"),
        ({"type": "compare", "field": "x", "op": ">", "value": True}, "", "needs a number"),
        ({"type": "compare", "field": "", "op": ">", "value": 1}, "", "non-empty str"),
        ({"type": "and", "operands": {}}, "operands", "expected a list"),
        (
            {"type": "and", "operands": [{"type": "exists", "field": "a"}, {"type": "x"}]},
            "operands[1].type",
            "expected one of",
        ),
        ({"type": "not", "operand": {"type": "missing"}}, "operand.field", "missing key"),
        (
            Window("count", None, None, None, 1.0, ">", 1.0).to_data() | {"seconds": -1},
            "",
            "seconds must be > 0",
        ),
        (
            Window("sum", "v", None, None, 1.0, ">", 1.0).to_data()
            | {"where": {"type": "in", "field": "x", "values": 3, "negated": False}},
            "where.values",
            "expected a list",
        ),
        ({"type": "in", "field": "x", "values": [[1]], "negated": False}, "", "must be a number"),
    ],
)
def test_malformed_conditions_name_the_path(data, path, words):
    """from_data errors say where in the JSON the problem is, and what it is."""
    with pytest.raises(MalformedDataError) as caught:
        condition_from_data(data)
    assert caught.value.path == path
    assert words in str(caught.value)


def test_malformed_rules_name_the_path_through_the_rule():
    """An error deep in a rule's condition or response names the path from the rule down."""
    good = Rule("r", parse_condition("a > 1"), Audit("path")).to_data()
    with pytest.raises(MalformedDataError) as caught:
        Rule.from_data({**good, "condition": {"type": "and", "operands": [1, 2]}})
    assert caught.value.path == "condition.operands[0]"
    with pytest.raises(MalformedDataError) as caught:
        Rule.from_data({**good, "response": {"type": "throttle", "target": "user"}})
    assert caught.value.path == "response.key_field"
    with pytest.raises(MalformedDataError) as caught:
        Rule.from_data({**good, "condition": "a >"})
    assert caught.value.path == "condition"
    assert "at offset 3" in str(caught.value)
    with pytest.raises(MalformedDataError) as caught:
        RuleSet.from_data([good, {**good, "name": 7}])
    assert caught.value.path == "rules[1]"


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: Algedonic(1.5, "x"), "intensity must be a number in [0, 1], got 1.5"),
        (lambda: Throttle("unit", "user", 1.0, 1.0), "target must be 'user' or 'capability'"),
        (lambda: Throttle("user", "user", 0.0, 1.0), "rate must be a finite number > 0, got 0.0"),
        (lambda: Throttle("user", "", 1.0, 1.0), "key_field must be a non-empty str"),
        (lambda: Audit(""), "unit_field must be a non-empty str"),
        (lambda: ProposePatch({}), "must set some of"),
        (lambda: ProposePatch({"version": 3}), "must set some of"),
        (lambda: ProposePatch({"max_depth": 99}), "max_depth: Input should be less than"),
        (lambda: EmitEvent("", {}), "kind must be a non-empty str"),
        (lambda: Rule("", Compare("a", ">", 1.0), Audit("p")), "name must be a non-empty str"),
        (lambda: Rule("r", "a > 1", Audit("p")), "condition must be a condition"),
        (lambda: Compare("a", ">", float("nan")), "must be a finite number, got nan"),
        (lambda: Compare("a", "<", None), "needs a number or a string, got None"),
        (lambda: And((Compare("a", ">", 1.0),)), "at least 2"),
        (lambda: Window("count", "v", None, None, 1.0, ">", 1.0), "count takes no field"),
        (lambda: Window("avg", None, None, None, 1.0, ">", 1.0), "field must be a non-empty"),
        (lambda: Window("median", "v", None, None, 1.0, ">", 1.0), "func must be one of"),
    ],
)
def test_bad_values_are_refused_showing_them(build, words):
    """Nodes, responses and rules check themselves when built and show the bad value."""
    with pytest.raises(ValueError, match=re.escape(words)):
        build()


def test_numbers_are_floats_and_bools_are_not_numbers():
    """An int literal is stored as a float (one type, exact round trips); a bool stays a bool."""
    assert Compare("a", "==", 1).value == 1.0
    assert type(Compare("a", "==", 1).value) is float
    assert Compare("a", "==", True).value is True
    assert In("a", (1, True)).values == (1.0, True)
    assert type(Throttle("user", "user", 5, 60).rate) is float
