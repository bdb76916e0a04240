"""GLIMMER patterns: seeded point sets in the unit square, and the kernel that makes them.

A :class:`PatternConfig` names a pattern type, a complexity and a seed; :func:`generate_pattern`
turns it into a :class:`Pattern`, an ``(n, 2)`` array of vertices. The Ray shell runs batches
through :func:`pattern_split`, :func:`pattern_kernel` and :func:`pattern_merge`.

Rules:
    1. Complexity ``c`` in ``(0, 10]`` sets the vertex count, ``round(64 * 2**c)`` (64 to
       65 536) unless ``vertices`` overrides it, and the harmonic count, ``1 + floor(c)``
       (1 to 11).
    2. Every pattern draws all its randomness from its own ``numpy.random.default_rng(seed)``,
       in a fixed order, so one config always gives bit-identical vertices, whatever batch or
       chunk it travels in. Every type draws phases from the seed, so the seed always matters.
       Bit-identity holds for one numpy build on one CPU family: vectorised ``sin``/``cos``
       may differ in the last place between, say, AVX-512 and plain x86-64 builds.
    3. Vertices are normalised last: the bounding box is centred on the origin and scaled by
       one factor (the aspect ratio is kept) so the largest coordinate has magnitude 1.
       Every vertex is finite and inside ``[-1, 1]²``.
    4. Kernel params are validated at the edge and refused with :class:`KernelError` naming
       the param and showing its value. A batch holds at most :data:`MAX_BATCH` patterns and
       :data:`MAX_BATCH_VERTICES` vertices in all.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vsm.errors import MalformedDataError
from vsm.kernels._base import KernelError

__all__ = [
    "MAX_BATCH",
    "MAX_BATCH_VERTICES",
    "Pattern",
    "PatternConfig",
    "PatternType",
    "generate_batch",
    "generate_pattern",
    "pattern_kernel",
    "pattern_merge",
    "pattern_split",
]

Vertices = npt.NDArray[np.float64]

MAX_BATCH = 4096
"""The most patterns one kernel call may ask for."""

MAX_BATCH_VERTICES = 1 << 24
"""The most vertices, summed over a batch, one kernel call may ask for (256 MiB of float64)."""

_DIGEST_DOMAIN = b"vsm-ray/glimmer-pattern/v1\x00"
_GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))
_TAU = 2.0 * math.pi


class PatternType(StrEnum):
    """The shapes GLIMMER draws; each formula is in ``docs/kernels.md``."""

    SPIRAL = "spiral"
    """Phyllotaxis: point ``k`` at the golden angle times ``k``, radius ``sqrt(k / n)``."""
    LISSAJOUS = "lissajous"
    """A Lissajous figure with harmonic overtones on both axes."""
    ROSE = "rose"
    """A rhodonea ``r = cos(k θ)`` with harmonic overtones, ``k = p / q``."""
    LATTICE = "lattice"
    """A hexagonal lattice, rotated and warped by a sum of sines."""
    QUANTUM = "quantum"
    """Samples of ``|ψ|²`` for a particle in a box in a superposition of eigenstates."""


class PatternConfig(BaseModel):
    """What to draw: a type, a complexity and a seed (rule 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: PatternType
    complexity: float = Field(gt=0, le=10, strict=True, description="sets vertices, harmonics")
    seed: int = Field(default=0, ge=0, lt=1 << 64, strict=True)
    vertices: int | None = Field(
        default=None, ge=3, le=1_000_000, strict=True, description="overrides the vertex count"
    )

    @property
    def vertex_count(self) -> int:
        """Vertices the pattern has: ``vertices`` if set, else ``round(64 * 2**complexity)``."""
        if self.vertices is not None:
            return self.vertices
        return round(64 * math.pow(2.0, self.complexity))

    @property
    def harmonic_count(self) -> int:
        """Harmonics (or superposed eigenstates) the pattern sums: ``1 + floor(complexity)``."""
        return 1 + math.floor(self.complexity)

    @property
    def estimated_work(self) -> int:
        """Vertices times harmonics: what :func:`pattern_split` balances chunks by."""
        return self.vertex_count * self.harmonic_count

    def to_params(self) -> dict[str, Any]:
        """The config as msgpack-plain data, as :func:`pattern_kernel` accepts it."""
        return self.model_dump(mode="json")


@dataclass(frozen=True, eq=False)
class Pattern:
    """A generated pattern: its config and its vertices.

    Attributes:
        config: The config it was generated from.
        vertices: ``(config.vertex_count, 2)`` float64, finite, inside ``[-1, 1]²``; a
            read-only copy of what was passed.
    """

    config: PatternConfig
    vertices: Vertices

    def __post_init__(self) -> None:
        array = np.array(self.vertices, dtype=np.float64, order="C", copy=True)
        expected = (self.config.vertex_count, 2)
        if array.shape != expected:
            raise ValueError(f"Pattern.vertices must have shape {expected}, got {array.shape}")
        if not np.isfinite(array).all() or np.abs(array).max() > 1.0:
            raise ValueError("Pattern.vertices must be finite and inside [-1, 1]²")
        array.flags.writeable = False
        object.__setattr__(self, "vertices", array)  # frozen: normalise through object

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pattern):
            return NotImplemented
        return self.config == other.config and np.array_equal(self.vertices, other.vertices)

    def __hash__(self) -> int:
        return hash(self.digest())

    def digest(self) -> str:
        """SHA-256 hex over a domain prefix, the canonical config and the vertices' bytes."""
        config = json.dumps(self.config.to_params(), sort_keys=True).encode()
        h = hashlib.sha256(_DIGEST_DOMAIN)
        h.update(config + b"\x00")
        h.update(self.vertices.astype("<f8", copy=False).tobytes())
        return h.hexdigest()

    def to_params(self) -> dict[str, Any]:
        """Return ``{"config": {...}, "vertices": [[x, y], ...]}``; floats round-trip exactly."""
        return {"config": self.config.to_params(), "vertices": self.vertices.tolist()}

    @classmethod
    def from_params(cls, data: object) -> Pattern:
        """Rebuild a pattern from :meth:`to_params` output.

        Raises:
            MalformedDataError: ``data`` does not describe a pattern; ``path`` says where.
        """
        if not isinstance(data, Mapping) or set(data) != {"config", "vertices"}:
            raise MalformedDataError("Pattern", "", 'expected {"config", "vertices"}', data)
        try:
            config = PatternConfig.model_validate(data["config"])
        except ValidationError as exc:
            error = exc.errors()[0]
            path = ".".join(["config", *map(str, error["loc"])])
            raise MalformedDataError("Pattern", path, error["msg"], error["input"]) from exc
        raw = data["vertices"]
        if not isinstance(raw, list | tuple):
            raise MalformedDataError("Pattern", "vertices", "expected a list of [x, y]", raw)
        try:
            array = np.asarray(raw)
        except ValueError as exc:  # ragged rows
            raise MalformedDataError("Pattern", "vertices", "rows differ in length", raw) from exc
        if array.dtype.kind not in "iuf":  # refuses strings, all-bool rows, big ints
            raise MalformedDataError("Pattern", "vertices", "expected numbers only", raw)
        if array.shape != (config.vertex_count, 2):
            problem = f"expected shape ({config.vertex_count}, 2), got {array.shape}"
            raise MalformedDataError("Pattern", "vertices", problem, raw)
        if any(isinstance(x, bool) for row in raw for x in row):  # numpy would take 1.0
            raise MalformedDataError("Pattern", "vertices", "expected numbers, not bools", raw)
        array = array.astype(np.float64)
        bad = ~(np.isfinite(array) & (np.abs(array) <= 1.0))
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            problem = "expected finite values inside [-1, 1]"
            raise MalformedDataError("Pattern", f"vertices[{row}]", problem, raw[row])
        return cls(config, array)


