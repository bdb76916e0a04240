"""Tunnelling: the transfer-matrix physics, bridges, the controller and the chunked kernel."""

from __future__ import annotations

import itertools
import math
import random
import re

import msgpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.strategies_kernels import (
    COHERENCES,
    LOADS,
    energies_near,
    lattice_params,
    lattice_with_energies,
    resource_metrics,
    tunnel_configs,
)
from vsm.errors import VsmError
from vsm.kernels import (
    ARRAY_DTYPES,
    KernelError,
    arrays_as_lists,
    is_packed_array,
    pack_array,
    unpack_array,
)
from vsm.kernels._lattice import (
    HBAR2_OVER_2ME,
    MAX_OPACITY,
    PLANCK_EV_S,
    CrystalLattice,
    LatticeError,
    _layers,
    _probabilities,
    band_mask,
    barrier_transmission,
    bloch_cosine,
    reflection,
    transmission,
)
from vsm.kernels._tunnel import (
    MAX_CHUNKS,
    QuantumBridge,
    ResourceMetrics,
    TunnelConfig,
    TunnelController,
    TunnelError,
    first_argmax,
    linspace_at,
    mixed_transmission,
    sequential_transmission,
    tunnel_kernel,
    tunnel_merge,
    tunnel_split,
    tunnel_succeeded,
)

PHI = (1 + math.sqrt(5)) / 2
ULPS = 16 * np.finfo(np.float64).eps
"""Sixteen ulps at 1: rounding slack for sums of a few probabilities."""


def _grid_params(lattice: CrystalLattice, **extra: object) -> dict[str, object]:
    return {"lattice": lattice.to_params(), "e_min": 0.01, "e_max": 3.0, "points": 301, **extra}


