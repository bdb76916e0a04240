"""Tree specs: validation names every problem, and a child's policy never loosens its parent's."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.strategies_model import USERS, ZONES, cap, policies
from vsm.spec import CapabilitySpec, LimitsSpec, NodeSpec, PolicySpec, TreeSpec


def chain(depth: int) -> NodeSpec:
    """A static tree that is ``depth`` levels deep: root -> n1 -> ... -> n<depth>."""
    node = NodeSpec(name=f"n{depth}") if depth else NodeSpec(name="root")
    for level in range(depth - 1, -1, -1):
        node = NodeSpec(name=f"n{level}" if level else "root", children=(node,))
    return node


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("group", ["children", "templates"])
def test_duplicate_children_or_templates_are_refused_by_name(group):
    """Two siblings (or two templates) with one name are refused, naming the group and the name."""
    kids = (NodeSpec(name="a"), NodeSpec(name="b"), NodeSpec(name="a"))
    with pytest.raises(ValidationError) as caught:
        NodeSpec(name="root", **{group: kids})
    assert f"duplicate {group}: ['a']" in str(caught.value)


def test_duplicate_capabilities_are_refused_by_name():
    """A node listing one capability twice is refused, naming it."""
    with pytest.raises(ValidationError) as caught:
        NodeSpec(name="n", capabilities=(cap("x"), cap("y"), cap("x")))
    assert "lists capabilities twice: ['x']" in str(caught.value)


def test_a_child_and_a_template_may_share_a_name_across_groups():
    """Uniqueness is per group: names only clash among siblings of one kind."""
    spec = NodeSpec(name="root", children=(NodeSpec(name="a"),), templates=(NodeSpec(name="b"),))
    assert spec.offered() == set()


def test_static_tree_deeper_than_the_guard_is_refused():
    """A static tree deeper than max_depth is refused, giving its depth and the guard."""
    with pytest.raises(ValidationError) as caught:
        TreeSpec(name="t", root=chain(3), policy=PolicySpec(max_depth=2))
    message = str(caught.value)
    assert "3 levels deep" in message
    assert "depth guard (policy.max_depth) is 2" in message


def test_guard_is_the_tree_policy_tightened_by_the_roots_own():
    """The root's own policy can lower the guard the static tree must fit."""
    root = chain(2).model_copy(update={"policy": PolicySpec(max_depth=1)})
    with pytest.raises(ValidationError, match="2 levels deep"):
        TreeSpec(name="t", root=root, policy=PolicySpec(max_depth=5))


def test_static_tree_at_the_guard_is_accepted():
    """A static tree exactly as deep as the guard is fine (templates may not go further)."""
    tree = TreeSpec(name="t", root=chain(2), policy=PolicySpec(max_depth=2))
    assert tree.root.height() == 2


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("a/b", "one path segment"),
        ("", "non-empty"),
        ("-a", "bad path segment"),
        ("a b", "bad path segment"),
        ("é", "bad path segment"),
        ("x" * 64, "bad path segment"),
    ],
)
def test_bad_node_names_are_refused(name, problem):
    """A node name that is not one path segment is refused, quoting the name."""
    with pytest.raises(ValidationError) as caught:
        NodeSpec(name=name)
    assert problem in str(caught.value)
    assert repr(name) in str(caught.value)


