"""Where a viable system lives on Ray: namespaces, actor names, pools, and specs by path.

Rules:
    1. A tree named ``T`` lives in the Ray namespace ``vsm-T``; nothing else lives there.
    2. Actor names: ``vsm:{path}`` hosts the viable system at ``path`` (placement ``node``);
       ``vsm:{path}#S3`` hosts one of its Systems (placement ``system``); ``vsm:pool/{k}`` is
       the k-th actor of the tree's pool (placement ``pooled``), chosen by a stable hash of
       the path, so every host finds a pooled viable system without asking anyone.
    3. The spec of any path is found from the tree spec alone: each segment below the root
       names a static child or a template of its parent.
    4. An actor is found by its name in its namespace (:func:`find_actor`), through a cache
       of handles when the caller keeps one.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import ray

from vsm.address import SystemId
from vsm.spec import NodeSpec, Placement, TreeSpec

__all__ = [
    "actor_name",
    "actor_names",
    "find_actor",
    "host_in",
    "host_name",
    "namespace_of",
    "pool_index",
    "pool_name",
    "spec_at",
    "uses_pool",
]

PREFIX = "vsm:"
_TREE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def namespace_of(tree: str) -> str:
    """The Ray namespace of the tree named ``tree`` (rule 1).

    Raises:
        ValueError: the name is not 1-63 letters, digits, ``_ . -``, starting alphanumeric.
    """
    if not _TREE_NAME.match(tree):
        raise ValueError(
            f"tree name {tree!r} must be 1-63 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return f"vsm-{tree}"


def actor_name(path: str, system: SystemId | None = None) -> str:
    """``vsm:root/a`` for a node host, ``vsm:root/a#S3`` for one System's host (rule 2)."""
    return f"{PREFIX}{path}" if system is None else f"{PREFIX}{path}#{system.name}"


def pool_index(path: str, size: int) -> int:
    """The pool actor that hosts the pooled viable system at ``path`` (stable everywhere)."""
    digest = hashlib.blake2b(path.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % size


def pool_name(index: int) -> str:
    """The name of the pool actor ``index``."""
    return f"{PREFIX}pool/{index}"


def actor_names(path: str, placement: Placement, pool_size: int) -> list[str]:
    """Every actor name that hosts a part of the viable system at ``path``."""
    if placement == "system":
        return [actor_name(path, s) for s in SystemId]
    if placement == "pooled":
        return [pool_name(pool_index(path, pool_size))]
    return [actor_name(path)]


def host_name(path: str, system: SystemId, placement: Placement, pool_size: int) -> str:
    """The name of the actor that hosts ``system`` of the viable system at ``path``."""
    if placement == "system":
        return actor_name(path, system)
    if placement == "pooled":
        return pool_name(pool_index(path, pool_size))
    return actor_name(path)


def host_in(tree: TreeSpec, path: str, system: SystemId, pool_size: int) -> str:
    """:func:`host_name` with the placement the tree's spec gives ``path`` (default ``node``)."""
    spec = spec_at(tree, path)
    return host_name(path, system, spec.placement if spec is not None else "node", pool_size)


def spec_at(tree: TreeSpec, path: str) -> NodeSpec | None:
    """The spec of the viable system at ``path``: static children, then templates (rule 3)."""
    first, *rest = path.split("/")
    node = tree.root
    if first != node.name:
        return None
    for segment in rest:
        found = next((c for c in node.children if c.name == segment), None)
        if found is None:
            found = next((t for t in node.templates if t.name == segment), None)
        if found is None:
            return None
        node = found
    return node


def uses_pool(tree: TreeSpec) -> bool:
    """Whether any node or template of ``tree`` is placed ``pooled``."""
    stack = [tree.root]
    while stack:
        node = stack.pop()
        if node.placement == "pooled":
            return True
        stack += [*node.children, *node.templates]
    return False


def find_actor(name: str, namespace: str, cache: dict[str, Any] | None = None) -> Any:
    """The handle of the live actor ``name`` in ``namespace``, or ``None`` (rule 4).

    With ``cache``, a handle found is kept there and reused; the caller drops stale ones.
    """
    handle = cache.get(name) if cache is not None else None
    if handle is None:
        try:
            handle = ray.get_actor(name, namespace=namespace)
        except ValueError:
            return None
        if cache is not None:
            cache[name] = handle
    return handle