# ---------------------------------------------------------------- generation


def _overtones(rng: np.random.Generator, count: int) -> tuple[Vertices, Vertices]:
    """Amplitudes ``u_j / j`` (``u_j`` uniform in [0.5, 1)), normalised to sum 1, and phases."""
    amplitudes = rng.uniform(0.5, 1.0, count) / np.arange(1, count + 1)
    phases = rng.uniform(0.0, _TAU, count)
    return amplitudes / amplitudes.sum(), phases


def _wave(t: Vertices, amplitudes: Vertices, phases: Vertices, *, sine: bool = False) -> Vertices:
    """``Σ_j a_j cos(j t + φ_j)`` (or ``sin``), in [-1, 1] since the ``a_j`` sum to 1."""
    out = np.zeros_like(t)
    wave = np.sin if sine else np.cos
    for j, (a, phi) in enumerate(zip(amplitudes, phases, strict=True), start=1):
        out += a * wave(j * t + phi)
    return out


def _spiral(n: int, h: int, rng: np.random.Generator) -> Vertices:
    turn = rng.uniform(0.0, _TAU)
    amplitudes, phases = _overtones(rng, h)
    k = np.arange(n, dtype=np.float64)
    theta = np.mod(k * _GOLDEN_ANGLE + turn, _TAU)
    radius = np.sqrt((k + 0.5) / n) * (1.0 + 0.25 * _wave(theta, amplitudes, phases))
    return np.column_stack([radius * np.cos(theta), radius * np.sin(theta)])


