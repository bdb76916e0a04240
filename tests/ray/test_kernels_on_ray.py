"""The numpy kernels (issue 8) as capabilities of a tree on Ray: chunked tasks, exact results."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
import time
from typing import Any

import pytest
import ray

import actors._kernels
from actors._kernels import KernelRunner, ResourceMonitor
from actors._runtime import RayTree
from tests.ray.conftest import _names
from vsm.intents import Intent, Refusal, Status
from vsm.kernels import BUILTIN_KERNELS, PatternConfig, ResourceMetrics, generate_batch
from vsm.spec import CapabilitySpec, LimitsSpec, NodeSpec, PolicySpec, TreeSpec

LATTICE = {"cells": 20, "barrier_height": 1.0, "barrier_width": 0.3, "well_width": 0.5}
TUNNEL = {"lattice": LATTICE, "e_min": 0.05, "e_max": 3.0, "points": 4_001, "coherence": 0.9}
PATTERNS = {
    "patterns": [
        {"type": kind, "complexity": 2.5, "seed": seed}
        for seed, kind in enumerate(["spiral", "lissajous", "rose", "lattice", "quantum"] * 2)
    ],
    "include_vertices": True,
}


def kernel_tree() -> TreeSpec:
    """A root whose child ``work`` offers tunnelling and patterns as one-CPU kernels."""
    name = f"k{next(_names)}-{os.getpid()}"
    return TreeSpec(
        name=name,
        storage=os.path.join(tempfile.gettempdir(), f"vsm-test-{name}.sqlite"),
        policy=PolicySpec(max_depth=2),
        limits=LimitsSpec(user_rate=1_000, user_burst=2_000),
        root=NodeSpec(
            name="root",
            children=(
                NodeSpec(
                    name="work",
                    capabilities=(
                        CapabilitySpec(name="tunnel", kernel="tunnel", cpus=1),
                        CapabilitySpec(name="pattern", kernel="pattern", cpus=1),
                    ),
                ),
            ),
        ),
    )


def work_host(tree: RayTree) -> Any:
    return tree.handle("vsm:root/work")


def test_a_tunnel_intent_runs_in_chunks_and_equals_the_single_process_result(
    start_tree: Any,
) -> None:
    """Split across the free cores as Ray tasks, merged: the same floats as in one process."""
    tree = start_tree(kernel_tree())
    outcome = tree.ask(Intent(id="t1", capability="tunnel", params=TUNNEL, user="u"), timeout=120)
    assert outcome.status is Status.COMPLETED, outcome
    assert outcome.result == BUILTIN_KERNELS["tunnel"](TUNNEL)
    metrics = ray.get(work_host(tree).kernel_metrics.remote(), timeout=30)
    # Two free CPUs in the session's cluster: the controller asked for two chunks.
    assert metrics["successful_tunnels"] == 2
    assert metrics["failed_tunnels"] == 0
    assert 0 < metrics["frequency"] <= 432.0 * 1.618033988749895
    assert sum(metrics["utilisation_histogram"]) == 2


def test_a_pattern_batch_intent_equals_generate_batch(start_tree: Any) -> None:
    """A batch of GLIMMER patterns comes back vertex for vertex as generated in one process."""
    tree = start_tree(kernel_tree())
    outcome = tree.ask(
        Intent(id="p1", capability="pattern", params=PATTERNS, user="u"), timeout=120
    )
    assert outcome.status is Status.COMPLETED, outcome
    expected = generate_batch([PatternConfig(**p) for p in PATTERNS["patterns"]])
    got = outcome.result["patterns"]
    assert [p["digest"] for p in got] == [p.digest() for p in expected]
    assert [p["points"] for p in got] == [p.vertices.tolist() for p in expected]


def test_bad_kernel_params_fail_the_intent_with_the_param_named(start_tree: Any) -> None:
    """A bad parameter fails the intent (not the host) and the reason names it."""
    tree = start_tree(kernel_tree())
    bad = {**TUNNEL, "points": -3}
    outcome = tree.ask(Intent(id="bad", capability="tunnel", params=bad, user="u"), timeout=120)
    assert outcome.status is Status.FAILED
    assert "points" in outcome.detail, outcome
    ok = tree.ask(Intent(id="ok", capability="tunnel", params=TUNNEL, user="u"), timeout=120)
    assert ok.status is Status.COMPLETED


def test_the_resource_monitor_reads_the_cluster_and_the_os(ray_cluster: None) -> None:
    """From Ray: the session's two CPUs; from the OS: this machine's cores and memory."""
    on_ray = ResourceMonitor("ray").read()
    assert on_ray.cpus_total == 2
    assert 0 <= on_ray.cpus_free <= 2
    assert on_ray.memory_total > 0
    on_os = ResourceMonitor("os").read()
    assert on_os.cpus_total == os.cpu_count()
    assert 0 < on_os.memory_free <= on_os.memory_total
    assert KernelRunner().monitor.source == "auto"


class _ReadWhileBusy(ResourceMonitor):
    """The cluster as it is at the first reading; every later one sees no free CPU.

    A later reading is taken while the runner's own chunks run (the runner reads in the
    background once a reading is stale), so "no free CPU" is what Ray would report then.
    """

    def __init__(self) -> None:
        super().__init__("ray")
        self.reads = 0

    def read(self) -> ResourceMetrics:
        self.reads += 1
        first = super().read()
        return first if self.reads == 1 else dataclasses.replace(first, cpus_free=0.0)


def test_a_reading_taken_while_the_runners_own_chunks_ran_does_not_shrink_the_next_split(
    ray_cluster: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CPUs its chunks held when a reading was taken count as free once they are done."""
    monkeypatch.setattr(actors._kernels, "READ_EVERY", 0.0)  # every run refreshes the reading
    monitor = _ReadWhileBusy()
    runner = KernelRunner(monitor=monitor)
    expected = BUILTIN_KERNELS["tunnel"](TUNNEL)

    async def thrice() -> list[tuple[Any, str | None]]:
        return [await runner.run("tunnel", TUNNEL, 1.0) for _ in range(3)]

    outcomes = asyncio.run(thrice())
    assert outcomes == [(expected, None)] * 3
    assert monitor.reads >= 3  # later runs were split on readings taken during earlier ones
    # Two chunks each time (two CPUs in the session's cluster); one chunk in a later run
    # would mean a busy reading was taken at face value.
    assert runner.controller.metrics().successful_tunnels == 6


