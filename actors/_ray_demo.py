"""The main job on Ray: the demo tree answers a mix of intents, then everything shuts down.

It starts (or reuses) a local Ray cluster, starts the demo tree (``examples/demo-tree.toml``:
depth 2, a template spawned on demand) as Ray actors, sends the demo's intents — routed to
children, free text, a composite plan, a spawn from a template, and intents that policy, the
rate limit or a missing capability refuse — waits for every outcome, reads the tree, stops the
tree, and shuts Ray down if it started it. The report is the model demo's, with wall time.
"""

from __future__ import annotations

import os
import tempfile
import time

import ray

from actors._model_demo import DEMO_TREE, ModelReport, _intents
from actors._runtime import RayTree
from vsm.address import depth
from vsm.spec import TreeSpec

__all__ = ["run_ray_demo"]


def run_ray_demo(*, address: str | None = None) -> ModelReport:
    """Run the demo tree on Ray (module docstring) and report."""
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    began = time.monotonic()
    storage = os.path.join(tempfile.mkdtemp(prefix="vsm-demo-"), "demo.sqlite")
    spec = TreeSpec.model_validate({**DEMO_TREE, "name": f"demo-{os.getpid()}", "storage": storage})
    tree = RayTree.start(spec, timeout=90)
    try:
        # A burst far above the demo user's rate (50/s, burst 20), however fast this machine is.
        intents = _intents(flood=100)
        refs = [tree.submit(intent) for intent in intents]
        outcomes = {o.intent_id: o for o in ray.get(refs, timeout=120)}
        replies = tree.replies()
        described = tree.describe()
        variety = ray.get(tree.desk().variety.remote(spec.root.name))
        processed = tree.processed()
    finally:
        tree.stop()
        if started_ray:
            ray.shutdown()
    shape = {
        part["path"]: {
            "depth": depth(part["path"]),
            "alive": True,
            "placement": part["placement"],
            "hosts": part["hosts"],
            "incarnation": part["incarnation"],
            "units": part.get("units") or [],
        }
        for part in described
    }
    return ModelReport(
        intents=intents,
        outcomes=outcomes,
        replies=replies,
        lost={i for i, o in outcomes.items() if o.detail.startswith("no answer from the tree")},
        tree=shape,
        variety=variety,
        messages=processed,
        virtual_seconds=time.monotonic() - began,
        quiet=True,
    )