def _lissajous(n: int, h: int, rng: np.random.Generator) -> Vertices:
    p, q = rng.integers(1, h + 2, size=2)
    ax, phx = _overtones(rng, h)
    ay, phy = _overtones(rng, h)
    t = np.arange(n, dtype=np.float64) * (_TAU / n)
    return np.column_stack([_wave(p * t, ax, phx, sine=True), _wave(q * t, ay, phy, sine=True)])


def _rose(n: int, h: int, rng: np.random.Generator) -> Vertices:
    p = int(rng.integers(1, h + 3))
    q = int(rng.integers(1, 4))
    amplitudes, phases = _overtones(rng, h)
    theta = np.arange(n, dtype=np.float64) * (_TAU * q / n)  # the curve closes after 2π q
    radius = _wave(theta * (p / q), amplitudes, phases)
    return np.column_stack([radius * np.cos(theta), radius * np.sin(theta)])


def _lattice(n: int, h: int, rng: np.random.Generator) -> Vertices:
    turn = rng.uniform(0.0, _TAU)
    ax, phx = _overtones(rng, h)
    ay, phy = _overtones(rng, h)
    side = math.ceil(math.sqrt(n))
    row, col = np.divmod(np.arange(n), side)
    u = (col + 0.5 * (row % 2)) / side
    v = row * (math.sqrt(3.0) / 2.0) / side
    u, v = u + 0.08 * _wave(_TAU * v, ax, phx, sine=True), v + 0.08 * _wave(_TAU * u, ay, phy)
    c, s = math.cos(turn), math.sin(turn)
    return np.column_stack([c * u - s * v, s * u + c * v])


def _quantum(n: int, h: int, rng: np.random.Generator) -> Vertices:
    levels = h + 1  # quantum numbers 1..h+1 on each axis
    states = rng.choice(levels * levels, size=h, replace=False)
    nx, ny = states // levels + 1, states % levels + 1
    weights = rng.standard_normal(h)
    weights /= math.hypot(*weights) or 1.0  # not np.linalg.norm: no BLAS in the result
    # Inverse-CDF sampling of |ψ|² tabulated on a grid fine enough for 32 cells per lobe,
    # then uniform jitter inside the drawn cell. The sum runs in a plain loop, not a BLAS
    # product, so the result cannot depend on BLAS threading or kernels.
    grid = min(32 * levels, 512)
    centres = (np.arange(grid) + 0.5) / grid
    psi = np.zeros((grid, grid))
    for w, a, b in zip(weights, nx, ny, strict=True):
        psi += (2.0 * w) * np.outer(np.sin(a * math.pi * centres), np.sin(b * math.pi * centres))
    cdf = np.cumsum((psi * psi).ravel())
    cells = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
    ix, iy = np.divmod(np.minimum(cells, grid * grid - 1), grid)
    x = (ix + rng.random(n)) / grid
    y = (iy + rng.random(n)) / grid
    return np.column_stack([x, y])


