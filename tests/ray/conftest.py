"""One local Ray cluster for the whole test session, and tree specs for the live tests."""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator

import pytest

ray = pytest.importorskip("ray")

from actors._runtime import RayTree  # noqa: E402
from vsm.spec import CapabilitySpec, LimitsSpec, NodeSpec, Placement, PolicySpec, TreeSpec  # noqa: E402

_names = itertools.count(1)
STATE_API: dict[str, str] = {}
"""``address``: the dashboard of the session's cluster, for ``ray.util.state`` calls (explicit,
so another local cluster on the machine cannot confuse them)."""


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One local Ray cluster for the session, shut down at its end.

    Two CPUs for kernels (control actors ask for none), and a dashboard so that the State API
    (``ray.util.state``) answers.
    """
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    context = ray.init(
        num_cpus=2,
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        log_to_driver=False,
        configure_logging=False,
    )
    STATE_API["address"] = f"http://{context.dashboard_url}"
    try:
        yield
    finally:
        STATE_API.clear()
        ray.shutdown()


def cap(
    name: str, kernel: str = "echo", zone: str = "default", description: str = ""
) -> CapabilitySpec:
    return CapabilitySpec(name=name, kernel=kernel, description=description or name, zone=zone)


def tree_spec(
    placement: Placement = "node",
    *,
    max_depth: int = 3,
    templates: tuple[NodeSpec, ...] = (),
    limits: LimitsSpec | None = None,
) -> TreeSpec:
    """A depth-3 tree: root -> a -> b, and root -> c, every node with its own capability."""
    name = f"t{next(_names)}-{os.getpid()}"
    return TreeSpec(
        name=name,
        storage=os.path.join(tempfile.gettempdir(), f"vsm-test-{name}.sqlite"),
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
                    capabilities=(cap("a.sum", "sum", description="add up a list of numbers"),),
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
