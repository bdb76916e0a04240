"""A viable system: the five Systems of one path, and the rules for making children."""

from __future__ import annotations

from typing import Any

from vsm.address import SystemId, check_path
from vsm.audit import AuditChain, Signer
from vsm.classify import Classifier
from vsm.crdt._data import require
from vsm.effects import Effect, Emit, Send
from vsm.errors import MalformedDataError
from vsm.messages import ChildSpawned, EventsObserved, Message, Started, Watch
from vsm.registry import CapabilityRegistry
from vsm.rules import RuleSet
from vsm.spec import FederationSpec, LimitsSpec, NodeSpec, PolicySpec, TreeSpec
from vsm.systems._node import Node
from vsm.systems._s1 import System1
from vsm.systems._s2 import System2
from vsm.systems._s3 import System3
from vsm.systems._s4 import System4
from vsm.systems._s5 import System5

__all__ = ["ViableSystem"]


class ViableSystem:
    """Systems 1 to 5 of one viable system, behind one entry point.

    Args:
        path: Where it sits in the tree.
        spec: Its node spec.
        limits: Effective limits (the node's own, else inherited).
        parent_policy: The parent's effective policy (the tree policy for a root).
        signer: Signs S3's audit checkpoints (optional).
        classifier: S1's classifier (optional).
        incarnation: Which start of this viable system this is (0, then one more per restart);
            hosts that restart without the old state must pass a new one.
        federation: For a federated root, the tree's federation: its peers' roots become
            units and get its strong signals (see :class:`Node`).
    """

    __slots__ = ("_by_id", "node", "s1", "s2", "s3", "s4", "s5")

    def __init__(
        self,
        path: str,
        spec: NodeSpec,
        *,
        limits: LimitsSpec,
        parent_policy: PolicySpec,
        signer: Signer | None = None,
        classifier: Classifier | None = None,
        incarnation: int = 0,
        federation: FederationSpec | None = None,
    ) -> None:
        check_path(path)
        node = Node(
            path=path,
            spec=spec,
            limits=spec.limits or limits,
            policy=parent_policy.tighten(spec.policy),
            parent_policy=parent_policy,
            children={f"{path}/{c.name}": c for c in spec.children},
            peers=tuple(p.root for p in federation.peers) if federation is not None else (),
            federation_threshold=federation.algedonic_threshold if federation else 1.0,
        )
        self.node = node
        self.s5 = System5(node)  # first: it prunes static children past the depth guard
        self.s1 = System1(node, classifier)
        self.s2 = System2(node)
        self.s3 = System3(node, signer)
        self.s4 = System4(node, incarnation)
        self._by_id: dict[SystemId, System1 | System2 | System3 | System4 | System5] = dict(
            zip(SystemId, (self.s1, self.s2, self.s3, self.s4, self.s5), strict=True)
        )

    @classmethod
    def root(
        cls, tree: TreeSpec, *, signer: Signer | None = None, incarnation: int = 0
    ) -> ViableSystem:
        """The root viable system of ``tree`` (with its federation peers, if any)."""
        return cls(
            tree.root.name,
            tree.root,
            limits=tree.limits,
            parent_policy=tree.policy,
            signer=signer,
            incarnation=incarnation,
            federation=tree.federation,
        )

    def child(
        self, path: str, spec: NodeSpec, *, signer: Signer | None = None, incarnation: int = 0
    ) -> ViableSystem:
        """A child of this viable system at ``path``, under this one's current policy."""
        return ViableSystem(
            path,
            spec,
            limits=self.node.limits,
            parent_policy=self.s5.policy,
            signer=signer,
            incarnation=incarnation,
        )

    @property
    def path(self) -> str:
        """This viable system's path."""
        return self.node.path

    def system(self, system: SystemId) -> System1 | System2 | System3 | System4 | System5:
        """One of the five Systems."""
        return self._by_id[system]

    def handle(self, system: SystemId, message: Message, now: float) -> list[Effect]:
        """Deliver ``message`` to ``system``; return its effects.

        When S3 runs rules, the events another System emitted go to S3 too (S3 rule 6);
        ``Watch`` from S3 says whether it does (the viable system takes it, not the System).
        """
        if isinstance(message, Watch):
            if system is not SystemId.S3:
                self.s3.watching = message.on
            return []
        effects = self._by_id[system].handle(message, now)
        if system is SystemId.S3 or not self.s3.watching:
            return effects
        events = tuple(e.event for e in effects if isinstance(e, Emit))
        if events:
            effects.append(
                Send(to=self.node.at(SystemId.S3), message=EventsObserved(events=events))
            )
        return effects

    def start(self, now: float) -> list[Effect]:
        """The effects of starting: each System handles ``Started`` once."""
        effects: list[Effect] = []
        for system in SystemId:
            effects += self.handle(system, Started(), now)
        return effects

    def checkpoint(self, systems: frozenset[SystemId] | None = None) -> dict[str, Any]:
        """What a restart must keep, as plain data (msgpack-ready), one part per System.

        S5: the effective and local policy, and every child that exists (spawned from
        templates too). S4: the registry replica. S3: the audit chain, so it goes on from its
        head. Only the parts of ``systems`` (default: all) are taken — a host that holds one
        System checkpoints that one. In-flight intents are not kept: a restarted unit gets
        them again from its parent's resends (``LimitsSpec.resend_every``), under the same id.
        """
        wanted = set(SystemId) if systems is None else systems
        parts: dict[str, Any] = {}
        if SystemId.S5 in wanted:
            local = self.s5._local
            parts["S5"] = {
                "policy": self.s5.policy.model_dump(mode="json"),
                "local": None if local is None else local.model_dump(mode="json"),
                "children": {
                    p: c.model_dump(mode="json") for p, c in sorted(self.node.children.items())
                },
            }
        if SystemId.S4 in wanted:
            writer = self.s4.registry._writer
            epoch = int(writer.rsplit("@", 1)[1]) if "@" in writer else 0
            parts["S4"] = {"registry": self.s4.registry.to_data(), "epoch": epoch}
        if SystemId.S3 in wanted:
            parts["S3"] = {"audit": self.s3.chain.to_data(), "rules": self.s3.rules.to_data()}
        return {"type": "viable-system", "path": self.path, "parts": parts}

    def restore(self, data: object, incarnation: int, now: float) -> list[Effect]:
        """Take over a :meth:`checkpoint` before :meth:`start`; return effects to carry out.

        A policy older than the one this start got (a lower version) is ignored: patches only
        tighten forward. Registry writes go on under a new epoch: ``incarnation``, or one past
        the checkpoint's if that is not above it (a restarted parent counts from 1 again).

        Raises:
            MalformedDataError: ``data`` is not a checkpoint of this viable system.
        """
        fields = require(data, "checkpoint", ("type", "path", "parts"))
        if fields["type"] != "viable-system" or fields["path"] != self.path:
            raise MalformedDataError(
                "checkpoint", "path", f"expected a checkpoint of {self.path!r}", fields["path"]
            )
        parts = fields["parts"]
        if not isinstance(parts, dict):
            raise MalformedDataError("checkpoint", "parts", "expected a map", parts)
        effects: list[Effect] = []
        try:
            if "S5" in parts:
                s5 = parts["S5"]
                policy = PolicySpec.model_validate(s5["policy"])
                if policy.version >= self.s5.policy.version:
                    self.s5.policy = policy
                    if s5["local"] is not None:
                        self.s5._local = PolicySpec.model_validate(s5["local"])
                for path, raw in s5["children"].items():
                    if path in self.node.children:
                        continue
                    spec = NodeSpec.model_validate(raw)
                    self.node.children[path] = spec
                    spawned = ChildSpawned(path=path, offers=frozenset(spec.offered()))
                    for system in (SystemId.S1, SystemId.S2, SystemId.S4):
                        effects += self.handle(system, spawned, now)
            if "S4" in parts:
                epoch = max(incarnation, int(parts["S4"]["epoch"]) + 1)
                self.s4.registry = CapabilityRegistry.from_data(
                    parts["S4"]["registry"], buckets=self.s4.registry.buckets, epoch=epoch
                )
            if "S3" in parts:
                self.s3.chain = AuditChain.from_data(parts["S3"]["audit"])
                if "rules" in parts["S3"]:  # checkpoints before rules had none
                    self.s3.rules = RuleSet.from_data(parts["S3"]["rules"])
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            if isinstance(exc, MalformedDataError):
                raise
            raise MalformedDataError("checkpoint", "parts", str(exc), parts) from exc
        return effects

    def variety(self) -> dict[str, object]:
        """Variety arriving against variety answerable, with the attenuators and amplifiers.

        Attenuators reduce the variety that reaches the units; amplifiers raise the variety
        the viable system can answer. Each is named with its current setting.
        """
        node, limits = self.node, self.node.limits
        children = [u for u in self.s1.units() if u != "local"]
        return {
            **self.s1.variety(),
            "attenuators": [
                f"S5 zone policy (open zones {list(self.s5.policy.open_zones)})",
                f"S2 user rate limit ({limits.user_rate}/s, burst {limits.user_burst})",
                f"S2 capability rate limit ({limits.capability_rate}/s, follows load)",
                f"S2 in-flight cap ({limits.max_in_flight})",
            ],
            "amplifiers": [
                f"S1 delegation to {len(children)} child units",
                f"S4 spawning from {len(node.spec.templates)} templates",
                "S4 composite plans",
            ],
        }

    def __repr__(self) -> str:
        return f"ViableSystem({self.path!r})"
