"""Benchmark ``model``: the simulator's message rate and the pure decision path of one intent.

sim
    A tree of 13 viable systems (root, 3 children, 9 grandchildren; every node serves an
    ``echo`` kernel under its own capability name) on a reliable network. M intents (``--quick``:
    M/5), each naming a capability at a random level, are submitted in waves; the simulator
    runs until quiet. Figure: messages handled per second of wall time, on one core (the
    simulator is single-threaded). Baseline, same run: a bare ``heapq`` event loop that pops
    as many events and calls a no-op handler per event — the floor of any discrete-event
    simulator in Python. Checked: every intent completed, with the right result.

decision
    One viable system's hot path, called directly: S5's policy check, S1's classification and
    candidate lookup, S2's rate limits and unit choice, S1's routing to the kernel. N intents by
    exact capability name (the figure), and N/10 by free text (BM25, informative). Baseline,
    same run: a dict lookup of the capability and a tuple for the route, per intent. Checked:
    every intent ends in a ``RunKernel`` for the right kernel.
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Callable

from bench._harness import Figure, Progress, Report, check, median, time_interleaved
from vsm.address import SystemId
from vsm.effects import Effect, RunKernel, Send
from vsm.intents import Intent, Status
from vsm.messages import Assign, Coordinate, Dispatch, SubmitIntent
from vsm.sim import Simulation
from vsm.spec import LimitsSpec, TreeSpec
from vsm.systems import ViableSystem

__all__ = ["run"]

SIM_INTENTS = 20_000
DECISION_INTENTS = 20_000
RUNS = 5
SEED = 7

SIM_TARGET = 50_000.0
DECISION_TARGET = 20_000.0

FAST_LIMITS = LimitsSpec(
    user_rate=1e9, user_burst=1e9, capability_rate=1e9, capability_burst=1e9, max_in_flight=10**9
)


def _tree() -> TreeSpec:
    def node(name: str, children: list[dict[str, object]]) -> dict[str, object]:
        return {
            "name": name,
            "capabilities": [
                {"name": f"echo.{name}", "kernel": "echo", "description": f"echo at {name}"}
            ],
            "children": children,
        }

    kids = [node(f"c{i}", [node(f"c{i}g{j}", []) for j in range(3)]) for i in range(3)]
    return TreeSpec.model_validate(
        {"name": "bench", "root": node("root", kids), "limits": FAST_LIMITS.model_dump()}
    )


def _capabilities() -> list[str]:
    names = (
        ["root"] + [f"c{i}" for i in range(3)] + [f"c{i}g{j}" for i in range(3) for j in range(3)]
    )
    return [f"echo.{n}" for n in names]


def _sim_run(intents: int) -> tuple[Simulation, float]:
    rng = random.Random(SEED)  # a repeatable workload
    caps = _capabilities()
    sim = Simulation(_tree(), seed=SEED)
    sim.run_until_quiet(max_time=60)  # start-up gossip, not timed
    start_count = sim.processed
    start = time.perf_counter()
    wave = 500
    for first in range(0, intents, wave):
        for i in range(first, min(intents, first + wave)):
            sim.submit(Intent(id=f"i{i}", capability=rng.choice(caps), params={"i": i}))
        sim.run_for(0.05)
    sim.run_until_quiet(max_time=600)
    elapsed = time.perf_counter() - start
    outcomes = sim.outcomes()
    check(len(outcomes) == intents, f"{intents} outcomes, got {len(outcomes)}")
    bad = [o for o in outcomes.values() if o.status is not Status.COMPLETED]
    check(not bad, f"every intent completed; first failure: {bad[:1]}")
    check(outcomes["i0"].result == {"i": 0}, "the echo kernel's result comes back")
    return sim, (sim.processed - start_count) / elapsed


def _bare_loop(events: int) -> float:
    """Seconds for a bare heapq loop over ``events`` events with a no-op handler."""
    handler: Callable[[object], None] = lambda _m: None  # noqa: E731
    queue: list[tuple[float, int, object]] = []
    for i in range(events):
        heapq.heappush(queue, (i * 1e-6, i, None))
    start = time.perf_counter()
    while queue:
        _, _, message = heapq.heappop(queue)
        handler(message)
    return time.perf_counter() - start


_HOT_PATH = (Dispatch, Coordinate, Assign)


def _decide(vs: ViableSystem, intent: Intent, now: float) -> list[Effect]:
    """Run one intent through S5 → S1 → S2 → S1 and return the effects of the last step.

    This is what a node host does with the local sends of the hot path: hand each to its System.
    """
    pending = vs.handle(SystemId.S5, SubmitIntent(intent=intent), now)
    last: list[Effect] = []
    while pending:
        effect = pending.pop()
        if type(effect) is Send and isinstance(effect.message, _HOT_PATH):
            last = vs.handle(effect.to.system, effect.message, now)
            pending.extend(last)
    return last


def _decision_rate(intents: list[Intent], kernel_of: dict[str, str]) -> tuple[float, int]:
    vs = ViableSystem(
        "root",
        _tree().root.model_copy(update={"children": ()}),
        limits=FAST_LIMITS,
        parent_policy=_tree().policy,
    )
    vs.start(0.0)
    routed = 0
    start = time.perf_counter()
    for i, intent in enumerate(intents):
        for effect in _decide(vs, intent, 1.0 + i * 1e-6):
            if isinstance(effect, RunKernel):
                routed += effect.kernel == kernel_of.get(intent.capability or "echo.root", "echo")
    elapsed = time.perf_counter() - start
    return len(intents) / elapsed, routed


def run(quick: bool) -> Report:
    """Run both workloads and return their figures."""
    say = Progress()
    sim_intents = SIM_INTENTS // 5 if quick else SIM_INTENTS
    decisions = DECISION_INTENTS // 5 if quick else DECISION_INTENTS

    say(f"sim: {sim_intents:,} intents through 13 viable systems, {RUNS} runs")
    rates = []
    sim = None
    for _ in range(RUNS):
        sim, rate = _sim_run(sim_intents)
        rates.append(rate)
    assert sim is not None
    events = int(sim.processed)
    bare = time_interleaved({"bare": lambda: _bare_loop(events)}, RUNS)["bare"]
    bare_rate = events / median(bare)
    sim_rate = median(rates)

    say(f"decision: {decisions:,} intents by name, {decisions // 10:,} by text, {RUNS} runs")
    kernel_of = {"echo.root": "echo"}
    by_name = [
        Intent(id=f"n{i}", capability="echo.root", params={"i": i}) for i in range(decisions)
    ]
    by_text = [
        Intent(id=f"t{i}", text="please echo at root", params={"i": i})
        for i in range(decisions // 10)
    ]
    name_rates, text_rates = [], []
    for _ in range(RUNS):
        rate, routed = _decision_rate(by_name, kernel_of)
        check(routed == len(by_name), f"all {len(by_name)} routed to the kernel, got {routed}")
        name_rates.append(rate)
        rate, routed = _decision_rate(by_text, kernel_of)
        check(routed == len(by_text), f"all {len(by_text)} text intents routed, got {routed}")
        text_rates.append(rate)
    table = {"echo.root": ("local", "echo")}

    def dict_route() -> int:
        hits = 0
        for intent in by_name:
            route = table.get(intent.capability or "")
            hits += route is not None
        return hits

    dict_times = time_interleaved({"dict": dict_route}, RUNS)["dict"]
    dict_rate = len(by_name) / median(dict_times)
    decision_rate = median(name_rates)

    return Report(
        bench="model",
        quick=quick,
        size=(
            f"sim: {sim_intents:,} intents, 13 viable systems, {events:,} messages per run; "
            f"decision: {decisions:,} intents by name, {decisions // 10:,} by text; "
            f"median of {RUNS} runs"
        ),
        baseline=(
            "`sim_vs_bare_loop` divides the simulator's message rate by a bare heapq event loop "
            "with a no-op handler over as many events; `decision_vs_dict` divides the decision "
            "rate by a dict lookup per intent; both timed in the same run"
        ),
        figures=(
            Figure(
                "sim_msgs_per_s",
                sim_rate,
                "1",
                "simulator messages handled per second",
                SIM_TARGET,
                ">=",
            ),
            Figure(
                "sim_vs_bare_loop",
                sim_rate / bare_rate,
                "x",
                "simulator rate / bare heapq loop rate",
            ),
            Figure(
                "decision_intents_per_s",
                decision_rate,
                "1",
                "policy + rate limit + classify + route, intents/s, by name",
                DECISION_TARGET,
                ">=",
            ),
            Figure(
                "decision_text_intents_per_s",
                median(text_rates),
                "1",
                "the same path with BM25 classification of free text",
            ),
            Figure(
                "decision_vs_dict",
                decision_rate / dict_rate,
                "x",
                "decision rate / dict lookup rate",
            ),
        ),
    )