def _cuts(size: int, seed: int, pieces: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    inner = sorted(rng.randint(0, size) for _ in range(pieces - 1))
    bounds = [0, *inner, size]
    return list(itertools.pairwise(bounds))


# ---------------------------------------------------------------- the lattice physics


@given(lattice_with_energies(max_cells=1))
def test_one_barrier_matches_the_closed_form(case: tuple[dict[str, float], list[float]]) -> None:
    """With one cell the transfer matrices give the textbook formula to 1e-10, at E = V0 too."""
    params, energies = case
    lattice = CrystalLattice(**{**params, "cells": 1})
    ours = transmission(lattice, energies)
    closed = barrier_transmission(
        energies, lattice.barrier_height, lattice.barrier_width, lattice.mass
    )
    np.testing.assert_allclose(ours, closed, rtol=1e-10, atol=0)


def test_closed_form_spans_both_sides_of_the_barrier_top() -> None:
    """On a grid through E < V0, E = V0 and E > V0, the two methods agree and meet at the top."""
    lattice = CrystalLattice(cells=1, barrier_height=1.0, barrier_width=0.5, well_width=0.3)
    top = [1.0, math.nextafter(1.0, 0), math.nextafter(1.0, 2), 1 - 1e-9, 1 + 1e-9]
    energies = np.concatenate([np.linspace(0.01, 3.0, 997), top])
    ours = transmission(lattice, energies)
    np.testing.assert_allclose(ours, barrier_transmission(energies, 1.0, 0.5), rtol=1e-10)
    at_top = 1 / (1 + lattice.mass * 0.5**2 * 1.0 / (4 * HBAR2_OVER_2ME))
    np.testing.assert_allclose(ours[-5:], at_top, rtol=1e-8)


@given(lattice_with_energies())
def test_probabilities_are_bounded_and_conserved(
    case: tuple[dict[str, float], list[float]],
) -> None:
    """0 <= T, R <= 1 and |T + R - 1| < 1e-9, with R from the matrix (not 1 - T)."""
    params, energies = case
    lattice = CrystalLattice(**params)
    t, r = transmission(lattice, energies), reflection(lattice, energies)
    assert np.all((t >= 0) & (t <= 1))
    assert np.all((r >= 0) & (r <= 1))
    assert np.max(np.abs(t + r - 1)) < 1e-9
    # Before the clip at 1 the excess is rounding only: a few ulps, nothing physical hidden.
    raw_t, raw_r = _probabilities(lattice, energies)
    assert np.all(raw_t <= 1 + 1e-13)
    assert np.all(raw_r <= 1 + 1e-13)


@given(lattice_with_energies())
def test_layer_matrices_are_real_and_unimodular(case: tuple[dict[str, float], list[float]]) -> None:
    """Built with complex q, the layer matrices are exactly real for real E, with det 1.

    This is what lets the products run in real arithmetic (rule 2 of the lattice module).
    """
    params, energies = case
    for layer in _layers(CrystalLattice(**params), np.asarray(energies)):
        assert np.all(layer.imag == 0)
        m = layer.real
        det = m[..., 0, 0] * m[..., 1, 1] - m[..., 0, 1] * m[..., 1, 0]
        scale = np.max(np.abs(m), axis=(-2, -1)) ** 2  # cosh² - sinh² cancels this much
        assert np.all(np.abs(det - 1) <= 8 * np.finfo(np.float64).eps * np.maximum(scale, 1))


@given(lattice_with_energies(), st.integers(1, 6), st.integers(0, 2**32))
def test_chunks_equal_the_whole_grid_exactly(
    case: tuple[dict[str, float], list[float]], pieces: int, seed: int
) -> None:
    """Every lattice function is elementwise: in chunks it equals the whole, bit for bit."""
    params, energies = case
    lattice = CrystalLattice(**params)
    whole = np.asarray(energies)
    cuts = _cuts(len(energies), seed, pieces)
    functions = [
        lambda e: transmission(lattice, e),
        lambda e: reflection(lattice, e),
        lambda e: bloch_cosine(lattice, e),
        lambda e: band_mask(lattice, e),
        lambda e: barrier_transmission(e, lattice.barrier_height, lattice.barrier_width),
        lambda e: mixed_transmission(lattice, e, 0.3),
    ]
    for function in functions:
        joined = np.concatenate([function(whole[lo:hi]) for lo, hi in cuts])
        assert np.array_equal(joined, function(whole))


@given(st.data())
def test_chain_obeys_the_chebyshev_formula(data: st.DataObject) -> None:
    """T_N = 1/(1 + (1/T_1 - 1)·U_{N-1}(cos)²) for N cells: checks the power, not just N = 1.

    U is the Chebyshev polynomial of the second kind at the Bloch cosine (the half-trace).
    Opacity is kept at most 4, where both sides are well conditioned.
    """
    params = data.draw(lattice_params(max_cells=40, max_opacity=4.0))
    energies = np.asarray(data.draw(energies_near(params["barrier_height"], max_size=20)))
    lattice = CrystalLattice(**params)
    one = CrystalLattice(**{**params, "cells": 1})
    cosine = bloch_cosine(lattice, energies)
    u, previous = np.ones_like(cosine), np.zeros_like(cosine)
    for _ in range(lattice.cells - 1):
        u, previous = 2 * cosine * u - previous, u
    expected = 1 / (1 + (1 / transmission(one, energies) - 1) * u**2)
    np.testing.assert_allclose(transmission(lattice, energies), expected, rtol=1e-9)


def _naive_transmission(params: dict[str, float], energies: np.ndarray) -> np.ndarray:
    """T by the plain product B·W·B···B of (ψ, ψ') matrices, left to right: the reference."""
    m, height = params["mass"], params["barrier_height"]
    k = np.sqrt(m * energies / HBAR2_OVER_2ME + 0j)
    q = np.sqrt(m * (energies - height) / HBAR2_OVER_2ME + 0j)

    def layer(p: np.ndarray, width: float) -> np.ndarray:
        s = np.array([width if z == 0 else np.sin(z * width) / z for z in p])
        c = np.cos(p * width)
        return np.moveaxis(np.array([[c, s], [-p * p * s, c]]), (0, 1), (-2, -1))

    barrier, well = layer(q, params["barrier_width"]), layer(k, params["well_width"])
    total = barrier
    for _ in range(int(params["cells"]) - 1):
        total = barrier @ (well @ total)
    t22 = 0.5 * (total[:, 0, 0] + total[:, 1, 1] + 1j * (total[:, 1, 0] / k - k * total[:, 0, 1]))
    return 1 / np.abs(t22) ** 2


@given(st.data())
def test_chain_agrees_with_the_naive_matrix_product(data: st.DataObject) -> None:
    """Against a plain left-to-right product of layer matrices, T agrees to 1e-9.

    Opacity is kept at most 4, where the plain product is itself accurate.
    """
    params = data.draw(lattice_params(max_cells=30, max_opacity=4.0))
    energies = np.asarray(data.draw(energies_near(params["barrier_height"], max_size=10)))
    ours = transmission(CrystalLattice(**params), energies)
    np.testing.assert_allclose(ours, _naive_transmission(params, energies), rtol=1e-9)


GAP_LATTICE = {"barrier_height": 1.0, "barrier_width": 0.4, "well_width": 0.6}
GRID = np.linspace(0.01, 3.0, 3000)


def _bands(allowed: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], allowed.astype(int), [0]])))
    return list(zip(edges[::2], edges[1::2], strict=True))


