"""What a kernel is, how one runs, and the small kernels for tests and demos.

A kernel takes an intent's parameters and returns a msgpack-plain result, or raises to fail
the intent. A :class:`ParallelKernel` is also a kernel; besides, its work splits into chunks
that run apart (as Ray tasks on several cores) and merge back into exactly the result of
running it whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Kernel", "KernelError", "ParallelKernel", "echo", "fail", "run_kernel", "total"]

Kernel = Callable[[Mapping[str, Any]], Any]


class KernelError(Exception):
    """Raised by a kernel to fail its intent with a reason."""


@dataclass(frozen=True, slots=True)
class ParallelKernel:
    """A kernel whose work splits into chunks (see the module docstring).

    Rules: ``split(params, n)`` returns at most ``n`` chunk params (at least one);
    ``run(chunk)`` computes one; ``merge(params, results)`` joins the results in any order.
    Calling the kernel runs it whole, in one process, as ``merge(params, [run(c) for c in
    split(params, 1)])`` — the reference a parallel run must equal exactly.

    Attributes:
        split: Chunk params for at most ``n`` chunks.
        run: The work of one chunk.
        merge: Join chunk results into the kernel's result.
    """

    split: Callable[[Mapping[str, Any], int], list[dict[str, Any]]]
    run: Callable[[Mapping[str, Any]], dict[str, Any]]
    merge: Callable[[Mapping[str, Any], list[dict[str, Any]]], Any]

    def __call__(self, params: Mapping[str, Any]) -> Any:
        return self.merge(params, [self.run(chunk) for chunk in self.split(params, 1)])


def echo(params: Mapping[str, Any]) -> Any:
    """Return the parameters (the trivial capability)."""
    return dict(params)


def total(params: Mapping[str, Any]) -> Any:
    """Add up ``params['values']``, a list of numbers."""
    values = params.get("values", [])
    if not isinstance(values, list | tuple) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        raise KernelError(f"'values' must be a list of numbers, got {values!r}")
    return sum(values)


def fail(params: Mapping[str, Any]) -> Any:
    """Fail with ``params['reason']``."""
    raise KernelError(str(params.get("reason", "asked to fail")))


def run_kernel(
    kernels: Mapping[str, Kernel], name: str, params: Mapping[str, Any]
) -> tuple[Any, str | None]:
    """Run kernel ``name``; return ``(result, None)`` or ``(None, error)`` — never raise."""
    kernel = kernels.get(name)
    if kernel is None:
        return None, f"no kernel named {name!r} (known: {sorted(kernels)})"
    try:
        return kernel(params), None
    except Exception as exc:  # any kernel failure fails its intent, with the reason
        return None, f"{type(exc).__name__}: {exc}"
