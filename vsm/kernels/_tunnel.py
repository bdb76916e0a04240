"""Resource-aware tunnelling: bridges, the frequency controller, and the tunnelling kernel.

Bridges:
    A :class:`QuantumBridge` carries particles of energy ``E = h·f`` through a
    :class:`~vsm.kernels._lattice.CrystalLattice`. A fraction ``coherence`` of them keeps its
    phase across the whole chain (coherent transmission, with interference); the rest lose it
    between barriers and cross them one after another like resistors in series, so
    ``1/T_seq - 1 = N·(1/T1 - 1)``, i.e. ``T_seq = T1 / (N - (N - 1)·T1)`` for ``N`` barriers
    of single-barrier transmission ``T1``. The bridge transmits
    ``coherence·T_coh + (1 - coherence)·T_seq``.

Controller rules (:class:`TunnelController`, pure: metrics come in as arguments):
    1. Dispatch frequency ``f = f_max·(1 - φc·L)·s_cores·s_mem`` with ``f_max = f0·(1 + φc)``,
       CPU load ``L`` in ``[0, 1]``, ``s_cores = min(1, max(1, cpus_total)/optimal_core_count)``
       and ``s_mem = 1`` unless the free memory fraction ``μ`` is under the threshold ``θ``,
       then ``s_mem = φc + (1 - φc)·μ/θ``. So ``f`` falls with load, falls further when memory
       is short, reaches ``f_max`` only idle on enough cores, and never falls under
       ``f_min = f_max·(1 - φc)·φc/optimal_core_count > 0``.
    2. Decoherence: a bridge run at frequency ``f`` under load ``L`` keeps
       ``coherence = min_coherence ** (L·f/f0)``. The rate is calibrated so that the base
       frequency under full load costs exactly the allowed coherence.
    3. Hence the guarantee: at the frequency of rule 1, ``L·f/f0 <= (1 + φc)·L·(1 - φc·L)``,
       whose maximum over ``L`` in ``[0, 1]`` is below 1 for every ``φc`` in ``(0, 1)``
       (``φ²/4 ≈ 0.654`` for the golden ``φc``), so coherence stays above ``min_coherence`` at
       every load, 0.8 included. Holding ``f_max`` regardless of load would not:
       ``0.87 ** (0.8·φ) ≈ 0.835``.
    4. ``chunk_count`` splits a grid into one chunk per whole free core (at least 1), scaled by
       ``μ/θ`` when memory is short, capped by the points and :data:`MAX_CHUNKS`.
    5. A *successful tunnel* is a computed chunk whose transmissions are all finite and in
       ``[0, 1]`` (:func:`tunnel_succeeded`); ``record`` counts them.

Kernel (``tunnel_split`` / ``tunnel_kernel`` / ``tunnel_merge``), msgpack-plain params::

    {"lattice": {...CrystalLattice.to_params()...}, "e_min": float, "e_max": float,
     "points": int, "start": int, "stop": int, "coherence": float}

The grid is ``numpy.linspace(e_min, e_max, points)``; a chunk computes ``grid[start:stop]``
(default the whole grid) from the full linspace, so chunks concatenate to the whole exactly.
A chunk result carries its transmissions as a float64 numpy array: it is an intermediate
that Ray's object store passes without copying or converting. The merged result, which
leaves as the intent's result, is msgpack-plain, its transmissions a packed float64 array
(:func:`~vsm.kernels._base.pack_array`; ``unpack_array`` reads it). ``tunnel_merge`` takes
chunk transmissions as lists too.

Errors::

    VsmError
    └── TunnelError  (ValueError)   a bridge, metrics or controller argument is out of range
    KernelError                     bad kernel params or results (names the param, shows it)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from vsm.errors import VsmError
from vsm.kernels._base import KernelError
from vsm.kernels._lattice import (
    PLANCK_EV_S,
    CrystalLattice,
    LatticeError,
    band_mask,
    barrier_transmission,
    transmission,
)

__all__ = [
    "MAX_CHUNKS",
    "MAX_POINTS",
    "QuantumBridge",
    "ResourceMetrics",
    "TunnelConfig",
    "TunnelController",
    "TunnelError",
    "TunnelMetrics",
    "mixed_transmission",
    "sequential_transmission",
    "tunnel_kernel",
    "tunnel_merge",
    "tunnel_split",
    "tunnel_succeeded",
]

FloatArray = npt.NDArray[np.float64]

MAX_CHUNKS = 256
"""Most chunks :meth:`TunnelController.chunk_count` asks for."""

BLOCK = 4096
"""Energies :func:`tunnel_kernel` computes at a time (a few hundred KB of temporaries)."""

MAX_POINTS = 1_000_000
"""Most grid points one kernel call accepts (its result is a list of that many floats)."""

_BUCKETS = 10


class TunnelError(VsmError, ValueError):
    """A bridge, resource metric or controller argument is out of range; shows the value."""


def _check_fraction(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TunnelError(f"{name} must be a number, got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise TunnelError(f"{name} must lie in [0, 1], got {value!r}")
    return float(value)


def _check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TunnelError(f"{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise TunnelError(f"{name} must be finite and > 0, got {value!r}")
    return float(value)


# ---------------------------------------------------------------- bridges


def sequential_transmission(lattice: CrystalLattice, energies: npt.ArrayLike) -> FloatArray:
    """Incoherent transmission: the ``cells`` barriers crossed one by one, with no interference.

    ``T_seq = T1 / (N - (N - 1)·T1)``, where ``T1`` is one barrier's closed-form transmission.

    Raises:
        LatticeError: An energy is not finite or not > 0.
    """
    t1 = barrier_transmission(energies, lattice.barrier_height, lattice.barrier_width, lattice.mass)
    n = lattice.cells
    return t1 / (n - (n - 1) * t1)


def mixed_transmission(
    lattice: CrystalLattice, energies: npt.ArrayLike, coherence: float
) -> FloatArray:
    """``coherence·T_coh + (1 - coherence)·T_seq``, per energy.

    The result lies between ``T_seq`` and ``T_coh``; the last rounding is clipped to keep it
    there (and so in ``[0, 1]``).

    Raises:
        TunnelError: ``coherence`` is not in ``[0, 1]``.
        LatticeError: An energy is not finite or not > 0.
    """
    c = _check_fraction("coherence", coherence)
    coherent = transmission(lattice, energies)
    sequential = sequential_transmission(lattice, energies)
    mixed = c * coherent + (1.0 - c) * sequential
    return np.clip(mixed, np.minimum(coherent, sequential), np.maximum(coherent, sequential))


@dataclass(frozen=True, slots=True)
class QuantumBridge:
    """A tunnel between two nodes, carrying particles of energy ``h·frequency``.

    Attributes:
        source: The node it leaves (non-empty).
        target: The node it reaches (non-empty).
        frequency: In Hz (finite, > 0).
        coherence: The fraction of particles that keep their phase, in ``[0, 1]``.

    Raises:
        TunnelError: A field is out of range.
    """

    source: str
    target: str
    frequency: float
    coherence: float

    def __post_init__(self) -> None:
        for name in ("source", "target"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise TunnelError(f"{name} must be a non-empty string, got {value!r}")
        _check_positive("frequency", self.frequency)
        _check_fraction("coherence", self.coherence)

    @property
    def energy(self) -> float:
        """``E = h·f`` in eV."""
        return PLANCK_EV_S * self.frequency

    def transmission(
        self, lattice: CrystalLattice, energies: npt.ArrayLike | None = None
    ) -> FloatArray:
        """The bridge's transmission through ``lattice``: the coherent/sequential mix.

        Args:
            lattice: The chain to cross.
            energies: Energies in eV; ``None`` for the bridge's own energy (a 1-element array).

        Raises:
            LatticeError: An energy is not finite or not > 0.
        """
        chosen = np.array([self.energy]) if energies is None else energies
        return mixed_transmission(lattice, chosen, self.coherence)


# ---------------------------------------------------------------- configuration and metrics


class TunnelConfig(BaseModel):
    """The tunnelling configuration, as the plan's ``config/tunnel.toml`` gives it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_frequency: float = Field(default=432.0, gt=0, allow_inf_nan=False)
    min_coherence: float = Field(default=0.87, ge=0, le=1)
    phi_coefficient: float = Field(default=0.618033988749895, gt=0, lt=1)
    min_memory_threshold: float = Field(default=0.2, ge=0, lt=1)
    optimal_core_count: int = Field(default=8, ge=1)

    @property
    def max_frequency(self) -> float:
        """``base_frequency·(1 + phi_coefficient)``: ``base·φ`` for the golden coefficient."""
        return self.base_frequency * (1.0 + self.phi_coefficient)

    @property
    def min_frequency(self) -> float:
        """The floor of the dispatch frequency (controller rule 1), > 0."""
        return _dispatch_frequency(self, 1.0, 1.0 / self.optimal_core_count, self.phi_coefficient)