def test_transmission_in_gaps_decays_with_cells_and_bands_keep_resonances() -> None:
    """Deep in a gap T falls exponentially with N; every band keeps T near 1 somewhere."""
    cosine = bloch_cosine(CrystalLattice(cells=1, **GAP_LATTICE), GRID)
    deep_gap = np.abs(cosine) >= 1.2
    bands = _bands(np.abs(cosine) <= 1)
    assert deep_gap.sum() > 100
    assert len(bands) == 3
    ceilings = {1: 0.5, 5: 1e-2, 20: 1e-9, 50: 1e-20}
    previous = None
    for cells, ceiling in ceilings.items():
        t = transmission(CrystalLattice(cells=cells, **GAP_LATTICE), GRID)
        assert t[deep_gap].max() < ceiling
        if previous is not None:
            assert np.all(t[deep_gap] < previous[deep_gap])
        previous = t
        if cells >= 5:
            for lo, hi in bands:
                assert t[lo:hi].max() > 0.99, (cells, GRID[lo], GRID[hi - 1])
                assert t[lo:hi].mean() > 0.25


def test_band_mask_is_the_bloch_condition() -> None:
    """band_mask is |cos(q_B d)| <= 1, and with no wells bands start exactly at the barrier top."""
    lattice = CrystalLattice(cells=3, **GAP_LATTICE)
    assert np.array_equal(band_mask(lattice, GRID), np.abs(bloch_cosine(lattice, GRID)) <= 1)
    solid = CrystalLattice(cells=3, barrier_height=1.0, barrier_width=0.4, well_width=0.0)
    assert np.array_equal(band_mask(solid, GRID), GRID >= 1.0)


# ---------------------------------------------------------------- lattice validation


@given(lattice_params())
def test_lattice_params_round_trip(params: dict[str, float]) -> None:
    """to_params and from_params are inverse, and the params are msgpack-plain."""
    lattice = CrystalLattice(**params)
    plain = lattice.to_params()
    assert all(isinstance(v, int | float) for v in plain.values())
    assert CrystalLattice.from_params(plain) == lattice


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cells", 0),
        ("cells", True),
        ("cells", 2.0),
        ("barrier_height", 0.0),
        ("barrier_height", math.nan),
        ("barrier_width", -0.1),
        ("well_width", -1.0),
        ("mass", 0.0),
        ("mass", math.inf),
    ],
)
def test_lattice_rejects_bad_fields(field: str, value: object) -> None:
    """A bad field raises LatticeError (a VsmError and ValueError) naming it and showing it."""
    params = {"cells": 2, "barrier_height": 1.0, "barrier_width": 0.5, "well_width": 0.5}
    with pytest.raises(LatticeError, match=field) as info:
        CrystalLattice(**{**params, field: value})
    assert isinstance(info.value, VsmError)
    assert isinstance(info.value, ValueError)
    assert info.value.field == field
    assert repr(value) in str(info.value)


def test_lattice_refuses_barriers_beyond_the_range_of_validity() -> None:
    """Barriers more opaque than MAX_OPACITY are refused, naming the width and the opacity."""
    with pytest.raises(LatticeError, match=r"barrier_width.*opaque"):
        CrystalLattice(cells=1, barrier_height=100.0, barrier_width=10.0, well_width=0.0)
    edge = MAX_OPACITY / math.sqrt(5.0 / HBAR2_OVER_2ME)
    lattice = CrystalLattice(cells=60, barrier_height=5.0, barrier_width=edge, well_width=1.0)
    t = transmission(lattice, np.linspace(0.001, 10, 500))
    assert np.all(np.isfinite(t))
    assert np.all((t >= 0) & (t <= 1))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"cells": 1, "barrier_height": 1.0, "barrier_width": 1.0}, "missing.*well_width"),
        (
            {"cells": 1, "barrier_height": 1, "barrier_width": 1, "well_width": 0, "spin": 1},
            "unknown.*spin",
        ),
        ({"cells": 1, "barrier_height": "1", "barrier_width": 1, "well_width": 0}, "height.*'1'"),
        ([1, 2], "lattice must be a mapping"),
    ],
)
def test_lattice_from_params_rejects_bad_mappings(params: object, match: str) -> None:
    """from_params refuses missing, unknown and mistyped keys with a clear message."""
    with pytest.raises(LatticeError, match=match):
        CrystalLattice.from_params(params)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_energies_must_be_finite_and_positive(bad: float) -> None:
    """A non-positive or non-finite energy raises LatticeError naming it and its index."""
    lattice = CrystalLattice(cells=2, barrier_height=1.0, barrier_width=0.5, well_width=0.5)
    for function in (transmission, reflection, band_mask):
        with pytest.raises(LatticeError, match=r"energies\[2\].*" + re.escape(repr(bad))):
            function(lattice, [0.5, 1.0, bad])


