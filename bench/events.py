"""The GoldRush event runtime (issue 7): 100 compiled rules over a stream of events, on one core.

Figures:

events_per_s_batch
    Events per second through a :class:`vsm.rules.RuleSet` of 100 rules (93 stateless
    comparisons, ``in``, ``and``/``or``/``not``; 5 windows, 1 sequence, 1 trailing
    ``within``) evaluating one columnar batch (``evaluate_batch`` on a prebuilt
    :class:`~vsm.rules.Batch`, matches built). Target: at least 1,000,000.

events_per_s_single
    The same rules, one event at a time (``RuleSet.evaluate`` on field dicts), on a slice of
    the stream. Informative.

batch_vs_lambda_ratio
    The events per second of the 93 stateless rules in a batch, over the events per second of
    the same 93 conditions written by hand as Python lambdas and called per event (the naive
    way), in the same run. Informative (above 1 means the batch wins).

columns_of_events_per_s
    Events per second turned from field dicts into a batch (``columns_of``): the cost a caller
    with rows pays before ``evaluate_batch``. Informative.

Checked before any figure: batch and single-event evaluation give the same matches (the
batch cut into three), and the lambdas match what the compiled stateless rules match.
Stateful rules keep state across timed runs, so each run is fed the stream shifted later in
time (a fresh window each time, as in a live stream).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from bench._harness import Figure, Progress, Report, check, median, time_interleaved
from vsm.rules import Audit, Batch, Column, Rule, RuleSet, columns_of, parse_condition

__all__ = ["run"]

TARGET = 1_000_000.0
EVENTS, QUICK_EVENTS = 200_000, 50_000
SINGLE, QUICK_SINGLE = 20_000, 5_000
RUNS, QUICK_RUNS = 5, 2
SEED = 7

KINDS = {
    "intent.accepted": 0.22,
    "intent.completed": 0.2,
    "intent.rejected": 0.05,
    "intent.failed": 0.02,
    "unit.health": 0.2,
    "unit.failed": 0.01,
    "registry.advert": 0.1,
    "kernel.chunk": 0.1,
    "gossip.round": 0.07,
    "audit.checkpoint": 0.03,
}
STATEFUL = [
    'count(kind == "intent.rejected") by user within 30s > 10',
    "avg(cpu) by path within 10s >= 0.9",
    'count(kind == "unit.failed") within 60s > 900',
    "max(temp) by path within 30s > 125",
    'sum(bytes where kind == "kernel.chunk") by capability within 5s > 100000000',
    'kind == "unit.failed" then kind == "intent.failed" by path within 2s',
    "cpu > 0.999 and temp > 110 by path within 30s",
]
"""The stateful rules: thresholds set so that, as in life, they rarely hold."""

Lambda = Callable[[dict[str, Any]], bool]
_NAN = math.nan


def _stream(n: int) -> list[dict[str, Any]]:
    """``n`` events' fields: intents, health reports, adverts, chunks... 1 ms apart on average."""
    rng = np.random.default_rng(SEED)
    at = np.cumsum(rng.exponential(0.001, n)).tolist()
    kinds = rng.choice(list(KINDS), n, p=list(KINDS.values())).tolist()
    path = rng.integers(0, 32, n).tolist()
    user = rng.integers(0, 500, n).tolist()
    capability = rng.integers(0, 20, n).tolist()
    cpu = rng.random(n).tolist()
    temp = rng.normal(60.0, 15.0, n).tolist()
    latency = rng.lognormal(3.0, 1.0, n).tolist()
    size = rng.integers(1_000, 5_000_000, n).tolist()
    attempts = rng.integers(1, 6, n).tolist()
    ok = (rng.random(n) < 0.97).tolist()
    rows = []
    for i in range(n):
        kind = kinds[i]
        row: dict[str, Any] = {"kind": kind, "path": f"/root/u{path[i]}", "at": at[i]}
        if kind.startswith("intent."):
            row["user"] = f"user-{user[i]}"
            row["capability"] = f"cap-{capability[i]}"
            row["attempts"] = attempts[i]
            row["ok"] = ok[i]
            if kind == "intent.completed":
                row["latency_ms"] = latency[i]
        elif kind == "unit.health":
            row["cpu"] = cpu[i]
            row["temp"] = temp[i]
        elif kind == "kernel.chunk":
            row["capability"] = f"cap-{capability[i]}"
            row["bytes"] = size[i]
            row["latency_ms"] = latency[i]
        rows.append(row)
    return rows


