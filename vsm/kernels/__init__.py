"""Kernels: the pure functions leaf units run for a capability.

A kernel takes the intent's parameters and returns a msgpack-plain result, or raises to fail
the intent. Hosts run them: the simulator inline on virtual time, the Ray shell as Ray tasks —
a :class:`ParallelKernel` as several tasks, one per chunk, merged back exactly.

Built-in kernels (:data:`BUILTIN_KERNELS`):
    ``echo``, ``sum``, ``fail``: small kernels for tests and demos.
    ``tunnel``: transmission through a crystal lattice over a grid of energies (Scribble's
        resource-aware tunnelling, seed 002; see :mod:`vsm.kernels._tunnel`).
    ``pattern``: a batch of GLIMMER patterns (seed 000; see :mod:`vsm.kernels._patterns`).

Errors::

    Exception
    └── KernelError                  a kernel failed its intent (bad params name the param)
    VsmError
    ├── LatticeError   (ValueError)  a lattice parameter is out of range
    ├── TunnelError    (ValueError)  a bridge, metric or controller argument is out of range
    └── ArtefactError  (ValueError)  a pattern artefact's header, metadata, hash or body is bad
"""

from __future__ import annotations

from collections.abc import Mapping

from vsm.kernels._artefact import (
    ArtefactError,
    ArtefactHashError,
    PatternMeta,
    pattern_body,
    pattern_from_body,
    read_artefact,
    write_artefact,
)
from vsm.kernels._base import (
    ARRAY_DTYPES,
    Kernel,
    KernelError,
    ParallelKernel,
    arrays_as_lists,
    echo,
    fail,
    is_packed_array,
    pack_array,
    run_kernel,
    total,
    unpack_array,
)
from vsm.kernels._lattice import (
    CrystalLattice,
    LatticeError,
    band_mask,
    barrier_transmission,
    reflection,
    transmission,
)
from vsm.kernels._patterns import (
    Pattern,
    PatternConfig,
    PatternType,
    generate_batch,
    generate_pattern,
    pattern_kernel,
    pattern_merge,
    pattern_split,
)
from vsm.kernels._tunnel import (
    QuantumBridge,
    ResourceMetrics,
    TunnelConfig,
    TunnelController,
    TunnelError,
    TunnelMetrics,
    tunnel_kernel,
    tunnel_merge,
    tunnel_split,
)

__all__ = [
    "ARRAY_DTYPES",
    "BUILTIN_KERNELS",
    "ArtefactError",
    "ArtefactHashError",
    "CrystalLattice",
    "Kernel",
    "KernelError",
    "LatticeError",
    "ParallelKernel",
    "Pattern",
    "PatternConfig",
    "PatternMeta",
    "PatternType",
    "QuantumBridge",
    "ResourceMetrics",
    "TunnelConfig",
    "TunnelController",
    "TunnelError",
    "TunnelMetrics",
    "arrays_as_lists",
    "band_mask",
    "barrier_transmission",
    "generate_batch",
    "generate_pattern",
    "is_packed_array",
    "pack_array",
    "pattern_body",
    "pattern_from_body",
    "read_artefact",
    "reflection",
    "run_kernel",
    "transmission",
    "unpack_array",
    "write_artefact",
]

TUNNEL = ParallelKernel(split=tunnel_split, run=tunnel_kernel, merge=tunnel_merge)
PATTERN = ParallelKernel(split=pattern_split, run=pattern_kernel, merge=pattern_merge)

BUILTIN_KERNELS: Mapping[str, Kernel] = {
    "echo": echo,
    "sum": total,
    "fail": fail,
    "tunnel": TUNNEL,
    "pattern": PATTERN,
}
"""The kernels every host knows, by name (a capability's ``kernel``)."""