# ---------------------------------------------------------------- bridges


@given(lattice_with_energies(max_size=10), COHERENCES, COHERENCES)
def test_bridge_mixes_between_sequential_and_coherent(
    case: tuple[dict[str, float], list[float]], low: float, high: float
) -> None:
    """A bridge's T lies between T_seq and T_coh and moves towards T_coh as coherence grows."""
    low, high = sorted((low, high))
    lattice = CrystalLattice(**case[0])
    energies = case[1]
    coherent, sequential = (
        transmission(lattice, energies),
        sequential_transmission(lattice, energies),
    )
    lo, hi = np.minimum(coherent, sequential), np.maximum(coherent, sequential)
    t_low = QuantumBridge("a", "b", 1.0, low).transmission(lattice, energies)
    t_high = QuantumBridge("a", "b", 1.0, high).transmission(lattice, energies)
    for t in (t_low, t_high):
        assert np.all((lo <= t) & (t <= hi))
        assert np.all((t >= 0) & (t <= 1))
    # Both sides round separately, so allow a few ulps where T_coh and T_seq nearly agree.
    assert np.all(np.abs(t_high - coherent) <= np.abs(t_low - coherent) + ULPS)
    assert np.array_equal(mixed_transmission(lattice, energies, 1.0), coherent)
    assert np.array_equal(mixed_transmission(lattice, energies, 0.0), sequential)


@given(lattice_with_energies(max_size=10))
def test_sequential_transmission_adds_barriers_in_series(
    case: tuple[dict[str, float], list[float]],
) -> None:
    """Incoherent barriers add like resistors: 1/T_seq - 1 = N·(1/T1 - 1)."""
    lattice = CrystalLattice(**case[0])
    energies = np.asarray(case[1])
    t1 = barrier_transmission(energies, lattice.barrier_height, lattice.barrier_width, lattice.mass)
    t_seq = sequential_transmission(lattice, energies)
    usable = t1 > 1e-150  # where 1/T is finite
    np.testing.assert_allclose(
        (1 / t_seq - 1)[usable], lattice.cells * (1 / t1 - 1)[usable], rtol=1e-9, atol=1e-12
    )


def test_bridge_energy_is_planck_times_frequency() -> None:
    """E = h·f in eV, and with no energies the bridge uses its own."""
    bridge = QuantumBridge("s1", "s2", frequency=432.0, coherence=0.9)
    assert bridge.energy == PLANCK_EV_S * 432.0
    lattice = CrystalLattice(cells=3, barrier_height=1e-12, barrier_width=1.0, well_width=1.0)
    assert np.array_equal(
        bridge.transmission(lattice), mixed_transmission(lattice, [bridge.energy], 0.9)
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"source": ""}, "source.*''"),
        ({"target": 3}, "target.*3"),
        ({"frequency": 0.0}, "frequency.*0.0"),
        ({"coherence": 1.5}, "coherence.*1.5"),
    ],
)
def test_bridge_rejects_bad_fields(kwargs: dict[str, object], match: str) -> None:
    """Bad bridge fields raise TunnelError (a VsmError and ValueError) naming the field."""
    fields = {"source": "a", "target": "b", "frequency": 432.0, "coherence": 0.9, **kwargs}
    with pytest.raises(TunnelError, match=match) as info:
        QuantumBridge(**fields)
    assert isinstance(info.value, VsmError)
    assert isinstance(info.value, ValueError)


# ---------------------------------------------------------------- configuration and metrics


