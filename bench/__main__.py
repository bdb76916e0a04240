"""``python -m bench``: run one benchmark, or all of them and rewrite docs/benchmarks.md.

Exit codes: 0 the benchmarks ran and checked their results; 1 a benchmark's self-check
failed (or, with ``--strict``, a figure missed its target); 2 usage error (argparse).

Adding a benchmark: write ``bench/NAME.py`` with ``run(quick: bool) -> Report`` and add it
to :data:`BENCHMARKS`. Modules are imported only when their benchmark runs, so a benchmark
that needs Ray costs nothing to the others.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from rich.console import Console

from bench._harness import BenchmarkError, Report, machine
from bench._output import Finished, print_report, render_docs

__all__ = ["BENCHMARKS", "Benchmark", "main"]

EXIT_OK = 0
EXIT_FAILED = 1

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


class Benchmark(NamedTuple):
    """An entry of the registry of benchmarks.

    Attributes:
        module: The module holding ``run(quick: bool) -> Report``.
        about: One line for ``--help``.
    """

    module: str
    about: str


BENCHMARKS: dict[str, Benchmark] = {
    "registry": Benchmark(
        "bench.registry",
        "CapabilityRegistry: merge of two replicas vs dict.update; size of a 1% delta",
    ),
    "model": Benchmark(
        "bench.model",
        "the simulator's message rate; the pure decision path of one intent (S5, S1, S2)",
    ),
    "protocol": Benchmark(
        "bench.protocol",
        "seal+unseal vs raw Ed25519 / HMAC sign+verify; ReplayGuard.check_batch rate",
    ),
    "events": Benchmark(
        "bench.events",
        "100 compiled rules over events: columnar batches and one at a time vs Python lambdas",
    ),
    "kernels": Benchmark(
        "bench.kernels",
        "tunnelling and GLIMMER patterns as Ray tasks on every core vs one process",
    ),
    "ray": Benchmark(
        "bench.ray",
        "intents through a tree on Ray vs raw Ray calls; starting trees of 40 and 1,000",
    ),
    "federation": Benchmark(
        "bench.federation",
        "intents served by a peer tree over RabbitMQ vs locally vs raw aio-pika request/reply",
    ),
}
"""Every benchmark, by the name ``python -m bench NAME`` takes; ``all`` runs them in order."""


def _parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<10} {entry.about}" for name, entry in BENCHMARKS.items())
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Run vsm-ray benchmarks. Each checks its result, prints a table of its figures\n"
            "(value, target, pass/FAIL) and ends with one line of JSON:\n"
            '  {"bench": NAME, "machine": {...}, "figures": {...}, "size": ..., "targets": {...}}\n'
            "Ratios are against a baseline measured in the same run; times are medians of\n"
            "timeit-style runs (gc collected before, disabled during each run)."
        ),
        epilog=(
            f"benchmarks:\n{listing}\n  {'all':<10} every benchmark above, in order, then "
            f"rewrite docs/benchmarks.md\n\nexit codes: 0 ran and checked; 1 a self-check "
            f"failed (or, with --strict,\na target was missed); 2 usage error"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "name",
        choices=[*BENCHMARKS, "all"],
        metavar="NAME",
        help=f"the benchmark to run: {', '.join(BENCHMARKS)}, or all",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="run at the smaller size (each benchmark finishes within about a minute)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when a figure misses its target (by default the table just says FAIL)",
    )
    parser.add_argument(
        "--docs",
        type=Path,
        default=DOCS,
        metavar="PATH",
        help="with all: the file to rewrite (default: docs/benchmarks.md of this checkout)",
    )
    parser.add_argument(
        "--no-docs",
        action="store_true",
        help="with all: leave the docs file alone",
    )
    return parser


def _load(name: str) -> Callable[[bool], Report]:
    module = importlib.import_module(BENCHMARKS[name].module)
    run: Callable[[bool], Report] = module.run
    return run


def _run_one(name: str, quick: bool, progress: Console) -> Finished:
    progress.print(f"[bold]bench {name}[/] ({'quick' if quick else 'full'} size)")
    started = datetime.now(UTC)
    load_before = _load_average()
    start = time.perf_counter()
    report = _load(name)(quick)
    wall_s = time.perf_counter() - start
    load_after = _load_average()
    loads = None if load_before is None or load_after is None else (load_before, load_after)
    return Finished(report, started, wall_s, loads)


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the benchmarks asked for, print their results; return an exit code."""
    args = _parser().parse_args(argv)
    names = list(BENCHMARKS) if args.name == "all" else [args.name]
    out, progress = Console(), Console(stderr=True)
    machine_info = machine()
    finished = []
    for name in names:
        try:
            done = _run_one(name, args.quick, progress)
        except BenchmarkError as exc:
            progress.print(f"bench {name}: {exc}", style="bold red", markup=False)
            return EXIT_FAILED
        print_report(out, done, machine_info)
        finished.append(done)
    if args.name == "all" and not args.no_docs:
        path: Path = args.docs
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_docs(finished, machine_info), encoding="utf-8")
        progress.print(f"wrote {path}")
    missed = [f"{d.report.bench}.{f.name}" for d in finished for f in d.report.failed()]
    if missed:
        progress.print(f"missed targets: {', '.join(missed)}")
        if args.strict:
            return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