def _num(row: dict[str, Any], name: str) -> float:
    return row.get(name, _NAN)  # type: ignore[no-any-return]  # the stream's numbers are numbers


def _stateless(count: int) -> list[tuple[str, Lambda]]:
    """``count`` stateless conditions, each with the lambda a person would write for it."""
    return [_template(i) for i in range(count)]


def _template(i: int) -> tuple[str, Lambda]:
    """The ``i``-th stateless condition (eight shapes, parameters varying with ``i``)."""
    k = list(KINDS)[i % len(KINDS)]
    u, c, c2, p = (
        f"user-{(i * 37) % 500}",
        f"cap-{i % 20}",
        f"cap-{(i + 1) % 20}",
        f"/root/u{i % 32}",
    )
    x, hot, warm, n = 200.0 + 10 * (i % 7), 0.99 - i % 5 / 1000, 80 + i % 9, 1 + i % 5
    big, slow, small = 4_990_000 + i, 5000 + i, 2000 + i
    idle, cold = 0.001 + i / 1e5, 10 + i % 7
    shape = i % 8
    if shape == 0:
        return (
            f'kind == "intent.completed" and latency_ms > {x}',
            lambda e: e["kind"] == "intent.completed" and _num(e, "latency_ms") > x,
        )
    if shape == 1:
        return (
            f"cpu > {hot} and temp > {warm}",
            lambda e: _num(e, "cpu") > hot and _num(e, "temp") > warm,
        )
    if shape == 2:
        rejected = ("intent.rejected", "intent.failed")
        return (
            f'kind in ["intent.rejected", "intent.failed"] and user == "{u}"',
            lambda e: e["kind"] in rejected and e.get("user") == u,
        )
    if shape == 3:
        return (
            f'capability == "{c}" and ok == false and attempts >= {n}',
            lambda e: (
                e.get("capability") == c and e.get("ok") is False and _num(e, "attempts") >= n
            ),
        )
    if shape == 4:
        return (
            f'path == "{p}" and kind == "{k}" and not user in ["{u}"]',
            lambda e: e["path"] == p and e["kind"] == k and e.get("user") != u,
        )
    if shape == 5:
        return (
            f"bytes > {big} or latency_ms > {slow}",
            lambda e: _num(e, "bytes") > big or _num(e, "latency_ms") > slow,
        )
    if shape == 6:
        return (
            f'exists(bytes) and capability in ["{c}", "{c2}"] and bytes < {small}',
            lambda e: "bytes" in e and e.get("capability") in (c, c2) and _num(e, "bytes") < small,
        )
    return (
        f'kind == "unit.health" and (cpu < {idle} or temp < {cold})',
        lambda e: e["kind"] == "unit.health" and (_num(e, "cpu") < idle or _num(e, "temp") < cold),
    )


def _shifted(batch: Batch, by: float) -> Batch:
    """The batch ``by`` seconds later, with fresh columns (no masks cached by an earlier run)."""
    columns = {name: Column(c.numbers, c.codes, c.levels) for name, c in batch.columns.items()}
    at = columns["at"].numbers
    assert at is not None
    columns["at"] = Column(at + by, None, [])
    return Batch(batch.n, columns, batch.rows)


def _rules(texts: list[str]) -> list[Rule]:
    return [Rule(f"rule-{i:03d}", parse_condition(t), Audit("path")) for i, t in enumerate(texts)]