def test_config_defaults_are_the_plans() -> None:
    """The defaults are config/tunnel.toml's, and max_frequency is base·φ."""
    config = TunnelConfig()
    assert config.model_dump() == {
        "base_frequency": 432.0,
        "min_coherence": 0.87,
        "phi_coefficient": 0.618033988749895,
        "min_memory_threshold": 0.2,
        "optimal_core_count": 8,
    }
    assert config.max_frequency == pytest.approx(432.0 * PHI, rel=1e-15)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("base_frequency", 0.0),
        ("base_frequency", math.inf),
        ("min_coherence", 1.01),
        ("phi_coefficient", 1.0),
        ("phi_coefficient", 0.0),
        ("min_memory_threshold", 1.0),
        ("optimal_core_count", 0),
        ("unknown", 1),
    ],
)
def test_config_rejects_bad_values(field: str, value: object) -> None:
    """A bad or unknown config value raises pydantic's ValidationError at that field."""
    with pytest.raises(ValidationError) as info:
        TunnelConfig(**{field: value})
    assert info.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cpus_total": 0.0}, "cpus_total.*0.0"),
        ({"cpus_free": 9.0}, "cpus_free.*9.0"),
        ({"cpus_free": -1.0}, "cpus_free.*-1.0"),
        ({"memory_total": 0}, "memory_total=0"),
        ({"memory_free": 2000}, "memory_free=2000"),
        ({"memory_free": 1.5}, "memory_free.*1.5"),
    ],
)
def test_resource_metrics_reject_bad_values(kwargs: dict[str, object], match: str) -> None:
    """Metrics must be non-negative with free <= total and total > 0; errors show the value."""
    fields = {"cpus_total": 8.0, "cpus_free": 4.0, "memory_total": 1000, "memory_free": 500}
    with pytest.raises(TunnelError, match=match):
        ResourceMetrics(**{**fields, **kwargs})


# ---------------------------------------------------------------- the controller


@given(tunnel_configs(), resource_metrics())
def test_frequency_is_positive_and_at_most_base_times_phi(config: dict, metrics: dict) -> None:
    """The plan's unit test: 0 < f <= base·(1 + φc), and never under the documented floor."""
    cfg = TunnelConfig(**config)
    controller = TunnelController(cfg)
    frequency = controller.observe(ResourceMetrics(**metrics))
    assert 0 < cfg.min_frequency <= frequency <= cfg.max_frequency
    assert controller.frequency == frequency


def test_frequency_of_the_plans_config_stays_under_432_phi() -> None:
    """With the plan's config, an idle host of 8 cores reaches the ceiling 432·φ, no more."""
    controller = TunnelController(TunnelConfig())
    idle = ResourceMetrics(cpus_total=8, cpus_free=8, memory_total=100, memory_free=100)
    assert controller.observe(idle) == controller.config.max_frequency
    assert controller.observe(idle) <= 432.0 * PHI * (1 + 1e-15)


@given(tunnel_configs(), resource_metrics(), LOADS)
def test_frequency_falls_with_load_and_short_memory(
    config: dict, metrics: dict, load: float
) -> None:
    """More load, fewer cores or memory under the threshold never raise the frequency."""
    controller = TunnelController(TunnelConfig(**config))
    sample = ResourceMetrics(**metrics)
    busier = ResourceMetrics(
        sample.cpus_total, sample.cpus_free * (1 - load), sample.memory_total, sample.memory_free
    )
    assert controller.frequency_for(busier) <= controller.frequency_for(sample)
    starved = ResourceMetrics(sample.cpus_total, sample.cpus_free, sample.memory_total, 0)
    assert controller.frequency_for(starved) <= controller.frequency_for(sample)
    if controller.config.min_memory_threshold > 0:
        assert controller.frequency_for(starved) < controller.frequency_for(
            ResourceMetrics(sample.cpus_total, sample.cpus_free, 1, 1)
        )


def test_coherence_is_maintained_at_load_0_8() -> None:
    """The plan's simulate_load(0.8): coherence stays >= 0.87, and only thanks to the controller.

    At the controller's frequency the un-clamped model gives about 0.913; holding the maximum
    frequency under the same load would give about 0.835, below the minimum.
    """
    controller = TunnelController(TunnelConfig())
    kept = controller.coherence(0.8)
    assert kept >= 0.87
    assert kept == pytest.approx(0.87 ** (PHI * 0.8 * (1 - 0.8 / PHI)))
    assert controller.coherence_at(0.8, controller.config.max_frequency) < 0.87
    busy = ResourceMetrics(cpus_total=8, cpus_free=1.6, memory_total=100, memory_free=100)
    assert controller.coherence_at(busy.cpu_load, controller.observe(busy)) >= 0.87


