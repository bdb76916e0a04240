"""Kernels: the pure functions leaf units run for a capability.

A kernel takes the intent's parameters and returns a msgpack-plain result, or raises to fail
the intent. Hosts run them: the simulator inline on virtual time, the Ray shell as Ray tasks.
The numpy kernels for pattern generation and tunnelling join this table with their issue.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["BUILTIN_KERNELS", "Kernel", "KernelError", "run_kernel"]

Kernel = Callable[[Mapping[str, Any]], Any]


class KernelError(Exception):
    """Raised by a kernel to fail its intent with a reason."""


def _echo(params: Mapping[str, Any]) -> Any:
    return dict(params)


def _sum(params: Mapping[str, Any]) -> Any:
    values = params.get("values", [])
    if not isinstance(values, list | tuple) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        raise KernelError(f"'values' must be a list of numbers, got {values!r}")
    return sum(values)


def _fail(params: Mapping[str, Any]) -> Any:
    raise KernelError(str(params.get("reason", "asked to fail")))


BUILTIN_KERNELS: Mapping[str, Kernel] = {"echo": _echo, "sum": _sum, "fail": _fail}
"""Small kernels for tests and demos: ``echo``, ``sum``, ``fail``."""


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
