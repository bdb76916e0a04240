"""A viable system: the five Systems of one path, and the rules for making children."""

from __future__ import annotations

from vsm.address import SystemId, check_path
from vsm.audit import Signer
from vsm.classify import Classifier
from vsm.effects import Effect
from vsm.messages import Message, Started
from vsm.spec import LimitsSpec, NodeSpec, PolicySpec, TreeSpec
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
    ) -> None:
        check_path(path)
        node = Node(
            path=path,
            spec=spec,
            limits=spec.limits or limits,
            policy=parent_policy.tighten(spec.policy),
            parent_policy=parent_policy,
            children={f"{path}/{c.name}": c for c in spec.children},
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
        """The root viable system of ``tree``."""
        return cls(
            tree.root.name,
            tree.root,
            limits=tree.limits,
            parent_policy=tree.policy,
            signer=signer,
            incarnation=incarnation,
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
        """Deliver ``message`` to ``system``; return its effects."""
        return self._by_id[system].handle(message, now)

    def start(self, now: float) -> list[Effect]:
        """The effects of starting: each System handles ``Started`` once."""
        effects: list[Effect] = []
        for system in SystemId:
            effects += self.handle(system, Started(), now)
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