@given(tunnel_configs(), LOADS, resource_metrics())
def test_coherence_never_falls_under_the_minimum(config: dict, load: float, metrics: dict) -> None:
    """By the model, not a clamp: at every load in [0, 1] coherence stays >= min_coherence.

    Also at the frequency the controller really picks for any sampled host.
    """
    controller = TunnelController(TunnelConfig(**config))
    floor = controller.config.min_coherence
    assert controller.coherence(load) >= floor
    sample = ResourceMetrics(**metrics)
    assert controller.coherence_at(sample.cpu_load, controller.observe(sample)) >= floor


@given(tunnel_configs(), resource_metrics(), st.integers(1, 10_000))
def test_chunk_count_follows_free_cores(config: dict, metrics: dict, points: int) -> None:
    """1 <= chunks <= min(points, free cores, MAX_CHUNKS); short memory never adds chunks."""
    controller = TunnelController(TunnelConfig(**config))
    sample = ResourceMetrics(**metrics)
    chunks = controller.chunk_count(points, sample)
    assert 1 <= chunks <= min(points, MAX_CHUNKS, max(1, math.floor(sample.cpus_free)))
    roomy = ResourceMetrics(sample.cpus_total, sample.cpus_free, 1, 1)
    assert chunks <= controller.chunk_count(points, roomy)


def test_chunk_count_examples() -> None:
    """16 free cores give 16 chunks; memory at half the threshold halves them."""
    controller = TunnelController(TunnelConfig())
    plenty = ResourceMetrics(cpus_total=32, cpus_free=16.5, memory_total=100, memory_free=50)
    short = ResourceMetrics(cpus_total=32, cpus_free=16.5, memory_total=100, memory_free=10)
    assert controller.chunk_count(1000, plenty) == 16
    assert controller.chunk_count(1000, short) == 8
    assert controller.chunk_count(3, plenty) == 3
    with pytest.raises(TunnelError, match=r"points.*0"):
        controller.chunk_count(0, plenty)


@given(st.lists(st.tuples(st.booleans(), st.floats(1.0, 1000.0), st.floats(0.0, 1.0))))
def test_metrics_count_like_a_naive_model(records: list[tuple[bool, float, float]]) -> None:
    """Counts, mean frequency and the 10-bucket histogram match a naive recount."""
    controller = TunnelController(TunnelConfig())
    for success, frequency, utilisation in records:
        controller.record(success, frequency, utilisation)
    snapshot = controller.metrics()
    assert snapshot.successful_tunnels == sum(s for s, _, _ in records)
    assert snapshot.failed_tunnels == sum(not s for s, _, _ in records)
    expected = [0] * 10
    for _, _, u in records:
        expected[min(9, math.floor(u * 10))] += 1
    assert list(snapshot.utilisation_histogram) == expected
    mean = sum(f for _, f, _ in records) / len(records) if records else 0.0
    assert snapshot.average_frequency == pytest.approx(mean)


def test_metrics_histogram_edges_and_bad_records() -> None:
    """0.1 opens the second bucket, 1.0 falls in the last; bad records are refused."""
    controller = TunnelController(TunnelConfig())
    for u in (0.0, 0.0999, 0.1, 0.95, 1.0):
        controller.record(True, 432.0, u)
    assert controller.metrics().utilisation_histogram == (2, 1, 0, 0, 0, 0, 0, 0, 0, 2)
    with pytest.raises(TunnelError, match=r"utilisation.*1.5"):
        controller.record(True, 432.0, 1.5)
    with pytest.raises(TunnelError, match=r"frequency.*-1"):
        controller.record(False, -1.0, 0.5)
    assert controller.metrics().failed_tunnels == 0


# ---------------------------------------------------------------- the kernel


@given(lattice_params(max_cells=30), st.integers(1, 200), st.integers(1, 12), COHERENCES)
def test_kernel_chunks_merge_to_the_whole_exactly(
    lattice: dict[str, float], points: int, chunks: int, coherence: float
) -> None:
    """Split, kernel per chunk, merge (in any order): equals the whole grid, bit for bit."""
    params = {"lattice": lattice, "e_min": 0.005, "e_max": 6.0, "points": points}
    params["coherence"] = coherence
    parts = tunnel_split(params, chunks)
    assert len(parts) == min(chunks, points)
    results = [tunnel_kernel(part) for part in parts]
    assert all(tunnel_succeeded(r) for r in results)
    random.Random(points).shuffle(results)
    merged = tunnel_merge(params, results)
    whole = tunnel_kernel(params)
    merged_values = unpack_array(merged["transmission"])
    assert np.array_equal(merged_values, whole["transmission"])
    assert merged["transmission"]["dtype"] == "<f8"
    assert isinstance(merged["transmission"]["data"], bytes)  # msgpack-plain
    energies = np.linspace(0.005, 6.0, points)
    direct = mixed_transmission(CrystalLattice(**lattice), energies, coherence)
    assert np.array_equal(merged_values, direct)
    fraction = np.count_nonzero(band_mask(CrystalLattice(**lattice), energies)) / points
    assert merged["band_fraction"] == fraction
    assert merged["peak_transmission"] == merged_values.max()


