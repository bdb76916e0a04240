"""Coherent tunnelling through a Kronig-Penney chain of rectangular barriers.

Units: energies in eV, lengths in nm, masses in electron masses, so
``ħ²/(2m) = HBAR2_OVER_2ME / mass`` eV·nm².

Rules:
    1. The chain is ``cells`` barriers of height ``V0`` and width ``a``, separated by wells of
       width ``w`` (potential 0), between two leads of potential 0. A particle of energy
       ``E > 0`` has wavevector ``k = sqrt(m E) / ħ`` in wells and leads, and
       ``q = sqrt(m (E - V0)) / ħ`` in barriers: the complex square root makes ``q`` imaginary
       under the barrier (``q = iκ``, evanescent) and real above it.
    2. A layer of width ``L`` and wavevector ``q`` carries ``(ψ, ψ'/k)`` across it by
       ``[[cos qL, k·s], [-q²·s/k, cos qL]]`` with ``s = sin(qL)/q``. At ``E == V0`` exactly,
       ``q = 0`` and ``s`` takes its limit ``L``: no nudge. Every entry is an even function of
       ``q``, so the matrices are real for real ``E`` (``cos iκL = cosh κL``,
       ``sin(iκL)/(iκ) = sinh(κL)/κ``), with determinant 1.
    3. In the basis of the leads' plane waves ``e^(±ikx)`` a matrix ``m`` becomes ``t`` with
       ``t22 = ((m00 + m11) + i(m10 - m01))/2`` and ``t21 = ((m00 - m11) + i(m10 + m01))/2``
       (``t11``, ``t12`` their conjugates); a structure transmits ``T = 1/|t22|²`` and
       reflects ``R = |t21|²/|t22|²``. The unit cell is ``C = W·B`` (barrier, then well).
    4. The chain ``B·(W·B)^(N-1)`` and ``C^N`` differ by a well on the exit side, which is
       lead and only shifts phases: they have the same ``T`` and ``R``. The power comes from
       Cayley-Hamilton (Abeles): ``C^N = U_(N-1)(x)·C - U_(N-2)(x)·I`` with ``x = tr(C)/2``
       and ``U`` the Chebyshev polynomials of the second kind, themselves taken by repeated
       squaring of the 2x2 companion matrix ``[[2x, -1], [1, 0]]``. So
       ``t22_N = U_(N-1)·t22(C) - U_(N-2)`` and ``t21_N = U_(N-1)·t21(C)``. Why not square
       ``C`` itself: rounding moves ``det C`` off 1 by about ``ε·e^(2·opacity)`` per product,
       and the error compounds; the identity keeps ``det = 1`` by construction, leaving only
       the rounding of ``x``, the size of an ulp's change in the inputs.
    5. Matrices are rescaled per energy by exact powers of two and the exponents summed, so
       opaque stacks underflow ``T`` gracefully to 0 instead of overflowing.
       ``T + R = 1`` is not built in: it needs ``|t22(C)|² - |t21(C)|² = 1`` and the
       Chebyshev identity, so it checks the arithmetic.
    6. Everything is elementwise over energies: no value depends on its neighbours, so a grid
       computed in chunks equals the grid computed whole, bit for bit.
    7. Range of validity (enforced): ``opacity = a·sqrt(m V0)/ħ <= MAX_OPACITY`` and
       ``cells <= MAX_CELLS``; nothing overflows inside it. Against an 80-bit computation,
       over opacity <= 33 and cells <= 60, the absolute error of ``T`` stayed under 1e-9
       (1e-11 away from the sharpest resonances) and ``|T + R - 1|`` under 1e-11. Sharp
       resonances are ill-conditioned in themselves: an ulp's change of ``E`` moves ``T``
       by about as much.

Bloch's theorem gives the bands of the infinite chain: ``cos(q_B·d) = tr(W·B)/2`` with period
``d = a + w``; energies with ``|tr/2| <= 1`` are allowed (:func:`band_mask`), the rest lie in
gaps where ``T`` falls exponentially with ``cells``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from vsm.errors import VsmError

__all__ = [
    "HBAR2_OVER_2ME",
    "MAX_CELLS",
    "MAX_OPACITY",
    "PLANCK_EV_S",
    "CrystalLattice",
    "LatticeError",
    "band_mask",
    "barrier_transmission",
    "bloch_cosine",
    "reflection",
    "transmission",
]

FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex128]
IntArray = npt.NDArray[np.int64]

HBAR2_OVER_2ME = 0.0380998212
"""ħ²/(2 m_e) in eV·nm²."""

PLANCK_EV_S = 4.135667696e-15
"""Planck's constant h in eV·s."""