_GENERATORS = {
    PatternType.SPIRAL: _spiral,
    PatternType.LISSAJOUS: _lissajous,
    PatternType.ROSE: _rose,
    PatternType.LATTICE: _lattice,
    PatternType.QUANTUM: _quantum,
}


def _normalise(points: Vertices) -> Vertices:
    """Rule 3: centre the bounding box, scale the largest magnitude to 1 (one factor)."""
    centred: Vertices = points - (points.min(axis=0) + points.max(axis=0)) / 2.0
    scale = float(np.abs(centred).max())
    return centred / scale if scale > 0 else centred


def generate_pattern(config: PatternConfig) -> Pattern:
    """Draw the pattern ``config`` describes; the same config gives bit-identical vertices."""
    rng = np.random.default_rng(config.seed)
    points = _GENERATORS[config.type](config.vertex_count, config.harmonic_count, rng)
    return Pattern(config, _normalise(points))


def generate_batch(configs: Sequence[PatternConfig]) -> list[Pattern]:
    """Draw every pattern in order: the single-process reference for the kernel."""
    return [generate_pattern(config) for config in configs]


# ---------------------------------------------------------------- the kernel

_BATCH_KEYS = frozenset({"patterns", "include_vertices", "index"})
_SINGLE_KEYS = frozenset(PatternConfig.model_fields) | {"include_vertices", "index"}


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class _Request:
    configs: list[PatternConfig]
    index: int
    include_vertices: bool


def _request(params: object) -> _Request:
    """Validate kernel params (rule 4)."""
    if not isinstance(params, Mapping):
        raise KernelError(f"params must be a mapping, got {_shown(params)}")
    known = _BATCH_KEYS if "patterns" in params else _SINGLE_KEYS
    for key in params:
        if key not in known:
            raise KernelError(f"unknown param {key!r} (known: {sorted(known)})")
    include = params.get("include_vertices", False)
    if not isinstance(include, bool):
        raise KernelError(f"param 'include_vertices' must be a bool, got {_shown(include)}")
    index = params.get("index", 0)
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise KernelError(f"param 'index' must be an int >= 0, got {_shown(index)}")
    if "patterns" in params:
        raw = params["patterns"]
        if not isinstance(raw, list | tuple):
            raise KernelError(f"param 'patterns' must be a list of configs, got {_shown(raw)}")
        if len(raw) > MAX_BATCH:
            raise KernelError(f"param 'patterns' holds {len(raw)} configs; at most {MAX_BATCH}")
        items = [(f"patterns[{i}]", item) for i, item in enumerate(raw)]
    else:
        items = [("", {k: v for k, v in params.items() if k in PatternConfig.model_fields})]
    configs = [_config(name, item) for name, item in items]
    total = sum(config.vertex_count for config in configs)
    if total > MAX_BATCH_VERTICES:
        raise KernelError(
            f"param 'patterns' asks for {total} vertices in all; at most {MAX_BATCH_VERTICES}"
        )
    return _Request(configs, index, include)


def _config(name: str, item: object) -> PatternConfig:
    if not isinstance(item, Mapping):
        raise KernelError(f"param {name!r} must be a mapping, got {_shown(item)}")
    try:
        return PatternConfig.model_validate(dict(item))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join([name, *map(str, error["loc"])]).lstrip(".")
        raise KernelError(
            f"param {where!r} is invalid: {error['msg']} (got {_shown(error['input'])})"
        ) from exc