def test_kernel_computes_a_slice_of_the_grid() -> None:
    """start/stop select grid[start:stop] of the full linspace; merge covers that slice only."""
    lattice = CrystalLattice(cells=10, **GAP_LATTICE)
    params = _grid_params(lattice, start=100, stop=171)
    result = tunnel_kernel(params)
    full = transmission(lattice, np.linspace(0.01, 3.0, 301))
    assert (result["start"], result["stop"]) == (100, 171)
    assert np.array_equal(np.asarray(result["transmission"]), full[100:171])
    merged = tunnel_merge(params, [tunnel_kernel(p) for p in tunnel_split(params, 4)])
    assert np.array_equal(unpack_array(merged["transmission"]), result["transmission"])
    assert (merged["start"], merged["stop"], merged["points"]) == (100, 171, 301)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"points": 0}, "'points'.* 0"),
        ({"points": 2.5}, "'points'.*2.5"),
        ({"e_min": 0.0}, "'e_min'.*0.0"),
        ({"e_max": 0.001}, "'e_max'.*0.001"),
        ({"e_min": "low"}, "'e_min'.*'low'"),
        ({"start": 301}, "'start'.*301"),
        ({"start": 5, "stop": 5}, "'stop'.* 5"),
        ({"coherence": 2.0}, "'coherence'.*2.0"),
        ({"lattice": None}, "'lattice'.*None"),
        ({"lattice": {"cells": 0}}, "'lattice'.*missing"),
        ({"colour": "red"}, "unknown params.*colour"),
    ],
)
def test_kernel_rejects_bad_params(change: dict[str, object], match: str) -> None:
    """Invalid params raise KernelError naming the param and showing its value."""
    params = {**_grid_params(CrystalLattice(2, 1.0, 0.5, 0.5)), **change}
    with pytest.raises(KernelError, match=match):
        tunnel_kernel(params)


def test_kernel_translates_lattice_errors() -> None:
    """A lattice out of range fails the kernel with KernelError, chained to the LatticeError."""
    lattice = {"cells": 2, "barrier_height": -1.0, "barrier_width": 0.5, "well_width": 0.5}
    with pytest.raises(KernelError, match=r"'lattice'.*barrier_height.*-1.0") as info:
        tunnel_kernel({**_grid_params(CrystalLattice(2, 1.0, 0.5, 0.5)), "lattice": lattice})
    assert isinstance(info.value.__cause__, LatticeError)
    with pytest.raises(KernelError, match=r"chunks.*0"):
        tunnel_split(_grid_params(CrystalLattice(2, 1.0, 0.5, 0.5)), 0)


def test_merge_refuses_gaps_overlaps_and_short_results() -> None:
    """Results must tile the slice exactly; a gap, an overlap or a wrong length is refused."""
    params = _grid_params(CrystalLattice(3, 1.0, 0.5, 0.5))
    results = [tunnel_kernel(p) for p in tunnel_split(params, 3)]
    with pytest.raises(KernelError, match="gap or overlap"):
        tunnel_merge(params, [results[0], results[2]])
    with pytest.raises(KernelError, match="gap or overlap"):
        tunnel_merge(params, [*results, results[1]])
    with pytest.raises(KernelError, match="end at point"):
        tunnel_merge(params, results[:2])
    with pytest.raises(KernelError, match=r"results\[0\]\['transmission'\]"):
        tunnel_merge(params, [{**results[0], "transmission": [0.5]}, *results[1:]])
    wrong = np.zeros((len(results[1]["transmission"]), 2))
    with pytest.raises(KernelError, match=r"results\[1\]\['transmission'\].*shape"):
        tunnel_merge(params, [results[0], {**results[1], "transmission": wrong}, results[2]])
    as_lists = [{**r, "transmission": r["transmission"].tolist()} for r in results]
    assert tunnel_merge(params, as_lists) == tunnel_merge(params, results)  # lists merge too
    with pytest.raises(KernelError, match="non-empty list"):
        tunnel_merge(params, [])


