"""What a kernel is, how one runs, and the small kernels for tests and demos.

A kernel takes an intent's parameters and returns a msgpack-plain result, or raises to fail
the intent. A :class:`ParallelKernel` is also a kernel; besides, its work splits into chunks
that run apart (as Ray tasks on several cores) and merge back into exactly the result of
running it whole.

Packed arrays: a large numeric result travels as ``{"dtype": "<f8", "shape": [n, ...],
"data": bytes}`` (:func:`pack_array`): still msgpack-plain, but one ``bytes`` instead of a list
of Python floats, which every hop (Ray's pickle, msgpack) would otherwise encode element by
element. :func:`unpack_array` gives the numpy array back (read-only, without copying).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "ARRAY_DTYPES",
    "Kernel",
    "KernelError",
    "ParallelKernel",
    "arrays_as_lists",
    "echo",
    "fail",
    "is_packed_array",
    "pack_array",
    "run_kernel",
    "total",
    "unpack_array",
]

ARRAY_DTYPES = frozenset({"<f8", "<f4", "<i8", "<i4", "|u1", "|b1"})
"""The dtypes a packed array may have (little-endian, fixed size)."""

_ARRAY_KEYS = frozenset({"dtype", "shape", "data"})

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


def pack_array(array: npt.ArrayLike) -> dict[str, Any]:
    """``{"dtype", "shape", "data"}`` of ``array`` (see the module docstring).

    Raises:
        KernelError: The array's dtype (little-endian) is not one of :data:`ARRAY_DTYPES`.
    """
    values = np.asarray(array)
    dtype = values.dtype.newbyteorder("<") if values.dtype.byteorder == ">" else values.dtype
    if dtype.str not in ARRAY_DTYPES:
        raise KernelError(
            f"cannot pack an array of dtype {values.dtype.str!r} (packable: {sorted(ARRAY_DTYPES)})"
        )
    return {
        "dtype": dtype.str,
        "shape": list(values.shape),
        "data": np.ascontiguousarray(values, dtype=dtype).tobytes(),
    }


def is_packed_array(value: object) -> bool:
    """Whether ``value`` has the shape of a packed array (a mapping with exactly its keys)."""
    return isinstance(value, Mapping) and set(value) == _ARRAY_KEYS


def unpack_array(packed: object) -> npt.NDArray[Any]:
    """The read-only numpy array a :func:`pack_array` dict holds (no copy of the data).

    Raises:
        KernelError: ``packed`` is not a packed array, or its parts disagree; the message
            names the part.
    """
    if not is_packed_array(packed):
        raise KernelError(
            f"a packed array is a mapping with keys {sorted(_ARRAY_KEYS)}, got {_shown(packed)}"
        )
    assert isinstance(packed, Mapping)
    dtype, shape, data = packed["dtype"], packed["shape"], packed["data"]
    if dtype not in ARRAY_DTYPES:
        raise KernelError(
            f"packed array 'dtype' must be one of {sorted(ARRAY_DTYPES)}, got {dtype!r}"
        )
    if not isinstance(shape, list | tuple) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise KernelError(f"packed array 'shape' must be a list of ints >= 0, got {shape!r}")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise KernelError(f"packed array 'data' must be bytes, got {type(data).__name__}")
    expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if len(data) != expected:
        raise KernelError(
            f"packed array 'data' holds {len(data)} bytes, but shape {list(shape)} of {dtype} "
            f"needs {expected}"
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def arrays_as_lists(value: Any, summary: bool = False) -> Any:
    """``value`` with every packed array in it (at any depth) turned into a nested list.

    With ``summary``, each becomes a short text instead, such as ``"<f8 array [400000]"``.
    Other values are returned as they are (mappings and lists rebuilt around them).
    """
    if is_packed_array(value):
        if summary:
            return f"{value['dtype']} array {list(value['shape'])}"
        return unpack_array(value).tolist()
    if isinstance(value, Mapping):
        return {k: arrays_as_lists(v, summary) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [arrays_as_lists(v, summary) for v in value]
    return value


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."
