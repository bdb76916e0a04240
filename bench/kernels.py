"""The numpy kernels (issue 8) as Ray tasks on every core, against the same work in one process.

Figures:

tunnel_efficiency
    Transmission through a 50-cell Kronig-Penney lattice over a grid of energies. Subject:
    the grid split into one chunk per core (``tunnel_split``), each chunk a Ray task
    (:func:`actors._kernels.chunk_task`, one CPU), the results fetched and merged
    (``tunnel_merge``) in the driver. Baseline: the same kernel run whole in the driver
    (``BUILTIN_KERNELS["tunnel"]``: split into one chunk, run, merge). Efficiency =
    baseline time / (cores x subject time); 1.0 is a perfect speed-up. Checked: both give the
    same floats. Timed at three grid sizes to show how time grows with the problem.

pattern_efficiency
    The same for a batch of GLIMMER patterns (complexity 9: 32,768 vertices, 10 harmonics
    each) split by estimated work (``pattern_split``); the result holds each pattern's digest,
    which is checked against the single-process batch.

Workers are warmed (numpy and the kernels imported) before timing; the runs of subject and
baseline are interleaved (see :mod:`bench._harness`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import ray

from actors._kernels import chunk_task
from bench._harness import Figure, Progress, Report, check, median, time_interleaved
from vsm.kernels import BUILTIN_KERNELS, ParallelKernel

__all__ = ["run"]

TARGET = 0.85
RUNS = 5
QUICK_RUNS = 2
LATTICE = {"cells": 50, "barrier_height": 1.0, "barrier_width": 0.3, "well_width": 0.5}
TUNNEL_POINTS = (100_000, 200_000, 400_000)
QUICK_TUNNEL_POINTS = (25_000, 50_000, 100_000)
PATTERN_BATCHES = (16, 32, 64)
QUICK_PATTERN_BATCHES = (4, 8, 16)
KINDS = ("spiral", "lissajous", "rose", "lattice", "quantum")


def _tunnel(points: int) -> dict[str, Any]:
    return {"lattice": LATTICE, "e_min": 0.05, "e_max": 5.0, "points": points, "coherence": 0.9}


def _patterns(count: int) -> dict[str, Any]:
    return {
        "patterns": [
            {"type": KINDS[i % len(KINDS)], "complexity": 9.0, "seed": i} for i in range(count)
        ]
    }


def _on_ray(name: str, params: Mapping[str, Any], cores: int) -> Callable[[], Any]:
    kernel = BUILTIN_KERNELS[name]
    assert isinstance(kernel, ParallelKernel)

    def run() -> Any:
        chunks = kernel.split(params, cores)
        results = ray.get([chunk_task.remote(name, chunk) for chunk in chunks])
        return kernel.merge(params, results)

    return run


def _measure(
    name: str, params: Mapping[str, Any], cores: int, runs: int
) -> tuple[float, float, float]:
    """(efficiency, median seconds in one process, median seconds on Ray)."""
    kernel = BUILTIN_KERNELS[name]
    parallel = _on_ray(name, params, cores)
    check(parallel() == kernel(params), f"{name}: the chunked result equals the whole one")
    times = time_interleaved({"one": lambda: kernel(params), "ray": parallel}, runs)
    one, many = median(times["one"]), median(times["ray"])
    return one / (cores * many), one, many


def run(quick: bool) -> Report:
    """Run the kernels in one process and as Ray tasks; return their figures."""
    say = Progress()
    runs = QUICK_RUNS if quick else RUNS
    cores = os.cpu_count() or 1
    started_here = not ray.is_initialized()
    if started_here:
        say(f"starting a local Ray cluster with {cores} CPUs")
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    figures: list[Figure] = []
    try:
        say("warming the workers")
        ray.get([chunk_task.remote("tunnel", _tunnel(cores * 10)) for _ in range(cores * 2)])
        for label, name, sizes, make, unit in (
            ("tunnel", "tunnel", QUICK_TUNNEL_POINTS if quick else TUNNEL_POINTS, _tunnel, "pts"),
            (
                "pattern",
                "pattern",
                QUICK_PATTERN_BATCHES if quick else PATTERN_BATCHES,
                _patterns,
                "patterns",
            ),
        ):
            efficiencies = []
            for size in sizes:
                say(f"{label}: {size:,} {unit}, {runs} runs")
                efficiency, one, many = _measure(name, make(size), cores, runs)
                efficiencies.append(efficiency)
                figures += [
                    Figure(f"{label}_{size}_one_s", one, "s", f"{size:,} {unit} in one process"),
                    Figure(f"{label}_{size}_ray_s", many, "s", f"{size:,} {unit} as Ray tasks"),
                ]
            figures.insert(
                len(figures) - 2 * len(sizes),
                Figure(
                    f"{label}_efficiency",
                    efficiencies[-1],
                    "x",
                    f"one-process time / ({cores} cores x Ray time), at the largest size",
                    TARGET,
                    ">=",
                ),
            )
    finally:
        if started_here:
            ray.shutdown()
    return Report(
        bench="kernels",
        quick=quick,
        size=(
            f"tunnel: a 50-cell lattice over {', '.join(f'{n:,}' for n in TUNNEL_POINTS)} "
            f"energies; patterns: batches of {', '.join(map(str, PATTERN_BATCHES))} at "
            f"complexity 9; {cores} chunks (one per core); median of {runs} interleaved runs"
            + (" (quick sizes)" if quick else "")
        ),
        baseline=(
            "the same kernel run whole in the driver process (single-process numpy), in the "
            "same run; efficiency = baseline / (cores x Ray time)"
        ),
        figures=tuple(figures),
    )