def _partition(weights: Sequence[int], chunks: int) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` slices, at most ``chunks``, whose heaviest is lightest."""

    def cuts(cap: int) -> list[int]:
        starts, load = [0], 0
        for i, w in enumerate(weights):
            if load + w > cap:
                starts.append(i)
                load = 0
            load += w
        return starts

    low, high = max(weights), sum(weights)
    while low < high:  # binary search for the smallest feasible cap
        middle = (low + high) // 2
        if len(cuts(middle)) <= chunks:
            high = middle
        else:
            low = middle + 1
    starts = cuts(low)
    return list(zip(starts, [*starts[1:], len(weights)], strict=True))


def pattern_split(params: Mapping[str, Any], chunks: int) -> list[dict[str, Any]]:
    """Split a batch into at most ``chunks`` contiguous slices of balanced work.

    Work is estimated as vertices times harmonics (:attr:`PatternConfig.estimated_work`), and
    the slices minimise the heaviest one. Each slice is params for :func:`pattern_kernel`, with
    ``index`` set to its first pattern's place in the whole batch. An empty batch gives one
    empty slice.

    Raises:
        KernelError: ``params`` or ``chunks`` is invalid.
    """
    if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 1:
        raise KernelError(f"param 'chunks' must be an int >= 1, got {_shown(chunks)}")
    request = _request(params)
    configs = [config.to_params() for config in request.configs]
    bounds = _partition([c.estimated_work for c in request.configs], chunks) if configs else []
    return [
        {
            "patterns": configs[start:stop],
            "index": request.index + start,
            "include_vertices": request.include_vertices,
        }
        for start, stop in bounds or [(0, 0)]
    ]


def _summary(pattern: Pattern, include_vertices: bool) -> dict[str, Any]:
    low, high = pattern.vertices.min(axis=0), pattern.vertices.max(axis=0)
    summary: dict[str, Any] = {
        "digest": pattern.digest(),
        "config": pattern.config.to_params(),
        "vertices": pattern.config.vertex_count,
        "harmonics": pattern.config.harmonic_count,
        "bounds": [float(low[0]), float(low[1]), float(high[0]), float(high[1])],
    }
    if include_vertices:
        summary["points"] = pattern.vertices.tolist()
    return summary


def pattern_kernel(params: Mapping[str, Any]) -> dict[str, Any]:
    """Generate a batch (or one pattern) and summarise each.

    Returns:
        ``{"index": first_index, "patterns": [summary, ...]}``; a summary holds ``digest``,
        ``config``, ``vertices`` (the count), ``harmonics`` and ``bounds``
        (``[xmin, ymin, xmax, ymax]``), plus ``points`` (``[[x, y], ...]``) when params set
        ``include_vertices``.

    Raises:
        KernelError: ``params`` is invalid.
    """
    request = _request(params)
    patterns = generate_batch(request.configs)
    return {
        "index": request.index,
        "patterns": [_summary(p, request.include_vertices) for p in patterns],
    }


def pattern_merge(params: Mapping[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    """Join chunk results, in order, into what :func:`pattern_kernel` returns for ``params``.

    Raises:
        KernelError: ``params`` is invalid, or ``results`` do not tile the batch exactly.
    """
    request = _request(params)
    if not isinstance(results, list | tuple):
        raise KernelError(f"param 'results' must be a list, got {_shown(results)}")
    merged: list[Any] = []
    for i, result in enumerate(sorted(results, key=_chunk_index)):
        expected = request.index + len(merged)
        if result["index"] != expected or not isinstance(result.get("patterns"), list):
            raise KernelError(
                f"param 'results' does not tile the batch: chunk {i} should start at "
                f"{expected} with a list of patterns, got {_shown(result)}"
            )
        merged.extend(result["patterns"])
    if len(merged) != len(request.configs):
        raise KernelError(
            f"param 'results' holds {len(merged)} patterns; the batch has {len(request.configs)}"
        )
    return {"index": request.index, "patterns": merged}


def _chunk_index(result: object) -> int:
    index = result.get("index") if isinstance(result, Mapping) else None
    if isinstance(index, bool) or not isinstance(index, int):
        raise KernelError(f"param 'results' holds a chunk without an int 'index': {_shown(result)}")
    return index
