"""Chaos over the simulator: a hypothesis state machine attacks a tree and checks the contract.

The machine drives :data:`~tests.strategies_model.MACHINE_TREE` (three levels, two units sharing
a capability, templates at every level, two of them past the depth guard, supervisors that
escalate on a second death) on a network whose loss, duplication and delays are drawn per run
(from a seed hypothesis draws), and interleaves: intents of every kind (exact capability, free
text, composite plans, unknown capabilities, zones not granted), spawns by template demand,
crashes and restarts of every node but the root, partitions (between any two subtrees, a
subtree and the rest of one around it included) and heals, policy patches that raise the
version, algedonic signals, and runs of virtual time.

Invariants, checked after every step:

- the tree sends the client at most one terminal outcome per intent;
- no viable system is ever deeper than the depth guard.

At teardown the network is made whole (partitions healed and loss switched off, duplication and
delays kept: with loss on, missed heartbeats keep flipping units to ``warning`` and nothing is
ever quiet) and the tree must go quiet; then every intent has exactly one outcome and none was
lost, each outcome is one its kind of intent may have (a zone not granted is a POLICY
rejection, an echo returns its parameters...), the registry of every running node equals the root's
part within that node's subtree,
every child holds its parent's policy as it stands now, and every S3 audit chain verifies
against its signed checkpoints.

Algedonic signals are checked on reliable phases. A signal may rightly be lost to a dropped
message, a partition or a crash on its way, so the machine only *promises* delivery of a signal
raised while the network loses nothing (the ``network_phase`` rule switches between the drawn
network and the same one with its drop rate at 0), no partition is in force, every node from
the source up to the root is running, and its intensity reaches every threshold it could meet.
It then runs one second (far above the few milliseconds three hops take), checks that no node
on the path was crashed or restarted meanwhile, and asserts that the root's S5 recorded the
signal; teardown checks all promised signals once more.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os

from hypothesis import note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.strategies_model import (
    MACHINE_CAPABILITIES,
    MACHINE_GUARD,
    MACHINE_PATHS,
    MACHINE_TREE,
    intent_specs,
    make_intent,
    networks,
    patches,
)
from vsm.address import SystemId, depth, parent_of
from vsm.intents import Outcome, Refusal, Status
from vsm.messages import Algedonic
from vsm.sim import NetworkConfig, Simulation
from vsm.spec import PolicySpec


@dataclasses.dataclass(frozen=True)
class HmacKey:
    """Signs and verifies S3 checkpoints with one HMAC key (a stand-in for Ed25519)."""

    key_id: str = "machine"
    key: bytes = b"machine key"

    def sign(self, message: bytes) -> bytes:
        return hmac.new(self.key, message, hashlib.sha256).digest()

    def verify(self, key_id: str, message: bytes, signature: bytes) -> bool:
        return key_id == self.key_id and hmac.compare_digest(self.sign(message), signature)


KEY = HmacKey()
ALL_PATHS = ("root", *MACHINE_PATHS)
INTENSITIES = (-1.0, -0.7, -0.4, 0.3, 0.6, 1.0)


def ancestry(path: str) -> list[str]:
    """``path`` and every ancestor up to the root."""
    chain = [path]
    while (up := parent_of(chain[-1])) is not None:
        chain.append(up)
    return chain


class TreeUnderAttack(RuleBasedStateMachine):
    """A tree of viable systems on a hostile network, with crashes, partitions and patches."""

    @initialize(seed=st.integers(0, 2**32 - 1), network=networks)
    def start(self, seed: int, network: NetworkConfig) -> None:
        note(f"Simulation(MACHINE_TREE, seed={seed}, network={network})")
        self.lossy = network
        self.reliable_config = dataclasses.replace(network, drop=0.0)
        self.sim = Simulation(MACHINE_TREE, seed=seed, network=network, signer=KEY)
        self.submitted: list[str] = []
        self.asked: dict[str, dict] = {}
        self.next_version = 2
        self.thresholds: set[float] = set()
        self.promised: list[Algedonic] = []
        self.signals = 0

    # ---------------------------------------------------------------- rules

    @rule(spec=intent_specs, short=st.sampled_from((None, None, None, 0.5, 3.0)))
    def submit(self, spec: dict, short: float | None) -> None:
        intent_id = f"i{len(self.submitted)}"
        deadline = None if short is None else self.sim.now + short
        self.sim.submit(make_intent(intent_id, spec, deadline))
        self.submitted.append(intent_id)
        self.asked[intent_id] = spec

    @rule(path=st.sampled_from(MACHINE_PATHS))
    def crash(self, path: str) -> None:
        if path in self.sim.paths():
            self.sim.crash(path)

    @rule(path=st.sampled_from(MACHINE_PATHS))
    def restart(self, path: str) -> None:
        known = self.sim.tree()
        if path in known and not known[path]["alive"]:
            self.sim.restart(path)

    @rule(a=st.sampled_from(ALL_PATHS), b=st.sampled_from(ALL_PATHS))
    def partition(self, a: str, b: str) -> None:
        if a == b:
            return
        try:
            self.sim.partition(a, b)
        except ValueError as exc:  # a pair the simulator cannot cut apart
            note(f"partition({a!r}, {b!r}) refused: {exc}")

    @rule()
    def heal(self) -> None:
        self.sim.heal()

    @rule(reliable=st.booleans())
    def network_phase(self, reliable: bool) -> None:
        self.sim.network.config = self.reliable_config if reliable else self.lossy

    @rule(path=st.sampled_from(ALL_PATHS), fields=patches)
    def patch_policy(self, path: str, fields: dict) -> None:
        # One version counter for the whole tree: every patch raises every version in force.
        policy = PolicySpec(max_depth=MACHINE_GUARD, version=self.next_version, **fields)
        self.next_version += 1
        self.thresholds.add(policy.algedonic_threshold)
        self.sim.patch_policy(path, policy)

    @rule(path=st.sampled_from(ALL_PATHS), intensity=st.sampled_from(INTENSITIES))
    def signal(self, path: str, intensity: float) -> None:
        self.signals += 1
        detail = f"signal {self.signals}"
        running = set(self.sim.paths())
        chain = ancestry(path)
        threshold = max(
            self.thresholds
            | {self.sim.node(p).s5.policy.algedonic_threshold for p in running}
            | {self.sim.node(p).s5.parent_policy.algedonic_threshold for p in running}
        )
        promised = (
            self.sim.network.config.drop == 0.0
            and not self.sim.network.partitioned
            and all(p in running for p in chain)
            and abs(intensity) >= threshold
        )
        before = {p: self.sim.node(p) for p in chain if p in running}
        self.sim.signal(path, intensity, detail)
        if not promised:
            return
        self.sim.run_for(1.0)
        if any(p not in self.sim.paths() or self.sim.node(p) is not before[p] for p in chain):
            return  # something on the way crashed or restarted: no promise
        signal = Algedonic(source=path, intensity=intensity, detail=detail)
        self.promised.append(signal)
        assert signal in self.sim.node("root").s5.signals, f"{signal} did not reach the root"

    @rule(seconds=st.sampled_from((0.01, 0.1, 0.5, 1.0, 3.0, 13.0)))
    def run(self, seconds: float) -> None:
        self.sim.run_for(seconds)

    # ---------------------------------------------------------------- invariants

    @invariant()
    def at_most_one_outcome_per_intent(self) -> None:
        replies = self.sim.replies()
        twice = {i: n for i, n in replies.items() if n > 1}
        assert not twice, f"intents answered more than once: {twice}"
        assert set(replies) <= set(self.submitted)

    @invariant()
    def depth_guard_holds(self) -> None:
        assert self.sim.max_depth_seen <= MACHINE_GUARD
        assert all(depth(p) <= MACHINE_GUARD for p in self.sim.paths())

    # ---------------------------------------------------------------- the end

    def teardown(self) -> None:
        if not hasattr(self, "sim"):
            return
        sim = self.sim
        sim.heal()
        sim.network.config = self.reliable_config
        assert sim.run_until_quiet(max_time=600, settle=20), "the tree did not go quiet"
        self.at_most_one_outcome_per_intent()
        self.depth_guard_holds()
        outcomes = sim.outcomes()
        assert sorted(outcomes) == sorted(self.submitted)
        assert sim.lost() == set()
        replies = sim.replies()
        assert all(replies.get(i) == 1 for i in self.submitted), replies
        running = sim.paths()
        assert "root" in running
        root = sim.node("root").s4.registry
        differing = []
        for p in running:  # each replica holds its own subtree, as the root knows it
            registry = sim.node(p).s4.registry
            if registry.bucket_delta(range(registry.buckets)) != root.part(p):
                differing.append(p)
        assert not differing, f"registries differ from the root's part at {differing}"
        for path in running:
            parent = parent_of(path)
            if parent in running and path in sim.node(parent).node.children:
                assert sim.node(path).s5.parent_policy == sim.node(parent).s5.policy, (
                    f"{path} holds a parent policy its parent {parent} no longer has"
                )
        for path in running:
            s3 = sim.node(path).s3
            report = s3.chain.verify(s3.checkpoints, KEY)
            assert report.ok, f"{path}: {report.reason}"
        root_signals = sim.node("root").s5.signals
        assert all(s in root_signals for s in self.promised)
        for intent_id, outcome in outcomes.items():
            self.check_outcome(self.asked[intent_id], outcome)

    @staticmethod
    def check_outcome(spec: dict, outcome: Outcome) -> None:
        """What each kind of intent may end in (an oracle that needs no model of the run)."""
        capability = spec.get("capability")
        if "zone" in spec:  # a zone its user is never granted
            assert (outcome.status, outcome.reason, outcome.by, outcome.path) == (
                Status.REJECTED,
                Refusal.POLICY,
                SystemId.S5,
                "root",
            ), outcome
        elif capability is not None and capability not in MACHINE_CAPABILITIES:
            assert outcome.status is Status.REJECTED, outcome
            assert outcome.reason in (Refusal.NO_CAPABILITY, Refusal.POLICY), outcome
        elif capability in ("a.fail", "v.echo", "zz.echo"):  # a failing kernel; past the guard
            assert outcome.status is not Status.COMPLETED, outcome
        elif outcome.status is Status.COMPLETED and capability is not None:
            params = spec.get("params", {})
            expected = sum(params.get("values", [])) if capability.endswith(".sum") else params
            assert outcome.result == expected, outcome
        if outcome.status is not Status.COMPLETED:
            assert outcome.reason is not None, outcome


PROFILE = os.environ.get("VSM_HYPOTHESIS_PROFILE", "dev")
MAX_EXAMPLES = (
    max(500, settings.default.max_examples) if PROFILE == "ci" else settings.default.max_examples
)

TreeUnderAttack.TestCase.settings = settings(
    settings.default, max_examples=MAX_EXAMPLES, stateful_step_count=25
)
TestTreeUnderAttack = TreeUnderAttack.TestCase
TestTreeUnderAttack.__doc__ = (
    "No intent lost or answered twice, the depth guard holds, registries converge, audit chains "
    "verify, and promised algedonic signals reach the root, under chaos."
)
