"""What every benchmark shares: figures with their targets, the report, timing, the machine.

Rules:
    1. A figure declares its target next to its value (``target`` and ``comparator``), so the
       table, the JSON line and ``docs/benchmarks.md`` all say pass or fail from one place.
    2. Ratios are against a baseline measured in the same run, on the same machine.
    3. Timing follows :mod:`timeit`'s convention: ``gc.collect()`` before each timed run and the
       garbage collector disabled during it. The figure is the median of the runs; the runs of
       the subject and of its baseline are interleaved, so a noisy neighbour slows both.
    4. A benchmark checks its result before it reports a figure; a wrong result raises
       :class:`BenchmarkError` and no figure is reported.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "BenchmarkError",
    "Comparator",
    "Figure",
    "Progress",
    "Report",
    "check",
    "format_value",
    "machine",
    "machine_text",
    "median",
    "time_interleaved",
]

Comparator = Literal["<=", ">="]


class BenchmarkError(AssertionError):
    """A benchmark's self-check failed: what it measured is not what it claims to measure."""


def check(condition: bool, what: str) -> None:
    """Raise :class:`BenchmarkError` saying ``what`` was expected when ``condition`` is false.

    Unlike ``assert``, this check survives ``python -O``.
    """
    if not condition:
        raise BenchmarkError(f"self-check failed: {what}")


class Progress:
    """Says what a benchmark is doing, and since when, on stderr (stdout is for results)."""

    __slots__ = ("_start",)

    def __init__(self) -> None:
        self._start = time.perf_counter()

    def __call__(self, message: str) -> None:
        """Print ``message`` with the seconds elapsed since this object was made."""
        elapsed = time.perf_counter() - self._start
        print(f"  [{elapsed:6.1f} s] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured number, with the target it is held to (if any).

    Attributes:
        name: Identifier used in the JSON line (``merge_ratio``).
        value: The measured value.
        unit: Unit shown next to the value (``s``, ``x``, ``B``, ``1``).
        about: One line saying what the number is.
        target: The bound the value must meet, or ``None`` for an informative figure.
        comparator: How ``value`` must compare with ``target``.
    """

    name: str
    value: float
    unit: str
    about: str
    target: float | None = None
    comparator: Comparator = "<="

    @property
    def passed(self) -> bool | None:
        """Whether the value meets its target; ``None`` when the figure has no target."""
        if self.target is None:
            return None
        if self.comparator == "<=":
            return self.value <= self.target
        return self.value >= self.target

    def target_text(self) -> str:
        """The target as text (``<= 15``), or an em dash when there is none."""
        if self.target is None:
            return "—"
        return f"{self.comparator} {format_value(self.target, self.unit)}"

    def value_text(self) -> str:
        """The value as text, with its unit."""
        return format_value(self.value, self.unit)

    def verdict(self) -> str:
        """``pass``, ``FAIL`` or an em dash (no target)."""
        passed = self.passed
        return "—" if passed is None else ("pass" if passed else "FAIL")


def format_value(value: float, unit: str) -> str:
    """Format ``value`` for people: bytes with separators, seconds and ratios to 3 digits."""
    if unit == "B":
        return f"{int(value):,} B"
    if unit == "s":
        if value < 1e-3:
            return f"{value * 1e6:.1f} µs"
        if value < 1:
            return f"{value * 1e3:.1f} ms"
        return f"{value:.2f} s"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "%":
        return f"{value:.2f} %"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.4g}"


@dataclass(frozen=True, slots=True)
class Report:
    """What one benchmark returns.

    Attributes:
        bench: The benchmark's name (as given to ``python -m bench``).
        quick: Whether it ran at the quick size.
        size: What was measured, in words, with the sizes used.
        baseline: What the ratios are measured against, in words.
        figures: The figures, in display order.
    """

    bench: str
    quick: bool
    size: str
    baseline: str
    figures: tuple[Figure, ...]

    def failed(self) -> list[Figure]:
        """The figures that miss their target."""
        return [f for f in self.figures if f.passed is False]

    def json_data(self, machine_info: Mapping[str, Any]) -> dict[str, Any]:
        """The report as the JSON-ready dict printed on the benchmark's last line.

        ``figures`` maps each name to its value; ``targets`` holds the declared targets and
        verdicts of the figures that have one.
        """
        return {
            "bench": self.bench,
            "machine": dict(machine_info),
            "figures": {f.name: f.value for f in self.figures},
            "size": "quick" if self.quick else "full",
            "targets": {
                f.name: {"target": f.target, "comparator": f.comparator, "pass": f.passed}
                for f in self.figures
                if f.target is not None
            },
        }


def time_interleaved(
    subjects: Mapping[str, Callable[[], object]], runs: int
) -> dict[str, list[float]]:
    """Time each callable ``runs`` times, round robin, timeit-style; return seconds per run.

    Before each timed call the collector runs (``gc.collect()``) and is then disabled until the
    call returns. What the call returns is freed after the clock stops.
    """
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    times: dict[str, list[float]] = {name: [] for name in subjects}
    was_enabled = gc.isenabled()
    for _ in range(runs):
        for name, fn in subjects.items():
            gc.collect()
            gc.disable()
            try:
                start = time.perf_counter()
                result = fn()
                elapsed = time.perf_counter() - start
            finally:
                if was_enabled:
                    gc.enable()
            del result
            times[name].append(elapsed)
    return times


def median(values: list[float]) -> float:
    """The median of ``values``."""
    return statistics.median(values)


def machine() -> dict[str, Any]:
    """Describe this machine: CPU, cores, memory, Python, platform and key library versions.

    Versions come from the installed metadata, so nothing (Ray least of all) is imported.
    """
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for package in ("numpy", "ray"):
        try:
            info[package] = version(package)
        except PackageNotFoundError:
            continue
    return info


def machine_text(info: Mapping[str, Any]) -> str:
    """One line describing the machine, for tables and docs."""
    parts = [
        str(info.get("cpu")),
        f"{info.get('cores')} cores",
        f"{info.get('memory_gb')} GB",
        f"Python {info.get('python')}",
        str(info.get("platform")),
    ]
    parts += [f"{name} {info[name]}" for name in ("numpy", "ray") if name in info]
    return ", ".join(parts)


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine() or "unknown"


def _memory_gb() -> float | None:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    return round(total / 1e9, 1)