def _dispatch_frequency(
    config: TunnelConfig, load: float, core_share: float, memory_share: float
) -> float:
    # One expression for the frequency and its floor, so rounding cannot put one past the other.
    return config.max_frequency * (1.0 - config.phi_coefficient * load) * core_share * memory_share


@dataclass(frozen=True, slots=True)
class ResourceMetrics:
    """A sample of a host's resources, read by the actor shell (never here).

    Attributes:
        cpus_total: CPUs of the host (finite, > 0; fractions allowed).
        cpus_free: CPUs free now, in ``[0, cpus_total]``.
        memory_total: Bytes of memory (> 0).
        memory_free: Bytes free now, in ``[0, memory_total]``.

    Raises:
        TunnelError: A field is out of range.
    """

    cpus_total: float
    cpus_free: float
    memory_total: int
    memory_free: int

    def __post_init__(self) -> None:
        _check_positive("cpus_total", self.cpus_total)
        cpus_free = self.cpus_free
        if isinstance(cpus_free, bool) or not isinstance(cpus_free, int | float):
            raise TunnelError(f"cpus_free must be a number, got {cpus_free!r}")
        if not 0 <= cpus_free <= self.cpus_total:
            raise TunnelError(f"cpus_free must lie in [0, {self.cpus_total!r}], got {cpus_free!r}")
        for name in ("memory_total", "memory_free"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise TunnelError(f"{name} must be an int >= 0 (bytes), got {value!r}")
        if self.memory_total == 0 or self.memory_free > self.memory_total:
            raise TunnelError(
                f"need 0 <= memory_free <= memory_total and memory_total > 0, got "
                f"memory_free={self.memory_free!r}, memory_total={self.memory_total!r}"
            )

    @property
    def cpu_load(self) -> float:
        """``1 - cpus_free/cpus_total``, in ``[0, 1]``."""
        return 1.0 - self.cpus_free / self.cpus_total

    @property
    def memory_free_fraction(self) -> float:
        """``memory_free/memory_total``, in ``[0, 1]``."""
        return self.memory_free / self.memory_total


@dataclass(frozen=True, slots=True)
class TunnelMetrics:
    """A snapshot of the tunnels recorded so far.

    Attributes:
        successful_tunnels: Chunks whose transmissions were all finite and in ``[0, 1]``.
        failed_tunnels: The other chunks.
        average_frequency: Mean dispatch frequency of the recorded chunks (0.0 before any).
        utilisation_histogram: Counts over 10 equal buckets of ``[0, 1]``; 1.0 is in the last.
    """

    successful_tunnels: int
    failed_tunnels: int
    average_frequency: float
    utilisation_histogram: tuple[int, ...]


# ---------------------------------------------------------------- the controller


class TunnelController:
    """Sets the dispatch frequency and chunking from resource metrics (rules 1-5 above).

    Args:
        config: The tunnelling configuration.
    """

    __slots__ = ("_config", "_failed", "_frequency", "_frequency_sum", "_histogram", "_succeeded")

    def __init__(self, config: TunnelConfig) -> None:
        self._config = config
        self._frequency = config.base_frequency
        self._succeeded = 0
        self._failed = 0
        self._frequency_sum = 0.0
        self._histogram = [0] * _BUCKETS

    @property
    def config(self) -> TunnelConfig:
        """The configuration the controller was built with."""
        return self._config

    @property
    def frequency(self) -> float:
        """The latest dispatch frequency (``base_frequency`` before the first observation)."""
        return self._frequency

    def frequency_for(self, metrics: ResourceMetrics) -> float:
        """The dispatch frequency for ``metrics`` (rule 1), without remembering it."""
        cfg = self._config
        phi_c = cfg.phi_coefficient
        cores = min(1.0, max(1.0, metrics.cpus_total) / cfg.optimal_core_count)
        memory = metrics.memory_free_fraction
        threshold = cfg.min_memory_threshold
        short = phi_c + (1.0 - phi_c) * memory / threshold if memory < threshold else 1.0
        return _dispatch_frequency(cfg, metrics.cpu_load, cores, short)

    def observe(self, metrics: ResourceMetrics) -> float:
        """Take a resource sample; return the new dispatch frequency, in ``(0, max_frequency]``."""
        self._frequency = self.frequency_for(metrics)
        return self._frequency

    def coherence_at(self, load: float, frequency: float) -> float:
        """The decoherence model (rule 2): coherence kept at ``frequency`` under ``load``.

        Raises:
            TunnelError: ``load`` is not in ``[0, 1]`` or ``frequency`` is not > 0.
        """
        exposure = _check_fraction("load", load) * _check_positive("frequency", frequency)
        return float(self._config.min_coherence ** (exposure / self._config.base_frequency))

    def coherence(self, load: float) -> float:
        """The coherence kept under ``load`` at the frequency the controller picks for it.

        That frequency assumes enough cores and memory; fewer of either lowers the frequency
        and so raises coherence. By rule 3 the result is at least ``min_coherence``.

        Raises:
            TunnelError: ``load`` is not in ``[0, 1]``.
        """
        checked = _check_fraction("load", load)
        return self.coherence_at(checked, _dispatch_frequency(self._config, checked, 1.0, 1.0))

    def chunk_count(self, points: int, metrics: ResourceMetrics) -> int:
        """How many chunks to split a grid of ``points`` into (rule 4).

        Raises:
            TunnelError: ``points`` is not an int >= 1.
        """
        if isinstance(points, bool) or not isinstance(points, int) or points < 1:
            raise TunnelError(f"points must be an int >= 1, got {points!r}")
        cores = max(1, math.floor(metrics.cpus_free))
        memory = metrics.memory_free_fraction
        threshold = self._config.min_memory_threshold
        if memory < threshold:
            cores = max(1, math.floor(cores * memory / threshold))
        return min(cores, points, MAX_CHUNKS)

    def record(self, success: bool, frequency: float, utilisation: float) -> None:
        """Count one computed chunk: whether it succeeded, its frequency and the utilisation.

        Raises:
            TunnelError: ``frequency`` is not > 0 or ``utilisation`` is not in ``[0, 1]``.
        """
        _check_positive("frequency", frequency)
        bucket = min(_BUCKETS - 1, int(_check_fraction("utilisation", utilisation) * _BUCKETS))
        if success:
            self._succeeded += 1
        else:
            self._failed += 1
        self._frequency_sum += frequency
        self._histogram[bucket] += 1

    def metrics(self) -> TunnelMetrics:
        """A snapshot of the counts recorded so far."""
        count = self._succeeded + self._failed
        return TunnelMetrics(
            successful_tunnels=self._succeeded,
            failed_tunnels=self._failed,
            average_frequency=self._frequency_sum / count if count else 0.0,
            utilisation_histogram=tuple(self._histogram),
        )


# ---------------------------------------------------------------- the kernel

_PARAMS = frozenset({"lattice", "e_min", "e_max", "points", "start", "stop", "coherence"})


@dataclass(frozen=True, slots=True)
class _Grid:
    lattice: CrystalLattice
    e_min: float
    e_max: float
    points: int
    start: int
    stop: int
    coherence: float

    def energies(self) -> FloatArray:
        # The full linspace, then the slice: chunks are bit-identical to the whole grid.
        return np.linspace(self.e_min, self.e_max, self.points)[self.start : self.stop]

    def to_params(self, start: int, stop: int) -> dict[str, Any]:
        return {
            "lattice": self.lattice.to_params(),
            "e_min": self.e_min,
            "e_max": self.e_max,
            "points": self.points,
            "start": start,
            "stop": stop,
            "coherence": self.coherence,
        }


def _number(params: Mapping[str, Any], name: str, default: float | None = None) -> float:
    if name not in params and default is not None:
        return default
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise KernelError(f"param {name!r} must be a finite number, got {value!r}")
    return float(value)


def _integer(params: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise KernelError(f"param {name!r} must be an int in [{low}, {high}], got {value!r}")
    return value


def _parse(params: Mapping[str, Any]) -> _Grid:
    if not isinstance(params, Mapping):
        raise KernelError(f"params must be a mapping, got {params!r}")
    unknown = sorted(str(key) for key in params if key not in _PARAMS)
    if unknown:
        raise KernelError(f"unknown params {unknown} (known: {sorted(_PARAMS)})")
    lattice_params = params.get("lattice")
    if not isinstance(lattice_params, Mapping):
        raise KernelError(f"param 'lattice' must be a mapping, got {lattice_params!r}")
    try:
        lattice = CrystalLattice.from_params(lattice_params)
    except LatticeError as exc:
        raise KernelError(f"param 'lattice': {exc}") from exc
    e_min, e_max = _number(params, "e_min"), _number(params, "e_max")
    if e_min <= 0:
        raise KernelError(f"param 'e_min' must be > 0 eV, got {e_min!r}")
    if e_max < e_min:
        raise KernelError(f"param 'e_max' must be >= e_min ({e_min!r}), got {e_max!r}")
    points = _integer(params, "points", 0, 1, MAX_POINTS)
    start = _integer(params, "start", 0, 0, points - 1)
    stop = _integer(params, "stop", points, start + 1, points)
    coherence = _number(params, "coherence", 1.0)
    if not 0 <= coherence <= 1:
        raise KernelError(f"param 'coherence' must lie in [0, 1], got {coherence!r}")
    return _Grid(lattice, e_min, e_max, points, start, stop, coherence)


def tunnel_split(params: Mapping[str, Any], chunks: int) -> list[dict[str, Any]]:
    """Split the params' slice of the grid into at most ``chunks`` contiguous, near-equal parts.

    Returns:
        One params dict per part (canonical: every key present), in grid order; fewer than
        ``chunks`` when the slice has fewer points.

    Raises:
        KernelError: The params are invalid, or ``chunks`` is not an int >= 1.
    """
    grid = _parse(params)
    if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 1:
        raise KernelError(f"chunks must be an int >= 1, got {chunks!r}")
    size = grid.stop - grid.start
    parts = min(chunks, size)
    bounds = [grid.start + i * size // parts for i in range(parts + 1)]
    return [grid.to_params(lo, hi) for lo, hi in itertools.pairwise(bounds)]


def tunnel_kernel(params: Mapping[str, Any]) -> dict[str, Any]:
    """Compute the transmission over ``grid[start:stop]``.

    Returns:
        ``{"start", "stop", "transmission": float64 array, "allowed": int}``, where
        ``allowed`` counts the chunk's energies in allowed bands of the infinite lattice.

    Raises:
        KernelError: The params are invalid.
    """
    grid = _parse(params)
    energies = grid.energies()
    values = np.empty_like(energies)
    allowed = 0
    # Block by block: the temporaries of a block stay in the core's cache, so cores running
    # chunks side by side do not fight over memory bandwidth. Every step is per energy, so
    # blocks (like chunks) give bit-identical results.
    for lo in range(0, len(energies), BLOCK):
        block = energies[lo : lo + BLOCK]
        values[lo : lo + BLOCK] = mixed_transmission(grid.lattice, block, grid.coherence)
        allowed += int(np.count_nonzero(band_mask(grid.lattice, block)))
    return {
        "start": grid.start,
        "stop": grid.stop,
        "transmission": values,
        "allowed": allowed,
    }


def _check_result(index: int, result: object) -> tuple[int, int, FloatArray, int]:
    if not isinstance(result, Mapping):
        raise KernelError(f"results[{index}] must be a mapping, got {result!r}")
    start, stop = result.get("start"), result.get("stop")
    values, allowed = result.get("transmission"), result.get("allowed")
    if not (isinstance(start, int) and isinstance(stop, int) and isinstance(allowed, int)):
        raise KernelError(f"results[{index}] needs int 'start', 'stop', 'allowed', got {result!r}")
    array = np.asarray(values) if isinstance(values, list | np.ndarray) else None
    if array is None or array.dtype.kind not in "fi" or array.shape != (stop - start,):
        shown = (
            repr(values)
            if not isinstance(values, list | np.ndarray) or len(values) < 8
            else f"a {type(values).__name__} of shape {np.shape(values)}"
        )
        raise KernelError(
            f"results[{index}]['transmission'] must be {stop - start} floats "
            f"(a list or a 1-d array), got {shown}"
        )
    return start, stop, array.astype(np.float64, copy=False), allowed


def tunnel_merge(params: Mapping[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    """Join chunk results, in grid order, into the transmission over the params' slice.

    Returns:
        ``{"points", "start", "stop", "e_min", "e_max", "coherence", "transmission",
        "band_fraction", "peak_transmission", "peak_energy"}``: ``transmission`` is a packed
        float64 array (:func:`~vsm.kernels._base.unpack_array`), ``band_fraction`` the
        fraction of the slice's energies in allowed bands, ``peak_*`` the largest transmission
        and the energy where it first occurs.

    Raises:
        KernelError: The params are invalid, or the results do not tile the slice exactly.
    """
    grid = _parse(params)
    if not isinstance(results, list) or not results:
        raise KernelError(f"results must be a non-empty list of chunk results, got {results!r}")
    chunks = sorted((_check_result(i, r) for i, r in enumerate(results)), key=lambda c: c[0])
    parts: list[FloatArray] = []
    allowed = 0
    cursor = grid.start
    for start, stop, values, count in chunks:
        if start != cursor:
            raise KernelError(
                f"results leave a gap or overlap at point {cursor} (next starts at {start})"
            )
        parts.append(values)
        allowed += count
        cursor = stop
    if cursor != grid.stop:
        raise KernelError(f"results end at point {cursor}, but the slice ends at {grid.stop}")
    size = grid.stop - grid.start
    peak, peak_value = first_argmax(parts)
    return {
        "points": grid.points,
        "start": grid.start,
        "stop": grid.stop,
        "e_min": grid.e_min,
        "e_max": grid.e_max,
        "coherence": grid.coherence,
        # pack_array(np.concatenate(parts)), copying the 8 bytes a point once, not twice
        "transmission": {
            "dtype": "<f8",
            "shape": [size],
            "data": b"".join(np.ascontiguousarray(p, dtype="<f8").data for p in parts),
        },
        "band_fraction": allowed / size,
        "peak_transmission": peak_value,
        "peak_energy": linspace_at(grid.e_min, grid.e_max, grid.points, grid.start + peak),
    }


def first_argmax(parts: list[FloatArray]) -> tuple[int, float]:
    """``(i, value)`` of ``np.argmax`` over the parts joined, without joining them.

    The first of equal maxima, and the first NaN if there is one (as ``np.argmax``).
    """
    best: tuple[int, float] | None = None
    offset = 0
    for part in parts:
        if len(part):
            i = int(np.argmax(part))
            value = float(part[i])
            if math.isnan(value):
                return offset + i, value
            if best is None or value > best[1]:
                best = (offset + i, value)
        offset += len(part)
    if best is None:
        raise KernelError("no values to take the maximum of")
    return best


def linspace_at(start: float, stop: float, num: int, index: int) -> float:
    """``np.linspace(start, stop, num)[index]``, bit for bit, without making the array.

    The same float64 operations in the same order as numpy's: ``index * step + start`` with
    ``step = (stop - start) / (num - 1)``, the last point ``stop`` itself, and numpy's
    branch for a step that underflows to zero.
    """
    if num > 1 and index == num - 1:
        return float(stop)
    div = num - 1
    delta = float(stop) - float(start)
    if div <= 0:
        return float(index) * delta + float(start)
    step = delta / div
    if step == 0:
        return float(index) / div * delta + float(start)
    return float(index) * step + float(start)


def tunnel_succeeded(result: Mapping[str, Any]) -> bool:
    """Whether a chunk result is a successful tunnel: every transmission finite and in [0, 1]."""
    values = result.get("transmission")
    if not isinstance(values, list | np.ndarray):
        return False
    array = np.asarray(values)
    return (
        array.dtype.kind == "f"
        and bool(np.all(np.isfinite(array)))
        and bool(np.all((array >= 0.0) & (array <= 1.0)))
    )