@pytest.mark.parametrize("name", ["a", "A.b-c_d", "0", "x" * 63])
def test_good_node_names_are_accepted(name):
    """Letters, digits, '_', '.', '-' (not first), up to 63 characters, are a name."""
    assert NodeSpec(name=name).name == name


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (NodeSpec, {"name": "n", "colour": "red"}),
        (CapabilitySpec, {"name": "c", "kernel": "echo", "colour": "red"}),
        (PolicySpec, {"colour": "red"}),
        (LimitsSpec, {"colour": "red"}),
        (TreeSpec, {"name": "t", "root": {"name": "root"}, "colour": "red"}),
        (
            TreeSpec,
            {"name": "t", "root": {"name": "root", "children": [{"name": "a", "colour": 1}]}},
        ),
    ],
)
def test_unknown_keys_are_refused(model, data):
    """Unknown keys anywhere in a spec are refused (extra=forbid), naming the key."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    assert "colour" in str(caught.value)
    assert "Extra inputs are not permitted" in str(caught.value)


def test_specs_are_frozen():
    """A validated spec cannot be changed afterwards."""
    spec = NodeSpec(name="n")
    with pytest.raises(ValidationError):
        spec.name = "m"


@pytest.mark.parametrize(
    ("warning", "zombie", "dead"),
    [(3.0, 3.0, 12.0), (6.0, 3.0, 12.0), (3.0, 12.0, 6.0), (3.0, 6.0, 6.0), (12.0, 6.0, 3.0)],
)
def test_failure_thresholds_must_be_ordered(warning, zombie, dead):
    """warning_after < zombie_after < dead_after, else refused showing all three."""
    with pytest.raises(ValidationError) as caught:
        LimitsSpec(warning_after=warning, zombie_after=zombie, dead_after=dead)
    message = str(caught.value)
    assert "need warning_after < zombie_after < dead_after" in message
    assert f"{warning} / {zombie} / {dead}" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_depth", -1),
        ("max_depth", 33),
        ("max_params", -1),
        ("default_deadline", 0),
        ("spawn_failure_threshold", 0),
        ("algedonic_threshold", 1.5),
        ("version", 0),
    ],
)
def test_policy_limits_out_of_range_are_refused(field, value):
    """Policy fields out of range are refused, naming the field."""
    with pytest.raises(ValidationError) as caught:
        PolicySpec(**{field: value})
    assert field in str(caught.value)


def test_specs_load_from_plain_data():
    """A tree written as plain data (as from YAML) validates; lists stand for tuples."""
    tree = TreeSpec.model_validate(
        {
            "name": "t",
            "root": {
                "name": "root",
                "capabilities": [{"name": "c", "kernel": "echo"}],
                "children": [{"name": "a", "templates": [{"name": "x"}]}],
            },
            "policy": {"open_zones": ["default", "eu"], "zones": {"alice": ["secret"]}},
        }
    )
    assert tree.root.offered() == {"c"}
    assert tree.policy.grants("alice", "secret")
    assert tree.policy.open_zones == ("default", "eu")


# ---------------------------------------------------------------- tighten never loosens


def granted(policy: PolicySpec) -> set[tuple[str, str]]:
    """Every (user, zone) pair the policy grants, over the test domain."""
    return {(u, z) for u in (*USERS, "nobody") for z in ZONES if policy.grants(u, z)}


@given(policies, policies)
def test_tighten_never_loosens(parent, child):
    """The tightened policy grants nothing either side refuses, and no limit is looser."""
    tight = parent.tighten(child)
    assert granted(tight) <= granted(parent)
    assert granted(tight) <= granted(child)
    assert tight.max_depth <= min(parent.max_depth, child.max_depth)
    assert tight.max_params <= min(parent.max_params, child.max_params)
    assert tight.default_deadline <= min(parent.default_deadline, child.default_deadline)
    assert tight.spawn_failure_threshold <= min(
        parent.spawn_failure_threshold, child.spawn_failure_threshold
    )
    # Tighter means a longer wait before spawning again, and louder pain before it escalates.
    assert tight.spawn_reset_after >= max(parent.spawn_reset_after, child.spawn_reset_after)
    assert tight.algedonic_threshold >= max(parent.algedonic_threshold, child.algedonic_threshold)
    assert tight.version == child.version


@given(policies, policies, policies)
def test_tighten_down_a_chain_stays_within_every_ancestor(root, middle, leaf):
    """Tightening twice (root, then middle, then leaf) is within every ancestor's grants."""
    tight = root.tighten(middle).tighten(leaf)
    for ancestor in (root, middle, leaf):
        assert granted(tight) <= granted(ancestor)
        assert tight.max_depth <= ancestor.max_depth


@given(policies)
def test_tighten_by_nothing_inherits(parent):
    """``None`` means inherit: the parent's policy unchanged."""
    assert parent.tighten(None) == parent


@given(policies)
def test_tighten_by_itself_changes_no_grant_or_limit(policy):
    """A policy tightened by itself grants and limits exactly as before."""
    tight = policy.tighten(policy)
    assert granted(tight) == granted(policy)
    assert tight.model_dump(exclude={"zones"}) == policy.model_dump(exclude={"zones"})


@example(
    parent=PolicySpec(open_zones=("default",), zones={"alice": ("eu",)}),
    child=PolicySpec(open_zones=("default", "eu")),
)
@given(policies, policies)
def test_tighten_keeps_what_both_grant(parent, child):
    """A (user, zone) both policies grant stays granted: tightening intersects the grants."""
    # The explicit example: the parent grants alice 'eu' by name, the child opens 'eu' to
    # everyone; both let alice act in 'eu', so the child must too.
    tight = parent.tighten(child)
    assert granted(tight) == granted(parent) & granted(child)


@given(st.sampled_from(USERS), st.sampled_from(ZONES), policies)
def test_open_zone_is_granted_to_every_user(user, zone, policy):
    """An open zone is granted to everyone; any other only to the users it is listed for."""
    expected = zone in policy.open_zones or zone in policy.zones.get(user, ())
    assert policy.grants(user, zone) is expected