def run(quick: bool) -> Report:
    """Evaluate 100 rules over a stream in batches and one event at a time; return the figures."""
    say = Progress()
    n = QUICK_EVENTS if quick else EVENTS
    m = QUICK_SINGLE if quick else SINGLE
    runs = QUICK_RUNS if quick else RUNS
    say(f"making {n:,} events")
    rows = _stream(n)
    stateless = _stateless(100 - len(STATEFUL))
    texts = [t for t, _ in stateless] + STATEFUL
    rules = _rules(texts)
    plain = rules[: len(stateless)]
    lambdas = [f for _, f in stateless]

    say("checking: batches and single events give the same matches")
    one, many = RuleSet(rules), RuleSet(rules)
    singles = [(r.rule, r.seq) for e in rows[:m] for r in one.evaluate(e)]
    batched = []
    for part in (rows[: m // 3], rows[m // 3 : m // 2], rows[m // 2 : m]):
        batched += [(r.rule, r.seq) for r in many.evaluate_batch(part)]
    check(singles == batched, "batch and single-event evaluation give the same matches")
    check(len(singles) > 0, "the rules match some events")
    by_hand = [
        (f"rule-{j:03d}", i) for i, e in enumerate(rows[:m]) for j, f in enumerate(lambdas) if f(e)
    ]
    reference = RuleSet(plain)
    compiled = [(r.rule, r.seq) for e in rows[:m] for r in reference.evaluate(e)]
    check(by_hand == compiled, "the lambdas match what the compiled stateless rules match")

    say(f"columns_of over {n:,} events")
    batch = columns_of(rows)
    conversion = time_interleaved({"columns": lambda: columns_of(rows)}, 1)["columns"][0]
    span = float(rows[-1]["at"]) + 1_000.0
    batches = [_shifted(batch, (k + 1) * span) for k in range(runs)]
    singles_by_run = [
        [{**e, "at": e["at"] + (k + 1) * span} for e in rows[:m]] for k in range(runs)
    ]
    batch_set, single_set, plain_set = RuleSet(rules), RuleSet(rules), RuleSet(plain)
    plain_batches = [_shifted(batch, 0.0) for _ in range(runs)]
    cursor = {"batch": 0, "single": 0, "plain": 0}

    def batch_run() -> Any:
        k = cursor["batch"]
        cursor["batch"] += 1
        return batch_set.evaluate_batch(batches[k])

    def single_run() -> Any:
        k = cursor["single"]
        cursor["single"] += 1
        evaluate = single_set.evaluate
        return [evaluate(e) for e in singles_by_run[k]]

    def lambda_run() -> Any:
        return [[f for f in lambdas if f(e)] for e in rows[:m]]

    def plain_run() -> Any:
        k = cursor["plain"]
        cursor["plain"] += 1
        return plain_set.evaluate_batch(plain_batches[k])

    say(f"timing {runs} interleaved runs: batch ({n:,}), single ({m:,}), lambdas ({m:,})")
    times = time_interleaved(
        {"batch": batch_run, "single": single_run, "lambda": lambda_run, "plain": plain_run}, runs
    )
    batch_rate = n / median(times["batch"])
    single_rate = m / median(times["single"])
    lambda_rate = m / median(times["lambda"])
    plain_rate = n / median(times["plain"])
    return Report(
        bench="events",
        quick=quick,
        size=(
            f"100 rules (93 stateless, 5 windows, 1 sequence, 1 trailing within) over {n:,} "
            f"events (batch) and {m:,} events (single, lambdas), one core; median of {runs} "
            "interleaved runs" + (" (quick sizes)" if quick else "")
        ),
        baseline=(
            "the 93 stateless conditions as hand-written Python lambdas called per event, in "
            "the same run"
        ),
        figures=(
            Figure(
                "events_per_s_batch",
                batch_rate,
                "1",
                "events/s, 100 rules, RuleSet.evaluate_batch on a prebuilt batch",
                TARGET,
                ">=",
            ),
            Figure(
                "events_per_s_single",
                single_rate,
                "1",
                "events/s, 100 rules, RuleSet.evaluate one event at a time",
            ),
            Figure(
                "batch_vs_lambda_ratio",
                plain_rate / lambda_rate,
                "x",
                "93 stateless rules: batch events/s over hand-written lambdas' events/s",
            ),
            Figure(
                "columns_of_events_per_s",
                n / conversion,
                "1",
                "events/s turned from field dicts into a batch (columns_of)",
            ),
        ),
    )
