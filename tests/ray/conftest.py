"""One local Ray cluster for the whole test session, and tree specs for the live tests."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

ray = pytest.importorskip("ray")

from actors._runtime import RayTree  # noqa: E402
from vsm.spec import CapabilitySpec, LimitsSpec, NodeSpec, Placement, PolicySpec, TreeSpec  # noqa: E402

_names = itertools.count(1)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One local Ray cluster for the session, shut down at its end.

    Two CPUs for kernels (control actors ask for none), and a dashboard so that the State API
    (``ray.util.state``) answers.
    """
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    ray.init(
        num_cpus=2,
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield
    finally:
        ray.shutdown()


def cap(name: str, kernel: str = "echo", zone: str = "default") -> CapabilitySpec:
    return CapabilitySpec(name=name, kernel=kernel, description=name, zone=zone)


def tree_spec(
    placement: Placement = "node",
    *,
    max_depth: int = 3,
    templates: tuple[NodeSpec, ...] = (),
    limits: LimitsSpec | None = None,
) -> TreeSpec:
    """A depth-3 tree: root -> a -> b, and root -> c, every node with its own capability."""
    return TreeSpec(
        name=f"t{next(_names)}-{os.getpid()}",
        policy=PolicySpec(max_depth=max_depth, zones={"alice": ("eu",)}),
        limits=limits or LimitsSpec(user_rate=1_000, user_burst=2_000),
        root=NodeSpec(
            name="root",
            placement=placement,
            capabilities=(cap("root.echo"),),
            templates=templates,
            children=(
                NodeSpec(
                    name="a",
                    placement=placement,
                    capabilities=(cap("a.sum", "sum"),),
                    children=(
                        NodeSpec(name="b", placement=placement, capabilities=(cap("b.echo"),)),
                    ),
                ),
                NodeSpec(name="c", placement=placement, capabilities=(cap("c.echo", zone="eu"),)),
            ),
        ),
    )


@pytest.fixture
def start_tree(ray_cluster: None) -> Iterator[object]:
    """Start trees on the shared cluster; every tree started is stopped afterwards."""
    started: list[RayTree] = []

    def start(spec: TreeSpec) -> RayTree:
        tree = RayTree.start(spec, timeout=120)
        started.append(tree)
        return tree

    yield start
    for tree in started:
        tree.stop()