MAX_OPACITY = 50.0
"""Largest ``a·sqrt(m V0)/ħ`` accepted: one such barrier already transmits under ``e^-100``."""

MAX_CELLS = 10_000
"""Most barriers in a chain; rounding error grows with the number of cells."""

_FIELDS = ("cells", "barrier_height", "barrier_width", "well_width", "mass")


class LatticeError(VsmError, ValueError):
    """A lattice parameter or an energy is out of range.

    Attributes:
        field: The parameter at fault (``"barrier_height"``, ``"energies"``...).
        value: The offending value.
    """

    def __init__(self, field: str, problem: str, value: object) -> None:
        self.field = field
        self.value = value
        super().__init__(f"{field} {problem}, got {value!r}")


def _as_float(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LatticeError(field, "must be a number", value)
    return float(value)


def _check_real(field: str, value: object, *, minimum: float, strict: bool) -> float:
    number = _as_float(field, value)
    low_ok = number > minimum if strict else number >= minimum
    if not math.isfinite(number) or not low_ok:
        raise LatticeError(field, f"must be finite and {'>' if strict else '>='} {minimum}", value)
    return number


@dataclass(frozen=True, slots=True)
class CrystalLattice:
    """A chain of ``cells`` rectangular barriers: the crystal a particle tunnels through.

    Attributes:
        cells: Number of barriers (1 to :data:`MAX_CELLS`).
        barrier_height: ``V0`` in eV (> 0).
        barrier_width: ``a`` in nm (> 0).
        well_width: ``w``, the spacing between barriers, in nm (>= 0).
        mass: Effective mass in electron masses (> 0).

    Raises:
        LatticeError: A field is out of range, or the barriers are more opaque than
            :data:`MAX_OPACITY`; the message names the field and shows the value.
    """

    cells: int
    barrier_height: float
    barrier_width: float
    well_width: float
    mass: float = 1.0

    def __post_init__(self) -> None:
        cells = self.cells
        if isinstance(cells, bool) or not isinstance(cells, int) or not 1 <= cells <= MAX_CELLS:
            raise LatticeError("cells", f"must be an int in [1, {MAX_CELLS}]", cells)
        _check_real("barrier_height", self.barrier_height, minimum=0.0, strict=True)
        _check_real("barrier_width", self.barrier_width, minimum=0.0, strict=True)
        _check_real("well_width", self.well_width, minimum=0.0, strict=False)
        _check_real("mass", self.mass, minimum=0.0, strict=True)
        if not self.opacity <= MAX_OPACITY:
            raise LatticeError(
                "barrier_width",
                f"makes each barrier too opaque: a·sqrt(m·V0)/ħ = {self.opacity:.4g} exceeds "
                f"{MAX_OPACITY} (height {self.barrier_height!r} eV, mass {self.mass!r})",
                self.barrier_width,
            )

    @property
    def period(self) -> float:
        """The lattice constant ``d = a + w`` in nm."""
        return self.barrier_width + self.well_width

    @property
    def opacity(self) -> float:
        """``κ0·a = a·sqrt(m V0)/ħ``: a single barrier transmits about ``e^(-2·opacity)``."""
        return self.barrier_width * math.sqrt(self.mass * self.barrier_height / HBAR2_OVER_2ME)

    def to_params(self) -> dict[str, Any]:
        """The lattice as a msgpack-plain dict, the inverse of :meth:`from_params`."""
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> CrystalLattice:
        """Build a lattice from a plain mapping, as :meth:`to_params` writes it.

        ``mass`` may be left out (1.0); integers are accepted where floats are expected.

        Raises:
            LatticeError: ``params`` is not a mapping, a key is missing or unknown, or a value
                has the wrong type or is out of range.
        """
        if not isinstance(params, Mapping):
            raise LatticeError("lattice", "must be a mapping of lattice parameters", params)
        unknown = sorted(str(key) for key in params if key not in _FIELDS)
        if unknown:
            raise LatticeError("lattice", f"has unknown keys {unknown}", dict(params))
        missing = [name for name in _FIELDS[:4] if name not in params]
        if missing:
            raise LatticeError("lattice", f"is missing keys {missing}", dict(params))
        reals = {name: _as_float(name, params[name]) for name in _FIELDS[1:] if name in params}
        return cls(cells=params["cells"], **reals)


def _wavevector_squared(mass: float, energy: FloatArray) -> FloatArray:
    return np.asarray(mass * energy / HBAR2_OVER_2ME, dtype=np.float64)


def _check_energies(lattice_mass: float, energies: npt.ArrayLike) -> FloatArray:
    """The energies as a float array, if each is finite, > 0 and has a representable k²."""
    values = np.asarray(energies, dtype=np.float64)
    k2 = _wavevector_squared(lattice_mass, values)
    bad = ~(np.isfinite(values) & (values > 0) & np.isfinite(k2) & (k2 > 0))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise LatticeError(
            "energies", f"must be finite and > 0 eV; energies{list(where)} is bad", values[where]
        )
    return values


def _layer(q: ComplexArray, width: float, k: ComplexArray) -> ComplexArray:
    """The transfer matrices of one layer, one per energy, in the ``(ψ, ψ'/k)`` basis."""
    flat = q == 0
    safe_q = np.where(flat, 1.0, q)
    # sin(qL)/q, with its limit L where q is exactly 0 (E == V0): finite without a nudge.
    s = np.where(flat, width, np.sin(safe_q * width) / safe_q)
    c = np.cos(q * width)
    out = np.empty((*q.shape, 2, 2), dtype=np.complex128)
    out[..., 0, 0] = c
    out[..., 0, 1] = k * s
    out[..., 1, 0] = -(q * q) * s / k
    out[..., 1, 1] = c
    return out


def _to_leads(m: ComplexArray) -> ComplexArray:
    """A ``(ψ, ψ'/k)`` matrix in the basis of plane waves ``e^(±ikx)`` of the leads (rule 3)."""
    out = np.empty_like(m)
    even, odd = m[..., 0, 0] + m[..., 1, 1], m[..., 0, 0] - m[..., 1, 1]
    cross, twist = m[..., 1, 0] + m[..., 0, 1], m[..., 1, 0] - m[..., 0, 1]
    out[..., 0, 0] = 0.5 * (even - 1j * twist)
    out[..., 0, 1] = 0.5 * (odd - 1j * cross)
    out[..., 1, 0] = 0.5 * (odd + 1j * cross)
    out[..., 1, 1] = 0.5 * (even + 1j * twist)
    return out


def _layers(lattice: CrystalLattice, energies: FloatArray) -> tuple[ComplexArray, ComplexArray]:
    """The barrier's and the well's ``(ψ, ψ'/k)`` layer matrices for each energy."""
    k = np.sqrt(_wavevector_squared(lattice.mass, energies).astype(np.complex128))
    q = np.sqrt(_wavevector_squared(lattice.mass, energies - lattice.barrier_height) + 0j)
    return _layer(q, lattice.barrier_width, k), _layer(k, lattice.well_width, k)


def _cell(lattice: CrystalLattice, energies: FloatArray) -> ComplexArray:
    """The unit cell ``W·B`` in the leads' basis, for each energy."""
    barrier, well = _layers(lattice, energies)
    cell: ComplexArray = np.matmul(_to_leads(well), _to_leads(barrier))
    return cell


def _half_trace(cell: ComplexArray) -> FloatArray:
    return np.asarray(0.5 * (cell[..., 0, 0] + cell[..., 1, 1]).real, dtype=np.float64)


def _rescale(matrices: FloatArray, exponents: IntArray) -> tuple[FloatArray, IntArray]:
    """Divide each matrix by the power of two of its largest entry (exact), keeping count."""
    size = np.abs(matrices)
    largest = np.maximum(
        np.maximum(size[..., 0, 0], size[..., 0, 1]), np.maximum(size[..., 1, 0], size[..., 1, 1])
    )
    shift = np.frexp(largest)[1].astype(np.int64)
    return np.ldexp(matrices, -shift[..., None, None]), exponents + shift


def _chebyshev(cosine: FloatArray, n: int) -> tuple[FloatArray, FloatArray, IntArray]:
    """``(U_n, U_(n-1), e)`` at ``cosine``, both scaled by ``2^-e``, by repeated squaring.

    The companion matrix ``K = [[2x, -1], [1, 0]]`` has ``K^n = [[U_n, -U_(n-1)],
    [U_(n-1), -U_(n-2)]]`` (the recurrence ``U_(n+1) = 2x·U_n - U_(n-1)``).
    """
    companion = np.zeros((*cosine.shape, 2, 2), dtype=np.float64)
    companion[..., 0, 0] = 2.0 * cosine
    companion[..., 0, 1] = -1.0
    companion[..., 1, 0] = 1.0
    zero = np.zeros(cosine.shape, dtype=np.int64)
    result, result_exp = np.broadcast_to(np.eye(2), companion.shape), zero
    base, base_exp = _rescale(companion, zero)
    while n:
        if n & 1:
            result, result_exp = _rescale(np.matmul(result, base), result_exp + base_exp)
        n >>= 1
        if n:
            base, base_exp = _rescale(np.matmul(base, base), 2 * base_exp)
    return result[..., 0, 0], result[..., 1, 0], result_exp


def _squared(z: ComplexArray) -> FloatArray:
    return np.asarray(np.square(z.real) + np.square(z.imag), dtype=np.float64)


def _probabilities(
    lattice: CrystalLattice, energies: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Unclipped ``(T, R)`` (rules 3-5); each may stray past 1 by a rounding error."""
    values = _check_energies(lattice.mass, energies)
    cell = _cell(lattice, values)
    u_high, u_low, exponent = _chebyshev(_half_trace(cell), lattice.cells - 1)
    # |t22(C)| >= 1 can be large (slow particles under opaque barriers): scale it, and the
    # identity's other term with it, by an exact power of two before anything is squared.
    shift = np.frexp(np.abs(cell[..., 1, 1]))[1].astype(np.int64)
    scale = np.ldexp(1.0, -shift)
    t22: ComplexArray = u_high * (cell[..., 1, 1] * scale) - u_low * scale
    t21: ComplexArray = u_high * (cell[..., 1, 0] * scale)
    size = _squared(t22)
    return np.ldexp(1.0 / size, -2 * (exponent + shift)), _squared(t21) / size


def transmission(lattice: CrystalLattice, energies: npt.ArrayLike) -> FloatArray:
    """Coherent transmission probability through the chain, per energy (transfer matrices).

    Args:
        lattice: The chain of barriers.
        energies: Energies in eV, each finite and > 0; any shape.

    Returns:
        ``T`` in ``[0, 1]``, the same shape as ``energies``. Unitarity makes ``|t22| >= 1``;
        where rounding puts ``T`` a few ulps over 1 it is clipped, so ``T`` stays a
        probability.

    Raises:
        LatticeError: An energy is not finite or not > 0.
    """
    t, _ = _probabilities(lattice, energies)
    return np.minimum(t, 1.0)


def reflection(lattice: CrystalLattice, energies: npt.ArrayLike) -> FloatArray:
    """Reflection probability ``R = |t21/t22|²``, from the matrix, not as ``1 - T``.

    Args:
        lattice: The chain of barriers.
        energies: Energies in eV, each finite and > 0; any shape.

    Returns:
        ``R`` in ``[0, 1]``, the same shape as ``energies``. Behind opaque barriers ``R`` is
        within rounding of 1 and may land a few ulps over it; that is clipped.

    Raises:
        LatticeError: An energy is not finite or not > 0.
    """
    _, r = _probabilities(lattice, energies)
    return np.minimum(r, 1.0)


def bloch_cosine(lattice: CrystalLattice, energies: npt.ArrayLike) -> FloatArray:
    """``cos(q_B·d) = tr(W·B)/2``: the unit cell's half-trace, per energy (Bloch's condition).

    Inside ``[-1, 1]`` the infinite chain has a real Bloch wavevector ``q_B`` (a band); outside,
    ``|cos|`` measures how deep in a gap the energy lies: ``T`` falls about like
    ``(|cos| + sqrt(cos² - 1))^(-2·cells)`` there.

    Raises:
        LatticeError: An energy is not finite or not > 0.
    """
    return _half_trace(_cell(lattice, _check_energies(lattice.mass, energies)))


def band_mask(lattice: CrystalLattice, energies: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Whether each energy lies in an allowed band of the infinite chain: ``|cos(q_B·d)| <= 1``.

    Raises:
        LatticeError: An energy is not finite or not > 0.
    """
    return np.asarray(np.abs(bloch_cosine(lattice, energies)) <= 1.0, dtype=np.bool_)


def barrier_transmission(
    energies: npt.ArrayLike, height: float, width: float, mass: float = 1.0
) -> FloatArray:
    """The textbook closed form for one rectangular barrier.

    With ``κ = sqrt(m (V0 - E))/ħ`` and ``k' = sqrt(m (E - V0))/ħ``:

    - ``E < V0``: ``T = 1 / (1 + V0² sinh²(κa) / (4E(V0 - E)))``;
    - ``E > V0``: ``T = 1 / (1 + V0² sin²(k'a) / (4E(E - V0)))``;
    - ``E = V0``: ``T = 1 / (1 + m a² V0 / (2ħ²))``.

    Args:
        energies: Energies in eV, each finite and > 0; any shape.
        height: ``V0`` in eV (> 0).
        width: ``a`` in nm (> 0).
        mass: Effective mass in electron masses (> 0).

    Raises:
        LatticeError: An argument is out of range.
    """
    v0 = _check_real("height", height, minimum=0.0, strict=True)
    a = _check_real("width", width, minimum=0.0, strict=True)
    m = _check_real("mass", mass, minimum=0.0, strict=True)
    e = _check_energies(m, energies)
    out = np.empty_like(e)
    under, over, level = e < v0, e > v0, e == v0
    eu, eo = e[under], e[over]
    kappa = np.sqrt(m * (v0 - eu) / HBAR2_OVER_2ME)
    with np.errstate(over="ignore"):  # sinh² overflowing to inf gives the right limit, T = 0
        out[under] = 1.0 / (1.0 + v0**2 * np.sinh(kappa * a) ** 2 / (4.0 * eu * (v0 - eu)))
    k_over = np.sqrt(m * (eo - v0) / HBAR2_OVER_2ME)
    out[over] = 1.0 / (1.0 + v0**2 * np.sin(k_over * a) ** 2 / (4.0 * eo * (eo - v0)))
    out[level] = 1.0 / (1.0 + m * a * a * v0 / (4.0 * HBAR2_OVER_2ME))
    return out