def test_cancelling_an_intent_stops_its_running_kernel_tasks(start_tree: Any) -> None:
    """A cancel reaches the kernel's chunks as ``ray.cancel``: the cores are free at once."""
    tree = start_tree(kernel_tree())
    cpus = ray.cluster_resources()["CPU"]  # type: ignore[no-untyped-call]

    def free() -> float:  # Ray leaves out a resource none of which is free
        return float(ray.available_resources().get("CPU", 0.0))  # type: ignore[no-untyped-call]

    # The largest batch the kernel takes: about 9 s of work here, 4.5 s per core.
    heavy = {
        "patterns": [{"type": "quantum", "complexity": 10.0, "seed": s} for s in range(256)],
        "include_vertices": False,
    }
    ref = tree.submit(Intent(id="heavy", capability="pattern", params=heavy, user="u"))
    deadline = time.monotonic() + 30
    while free() > 0:
        assert time.monotonic() < deadline, "the kernel's chunks never took the cores"
        time.sleep(0.02)
    cancelled_at = time.monotonic()
    tree.cancel("heavy", "not needed")
    outcome = ray.get(ref, timeout=30)
    assert (outcome.status, outcome.reason) == (Status.FAILED, Refusal.CANCELLED)
    while free() < cpus:
        assert time.monotonic() - cancelled_at < 2.5, "the cancelled chunks kept their cores"
        time.sleep(0.02)
    metrics = ray.get(work_host(tree).kernel_metrics.remote(), timeout=30)
    assert metrics["stopped_tasks"] == 2  # one chunk per core, both stopped
    # The workers survived the cancel: the next kernel runs as usual.
    again = tree.ask(Intent(id="after", capability="tunnel", params=TUNNEL, user="u"), timeout=120)
    assert again.status is Status.COMPLETED
