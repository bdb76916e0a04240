"""Checkpoints of a viable system: what a restart keeps, through msgpack, into a new start."""

from __future__ import annotations

import msgpack
import pytest

from tests.sim.test_sim_basics import TREE, ask, started
from vsm.address import SystemId
from vsm.audit import verify_chain
from vsm.errors import MalformedDataError
from vsm.intents import Intent, Status
from vsm.spec import PolicySpec
from vsm.systems import ViableSystem


def through_the_wire(data: object) -> object:
    return msgpack.unpackb(msgpack.packb(data, use_bin_type=True), raw=False)


def lived_root() -> ViableSystem:
    """The root after a template spawn, a policy patch, registry gossip and audits."""
    sim = started()
    assert ask(sim, Intent(id="i", text="on demand")).status is Status.COMPLETED
    sim.patch_policy("root", PolicySpec(max_params=5, version=2))
    sim.run_until_quiet(max_time=60, settle=10)
    return sim.node("root")


def test_a_restart_from_a_checkpoint_keeps_policy_children_registry_and_audit_chain() -> None:
    old = lived_root()
    assert "root/t" in old.node.children
    data = through_the_wire(old.checkpoint())
    new = ViableSystem.root(TREE, incarnation=7)
    new.restore(data, incarnation=7, now=1_000.0)
    assert new.s5.policy == old.s5.policy
    assert new.s5.policy.version == 2
    assert new.node.children == old.node.children
    assert "root/t" in new.s1.units()  # S1 routes to the spawned template again
    assert new.s4.registry == old.s4.registry
    assert new.s3.chain.head == old.s3.chain.head
    new.s3.chain.append("supervision", "root#S3", {"after": "restart"}, 1_000.0)
    assert verify_chain(new.s3.chain.entries()).ok
    assert new.s4.registry._writer == "root@7"


def test_the_epoch_never_goes_back_when_the_parent_counts_from_one_again() -> None:
    old = lived_root()
    first = ViableSystem.root(TREE, incarnation=5)
    first.restore(through_the_wire(old.checkpoint()), incarnation=5, now=0.0)
    again = ViableSystem.root(TREE, incarnation=1)
    again.restore(through_the_wire(first.checkpoint()), incarnation=1, now=0.0)
    assert again.s4.registry._writer == "root@6"


def test_a_part_per_system_and_an_older_policy_is_ignored() -> None:
    old = lived_root()
    only_s3 = old.checkpoint(frozenset({SystemId.S3}))
    assert set(only_s3["parts"]) == {"S3"}
    newer = ViableSystem.root(TREE.model_copy(update={"policy": PolicySpec(version=9)}))
    newer.restore(through_the_wire(old.checkpoint()), incarnation=1, now=0.0)
    assert newer.s5.policy.version == 9


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {"type": "viable-system", "path": "elsewhere", "parts": {}},
        {"type": "viable-system", "path": "root", "parts": {"S4": {"registry": 3, "epoch": 0}}},
        {"type": "viable-system", "path": "root", "parts": {"S5": {"policy": {"nope": 1}}}},
        {"type": "viable-system", "path": "root", "parts": []},
    ],
)
def test_a_bad_checkpoint_is_refused_with_a_clear_error(bad: object) -> None:
    with pytest.raises(MalformedDataError):
        ViableSystem.root(TREE).restore(bad, incarnation=1, now=0.0)
