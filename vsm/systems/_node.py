"""What the five Systems of one viable system share: who they are and who is around them."""

from __future__ import annotations

from dataclasses import dataclass, field

from vsm.address import Address, SystemId, depth, parent_of
from vsm.spec import LimitsSpec, NodeSpec, PolicySpec

__all__ = ["LOCAL", "Node"]

LOCAL = "local"
"""The unit id of a viable system's own leaf kernels."""


@dataclass(slots=True)
class Node:
    """The shared, mostly read-only context of one viable system.

    Attributes:
        path: The viable system's path.
        spec: Its node spec.
        limits: Effective limits.
        policy: The effective policy at start (S5 owns it afterwards).
        parent_policy: The parent's effective policy (the tree policy for a root).
        children: Child viable systems that exist now: path -> spec (S5 adds, S3 restarts).
        peers: At a federated root, the roots of the peer trees in other clusters: each is
            a unit for what it offers (through the bridge), and gets the algedonic signals
            from ``federation_threshold`` on.
        federation_threshold: The |intensity| from which a root's signals cross to peers.
    """

    path: str
    spec: NodeSpec
    limits: LimitsSpec
    policy: PolicySpec
    parent_policy: PolicySpec
    children: dict[str, NodeSpec] = field(default_factory=dict)
    peers: tuple[str, ...] = ()
    federation_threshold: float = 1.0
    _own: dict[SystemId, Address] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._own = {system: Address(self.path, system) for system in SystemId}

    @property
    def parent(self) -> str | None:
        """The parent's path, or ``None`` at the root."""
        return parent_of(self.path)

    @property
    def depth(self) -> int:
        """How deep this viable system is (the root is 0)."""
        return depth(self.path)

    def at(self, system: SystemId, path: str | None = None) -> Address:
        """The address of ``system`` here, or at ``path``."""
        if path is None:
            return self._own[system]
        return Address(path, system)

    def child_of(self, path: str) -> str | None:
        """The child whose subtree holds ``path`` (``None`` if none does)."""
        prefix = self.path + "/"
        if not path.startswith(prefix):
            return None
        child = prefix + path[len(prefix) :].split("/", 1)[0]
        return child if child in self.children else None

    def unit_of(self, provider: str) -> str | None:
        """The unit that reaches ``provider``: the child above it, or a peer root it lies in."""
        child = self.child_of(provider)
        if child is not None or not self.peers:
            return child
        top = provider.split("/", 1)[0]
        return top if top in self.peers else None