def test_tunnel_succeeded_means_finite_probabilities() -> None:
    """A chunk succeeds when every transmission is a finite float in [0, 1]."""
    assert tunnel_succeeded({"transmission": [0.0, 0.5, 1.0]})
    assert tunnel_succeeded({"transmission": np.array([0.0, 0.5, 1.0])})
    for bad in ([math.nan], [1.5], [-0.1], "x", np.array([np.inf])):
        assert not tunnel_succeeded({"transmission": bad})


# ---------------------------------------------------------------- packed arrays


@given(
    st.sampled_from(sorted(ARRAY_DTYPES)),
    st.lists(st.integers(0, 5), min_size=0, max_size=3),
    st.randoms(use_true_random=False),
)
def test_packed_arrays_round_trip_through_msgpack(
    dtype: str, shape: list[int], rng: random.Random
) -> None:
    """Packing, msgpack, unpacking give the same array, dtype and shape (read-only, no copy)."""
    size = int(np.prod(shape, dtype=np.int64))
    array = np.array([rng.randint(0, 1) for _ in range(size)]).astype(dtype).reshape(shape)
    packed = pack_array(array)
    assert is_packed_array(packed)
    wire = msgpack.unpackb(msgpack.packb(packed, use_bin_type=True), raw=False)
    back = unpack_array(wire)
    assert back.dtype == np.dtype(dtype)
    assert back.shape == tuple(shape)
    assert np.array_equal(back, array)
    assert arrays_as_lists({"x": [packed]}) == {"x": [array.tolist()]}


def test_pack_array_takes_big_endian_and_refuses_objects() -> None:
    """A big-endian array packs little-endian; object or complex arrays are refused by dtype."""
    packed = pack_array(np.arange(3, dtype=">f8"))
    assert packed["dtype"] == "<f8"
    assert unpack_array(packed).tolist() == [0.0, 1.0, 2.0]
    for bad in (np.array([1 + 2j]), np.array(["a"], dtype=object)):
        with pytest.raises(KernelError, match="cannot pack an array of dtype"):
            pack_array(bad)


@pytest.mark.parametrize(
    ("packed", "match"),
    [
        ([1.0, 2.0], "mapping with keys"),
        ({"dtype": "<f8", "shape": [2]}, "mapping with keys"),
        ({"dtype": "<c16", "shape": [1], "data": b"\0" * 16}, "'dtype'.*'<c16'"),
        ({"dtype": "<f8", "shape": [-1], "data": b""}, "'shape'.*-1"),
        ({"dtype": "<f8", "shape": [1.5], "data": b""}, "'shape'.*1.5"),
        ({"dtype": "<f8", "shape": [2], "data": "xx"}, "'data' must be bytes, got str"),
        ({"dtype": "<f8", "shape": [2], "data": b"\0" * 15}, "15 bytes.*shape \\[2\\].*needs 16"),
    ],
)
def test_unpack_array_names_the_bad_part(packed: object, match: str) -> None:
    """A malformed packed array is refused with a KernelError naming the part."""
    with pytest.raises(KernelError, match=match):
        unpack_array(packed)


def test_arrays_summarised_for_tables() -> None:
    """summary=True shows dtype and shape instead of the values."""
    result = {"transmission": pack_array(np.zeros(400_000)), "peak": 1.0}
    assert arrays_as_lists(result, summary=True) == {
        "transmission": "<f8 array [400000]",
        "peak": 1.0,
    }


@given(
    st.floats(-1e6, 1e6, allow_subnormal=True),
    st.floats(-1e6, 1e6, allow_subnormal=True),
    st.integers(1, 5_000),
    st.data(),
)
def test_one_point_of_the_grid_is_bit_for_bit_numpys(
    start: float, stop: float, num: int, data: st.DataObject
) -> None:
    """The merge takes the peak's energy without making the grid: the same float."""
    index = data.draw(st.integers(0, num - 1))
    expected = np.linspace(start, stop, num)[index]
    assert linspace_at(start, stop, num, index) == expected
    assert math.copysign(1, linspace_at(start, stop, num, index)) == math.copysign(1, expected)


@given(st.lists(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=6), min_size=1))
def test_the_peak_of_the_parts_is_numpys_argmax_of_them_joined(parts: list[list[float]]) -> None:
    arrays = [np.array(p, dtype=np.float64) for p in parts]
    joined = np.concatenate(arrays)
    if not len(joined):
        with pytest.raises(KernelError):
            first_argmax(arrays)
        return
    index, value = first_argmax(arrays)
    assert index == int(np.argmax(joined))
    assert value == joined[index] or (math.isnan(value) and math.isnan(joined[index]))
