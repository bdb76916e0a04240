"""Benchmark ``ray``: viable systems on a local Ray cluster against raw Ray calls.

intent_ratio
    A one-node tree (placement ``node``) whose root serves ``bench.echo`` with the ``echo``
    kernel inline (``cpus = 0``); rate limits set above the load. One client pipelines N
    intents (``--quick``: N/5) by capability name and waits for all outcomes: each goes
    through the whole path — the desk, S5's policy, S1's routing, S2's rate limits and unit
    choice, the kernel, the reply. Baseline, same run, interleaved: an async Ray actor
    (``num_cpus=0``) with an ``echo`` method, N calls pipelined from the same driver.
    Figure: intents per second / raw calls per second. Checked: every intent completed with
    its parameters as result.

latency_ratio
    The same, one at a time: median seconds of one intent, submitted and awaited, over the
    median of one raw call. Figure: intent latency / raw call latency.

spawn_node_40_s, spawn_pooled_1000_s, spawn_pooled_1000_gb
    Start a tree (root, then children and grandchildren, every node with its own inline
    capability): 40 viable systems in placement ``node`` (40 Ray actors), and 1,000 in
    placement ``pooled`` (pool of ``POOL`` actors). Timed: from ``RayTree.start`` to every
    static viable system hosted (``RayTree.start`` waits for that). Memory: the resident set
    of the tree's actor processes (``/proc/PID/statm``), summed. Failure detection is given
    loaded-machine thresholds (``SPAWN_LIMITS``: dead after 120 s of silence), since starting
    dozens of processes saturates two cores and delays every running system's heartbeats.
    Checked: the described tree holds every path of the spec. ``--quick`` starts 13 and 100.
    A tree not up within ``SPAWN_TIMEOUT`` (180 s) is reported as taking that long, with how
    many viable systems were up by then (``spawn_pooled_1000_up``), and no memory figure.

kernel_efficiency
    A CPU-bound kernel through a tree: one intent for the ``tunnel`` capability (a 50-cell
    lattice over ``KERNEL_POINTS`` energies, the largest grid the kernel takes: about 1 s of
    work in one process on the machine of docs/benchmarks.md, ``cpus = 1``) submitted to a
    root that offers it; its host splits the work into one chunk per free core, runs them as
    Ray tasks, merges, and replies. Baseline:
    the same kernel run whole in the driver (single-process numpy), in the same run,
    interleaved. Efficiency = baseline time / (cores x intent time). Checked: the intent's
    result equals the single-process result. ``kernel_efficiency_400k`` is the same at
    ``SMALL_KERNEL_POINTS`` (0.4 of the work), reported without a target: there the
    intent's fixed cost (its actor hops, the chunk tasks' leases) and Ray's own daemons on two
    cores weigh more.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from typing import Any

import ray

from actors._runtime import RayTree, TreeStartError
from bench._harness import Figure, Progress, Report, check, median, time_interleaved
from vsm.intents import Intent, Status
from vsm.kernels import BUILTIN_KERNELS
from vsm.spec import CapabilitySpec, LimitsSpec, NodeSpec, Placement, PolicySpec, TreeSpec

__all__ = ["run"]

INTENTS = 2_000
LATENCY_SAMPLES = 200
RUNS = 5
QUICK_RUNS = 3
POOL = 8

INTENT_RATIO_TARGET = 0.5
LATENCY_RATIO_TARGET = 2.5
SPAWN_POOLED_S_TARGET = 60.0
SPAWN_POOLED_GB_TARGET = 8.0
SPAWN_TIMEOUT = 3 * SPAWN_POOLED_S_TARGET
KERNEL_EFFICIENCY_TARGET = 0.85
KERNEL_POINTS = 1_000_000
SMALL_KERNEL_POINTS = 400_000
QUICK_KERNEL_POINTS = 100_000

LIMITS = LimitsSpec(
    user_rate=1e6, user_burst=1e6, capability_rate=1e6, capability_burst=1e6, max_in_flight=100_000
)
# Starting dozens of Ray worker processes saturates two cores for a minute, and every running
# viable system's timers wait their turn: with the default thresholds (silent 12 s = dead) S2
# declares slow-starting children dead and S3 restarts them, which costs more processes. The
# spawn benchmark measures starting, so it gives failure detection the room a loaded machine
# needs (real deaths are caught at once by the hosts' death-watches either way).
SPAWN_LIMITS = LIMITS.model_copy(
    update={"warning_after": 30.0, "zombie_after": 60.0, "dead_after": 120.0}
)


@ray.remote(num_cpus=0)
class _Echo:
    """The baseline: one async actor answering one call per request."""

    async def echo(self, params: dict[str, Any]) -> dict[str, Any]:
        return params


def _capability(name: str) -> CapabilitySpec:
    return CapabilitySpec(name=name, kernel="echo", description=name, cpus=0)


def _tree(name: str, placement: Placement, fanout: tuple[int, ...]) -> TreeSpec:
    def node(label: str, levels: tuple[int, ...]) -> NodeSpec:
        width, *rest = levels or (0,)
        children = tuple(node(f"{label}-{i}", tuple(rest)) for i in range(width)) if levels else ()
        return NodeSpec(
            name=label.rsplit("/", 1)[-1],
            placement=placement,
            capabilities=(_capability(f"{label}.echo"),),
            children=children,
        )

    return TreeSpec(
        name=name,
        root=node("root", fanout),
        limits=SPAWN_LIMITS,
        policy=PolicySpec(max_depth=max(len(fanout), 1)),
        pool_size=POOL,
    )


def _paths(node: NodeSpec, prefix: str = "") -> Iterator[str]:
    path = f"{prefix}{node.name}"
    yield path
    for child in node.children:
        yield from _paths(child, path + "/")


def _intent_rates(count: int, runs: int) -> tuple[float, float, float, float]:
    """(intents/s, raw calls/s, intent latency s, raw latency s), medians over ``runs``."""
    spec = TreeSpec(
        name=f"bench-intents-{os.getpid()}",
        root=NodeSpec(name="root", capabilities=(_capability("bench.echo"),)),
        limits=LIMITS,
    )
    tree = RayTree.start(spec)
    echo = _Echo.remote()  # type: ignore[attr-defined]
    try:
        ray.get(echo.echo.remote({}))
        check(
            tree.ask(Intent(id="warm", capability="bench.echo", user="u")).status
            is Status.COMPLETED,
            "the warm-up intent completed",
        )
        subject, raw = [], []
        for run in range(runs):
            intents = [
                Intent(id=f"r{run}-{i}", capability="bench.echo", params={"i": i}, user="u")
                for i in range(count)
            ]
            start = time.perf_counter()
            outcomes = ray.get([tree.submit(i) for i in intents])
            subject.append(time.perf_counter() - start)
            check(
                all(o.status is Status.COMPLETED for o in outcomes)
                and [o.result for o in outcomes] == [{"i": i} for i in range(count)],
                "every pipelined intent completed with its parameters",
            )
            start = time.perf_counter()
            answers = ray.get([echo.echo.remote({"i": i}) for i in range(count)])
            raw.append(time.perf_counter() - start)
            check(answers == [{"i": i} for i in range(count)], "every raw call answered")
        one, base = [], []
        for i in range(LATENCY_SAMPLES):
            start = time.perf_counter()
            outcome = tree.ask(Intent(id=f"l{i}", capability="bench.echo", user="u"))
            one.append(time.perf_counter() - start)
            check(outcome.status is Status.COMPLETED, "a single intent completed")
            start = time.perf_counter()
            ray.get(echo.echo.remote({}))
            base.append(time.perf_counter() - start)
    finally:
        tree.stop()
        ray.kill(echo)
    return count / median(subject), count / median(raw), median(one), median(base)


def _kernel_efficiency(points: int, runs: int) -> tuple[float, float, float]:
    """(efficiency, one-process seconds, intent seconds), medians over ``runs``."""
    cores = int(ray.cluster_resources()["CPU"])  # type: ignore[no-untyped-call]  # untyped
    spec = TreeSpec(
        name=f"bench-kernel-{os.getpid()}",
        root=NodeSpec(
            name="root", capabilities=(CapabilitySpec(name="tunnel", kernel="tunnel", cpus=1),)
        ),
        limits=LIMITS,
    )
    params = {
        "lattice": {"cells": 50, "barrier_height": 1.0, "barrier_width": 0.3, "well_width": 0.5},
        "e_min": 0.05,
        "e_max": 5.0,
        "points": points,
        "coherence": 0.9,
    }
    kernel = BUILTIN_KERNELS["tunnel"]
    tree = RayTree.start(spec)
    ids = itertools.count()
    try:

        def through_tree() -> Any:
            intent = Intent(id=f"k{next(ids)}", capability="tunnel", params=params, user="u")
            return tree.ask(intent, timeout=300)

        outcome = through_tree()
        check(
            outcome.status is Status.COMPLETED and outcome.result == kernel(params),
            "the tunnel intent's result equals the single-process result",
        )
        times = time_interleaved({"one": lambda: kernel(params), "tree": through_tree}, runs)
    finally:
        tree.stop()
    one, many = median(times["one"]), median(times["tree"])
    return one / (cores * many), one, many


def _rss(pid: int) -> int:
    """Resident bytes of process ``pid`` (Linux ``/proc``)."""
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _spawn(
    name: str, placement: Placement, fanout: tuple[int, ...], timeout: float
) -> tuple[float, float | None, int, int]:
    """(seconds to start, resident GB or None, viable systems wanted, viable systems up).

    A tree that is not up within ``timeout`` counts as taking ``timeout`` seconds, with the
    number that were up by then, and no memory figure (it was stopped).
    """
    spec = _tree(name, placement, fanout)
    wanted = sorted(_paths(spec.root))
    seen = [0]
    start = time.perf_counter()
    try:
        tree = RayTree.start(
            spec, timeout=timeout, on_progress=lambda up, _: seen.__setitem__(0, up)
        )
    except TreeStartError:
        return timeout, None, len(wanted), seen[0]
    elapsed = time.perf_counter() - start
    try:
        described = tree.describe()
        check([d["path"] for d in described] == wanted, f"all {len(wanted)} viable systems up")
        pids = {d["pid"] for d in described}
        rss = sum(_rss(pid) for pid in pids)
    finally:
        tree.stop(timeout=120)
    return elapsed, rss / 1e9, len(wanted), len(wanted)


def run(quick: bool) -> Report:
    """Run the Ray workloads and return their figures."""
    say = Progress()
    count = INTENTS // 5 if quick else INTENTS
    runs = QUICK_RUNS if quick else RUNS
    started_here = not ray.is_initialized()
    if started_here:
        say("starting a local Ray cluster")
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        points = QUICK_KERNEL_POINTS if quick else KERNEL_POINTS
        say(f"kernel: one tunnel intent of {points:,} energies, {runs} runs, against one process")
        efficiency, kernel_one, kernel_tree = _kernel_efficiency(points, runs)
        small = SMALL_KERNEL_POINTS if not quick else QUICK_KERNEL_POINTS // 4
        say(f"kernel: the same at {small:,} energies")
        small_efficiency, _, _ = _kernel_efficiency(small, runs)
        say(f"intents: {count:,} pipelined, {runs} runs, against raw Ray calls")
        rate, raw_rate, latency, raw_latency = _intent_rates(count, runs)
        node_fanout = (3, 3) if quick else (3, 12)
        pooled_fanout = (9, 10) if quick else (9, 10, 10)
        say(f"spawn: node placement, fanout {node_fanout}")
        node_s, node_gb, node_n, _ = _spawn(
            f"bench-node-{os.getpid()}", "node", node_fanout, SPAWN_TIMEOUT
        )
        say(f"spawn: pooled placement, fanout {pooled_fanout}, pool of {POOL}")
        pooled_s, pooled_gb, pooled_n, pooled_up = _spawn(
            f"bench-pooled-{os.getpid()}", "pooled", pooled_fanout, SPAWN_TIMEOUT
        )
    finally:
        if started_here:
            ray.shutdown()
    return Report(
        bench="ray",
        quick=quick,
        size=(
            f"intents: {count:,} pipelined from one client, median of {runs} interleaved runs; "
            f"latency: median of {LATENCY_SAMPLES}; spawn: {node_n} viable systems in "
            f"placement node, {pooled_n} in placement pooled (pool of {POOL} actors); "
            f"kernel: one tunnel intent of {points:,} (and {small:,}) energies on all cores"
        ),
        baseline=(
            "raw Ray: an async actor (num_cpus=0) echoing its argument, called from the same "
            "driver in the same run (pipelined for the rate, one at a time for the latency); "
            "spawn figures are absolute; kernel: the same kernel run whole in the driver"
        ),
        figures=(
            Figure(
                "intent_ratio",
                rate / raw_rate,
                "x",
                "intents/s through the whole path / raw Ray calls/s, both pipelined",
                INTENT_RATIO_TARGET,
                ">=",
            ),
            Figure("intents_per_s", rate, "1", "intents per second, pipelined from one client"),
            Figure(
                "kernel_efficiency",
                efficiency,
                "x",
                "one-process time / (cores x time of the same work as one intent on Ray)",
                KERNEL_EFFICIENCY_TARGET,
                ">=",
            ),
            Figure(
                f"kernel_efficiency_{small // 1000}k",
                small_efficiency,
                "x",
                f"the same with {small:,} energies (no target: fixed costs weigh more)",
            ),
            Figure("kernel_one_s", kernel_one, "s", "the tunnel kernel in one process"),
            Figure("kernel_intent_s", kernel_tree, "s", "the same as one intent, split on Ray"),
            Figure("raw_calls_per_s", raw_rate, "1", "raw Ray actor calls per second"),
            Figure(
                "latency_ratio",
                latency / raw_latency,
                "x",
                "median latency of one intent / of one raw Ray call",
                LATENCY_RATIO_TARGET,
                "<=",
            ),
            Figure("intent_latency_s", latency, "s", "median latency of one intent"),
            Figure(f"spawn_node_{node_n}_s", node_s, "s", "start a tree in placement node"),
            Figure(
                f"spawn_node_{node_n}_gb",
                node_gb if node_gb is not None else 0.0,
                "1",
                "resident GB of its actor processes (0: it did not start)",
            ),
            Figure(
                f"spawn_pooled_{pooled_n}_s",
                pooled_s,
                "s",
                "start a tree in placement pooled"
                + ("" if pooled_up == pooled_n else f" (NOT UP: timed out at {pooled_s:.0f} s)"),
                SPAWN_POOLED_S_TARGET if not quick else None,
                "<=",
            ),
            Figure(
                f"spawn_pooled_{pooled_n}_up",
                pooled_up,
                "1",
                "viable systems up when the start returned or timed out",
                pooled_n,
                ">=",
            ),
            *(
                ()
                if pooled_gb is None
                else (
                    Figure(
                        f"spawn_pooled_{pooled_n}_gb",
                        pooled_gb,
                        "1",
                        "resident GB of the pool's processes",
                        SPAWN_POOLED_GB_TARGET if not quick else None,
                        "<=",
                    ),
                )
            ),
        ),
    )
