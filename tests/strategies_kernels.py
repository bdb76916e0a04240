"""Hypothesis strategies for the tests of :mod:`vsm.kernels`, one section per kernel.

Each kernel's strategies sit in a section that opens with a ``# ---- name`` line; imports
stay together at the top of the file.
"""

from __future__ import annotations

import datetime
from typing import Any

from hypothesis import strategies as st

from vsm.kernels._patterns import PatternConfig, PatternType

# ---- patterns
# Complexity stays at or below 5 (at most 2 048 vertices) so the property tests stay fast.

PATTERN_TYPES = st.sampled_from(PatternType)
"""Every pattern type."""


def complexities(max_complexity: float = 5.0) -> st.SearchStrategy[float]:
    """Complexities in (0, max]: whole numbers (harmonic steps), their neighbours, the rest."""
    edges = [c for c in (1e-9, 0.5, 1.0, 2.0, 2.999, 4.999) if c <= max_complexity]
    return st.one_of(st.sampled_from(edges), st.floats(0.0, max_complexity, exclude_min=True))


SEEDS = st.one_of(st.integers(0, 3), st.integers(0, 2**64 - 1))
"""Seeds: small ones (the common case) and the whole unsigned 64-bit range."""

VERTEX_OVERRIDES = st.one_of(st.none(), st.integers(3, 12), st.integers(3, 1500))
"""``PatternConfig.vertices``: unset, tiny (the edge), or moderate."""


@st.composite
def pattern_configs(draw: st.DrawFn, max_complexity: float = 5.0) -> PatternConfig:
    """Valid configs of every type, complexity at most ``max_complexity``."""
    return PatternConfig(
        type=draw(PATTERN_TYPES),
        complexity=draw(complexities(max_complexity)),
        seed=draw(SEEDS),
        vertices=draw(VERTEX_OVERRIDES),
    )


def batch_params(max_size: int = 8) -> st.SearchStrategy[dict[str, Any]]:
    """Kernel params for a batch of light configs (complexity <= 3), msgpack-plain."""
    configs = st.lists(pattern_configs(max_complexity=3.0), max_size=max_size)
    return st.builds(
        lambda cs, include: {"patterns": [c.to_params() for c in cs], "include_vertices": include},
        configs,
        st.booleans(),
    )


TIMESTAMPS = st.datetimes(datetime.datetime(1000, 1, 1), datetime.datetime(9999, 12, 31)).map(
    lambda t: f"{t.year:04d}-{t.month:02d}-{t.day:02d} {t.hour:02d}:{t.minute:02d}:{t.second:02d}"
)
"""``YYYY-MM-DD HH:MM:SS`` timestamps of real instants."""

COLOURS = st.tuples(st.integers(0, 0xFFFFFF), st.booleans()).map(
    lambda c: f"#{c[0]:06X}" if c[1] else f"#{c[0]:06x}"
)
"""``#RRGGBB`` in upper or lower case."""

VERSIONS = st.tuples(st.integers(0, 99), st.integers(0, 99), st.integers(0, 999)).map(
    lambda v: ".".join(map(str, v))
)
"""``major.minor.patch`` versions."""


@st.composite
def artefact_fields(draw: st.DrawFn) -> dict[str, str]:
    """Keyword arguments for ``write_artefact`` besides the body: any valid metadata."""
    return {
        "timestamp": draw(TIMESTAMPS),
        "author": draw(st.text(min_size=1, max_size=30)),
        "path": draw(st.text(min_size=1, max_size=60)),
        "type": draw(st.text(min_size=1, max_size=8)),
        "color": draw(COLOURS),
        "pattern_version": draw(VERSIONS),
    }


# ---- tunnelling
# Lattices stay physically sensible and well conditioned: heights 0.05-5 eV, widths 0.05-2 nm,
# masses 0.1-2 electron masses, so a barrier's opacity a·sqrt(m V0)/ħ stays under ~33 (the
# lattice accepts up to 50). Strategies draw plain params (``CrystalLattice(**params)``,
# ``ResourceMetrics(**metrics)``) so this section needs no imports of its own.


@st.composite
def lattice_params(
    draw: st.DrawFn, max_cells: int = 60, max_opacity: float = 50.0
) -> dict[str, Any]:
    """``CrystalLattice`` keyword arguments, msgpack-plain, opacity at most ``max_opacity``."""
    hbar2_over_2me = 0.0380998212  # eV·nm², as vsm.kernels._lattice.HBAR2_OVER_2ME
    height = draw(st.floats(0.05, 5.0))
    mass = draw(st.one_of(st.just(1.0), st.floats(0.1, 2.0)))
    widest = min(2.0, max_opacity / (mass * height / hbar2_over_2me) ** 0.5)
    return {
        "cells": draw(st.one_of(st.just(1), st.integers(1, max_cells))),
        "barrier_height": height,
        "barrier_width": draw(st.floats(min(0.05, widest / 2), widest)),
        "well_width": draw(st.one_of(st.just(0.0), st.floats(0.0, 2.0))),
        "mass": mass,
    }


def energies_near(height: float, max_size: int = 40) -> st.SearchStrategy[list[float]]:
    """Energies in eV for a barrier of ``height``: anywhere in 1 meV-10 eV, and at its top.

    The top is drawn exactly, one ulp either side, and a relative 1e-9 either side, where the
    evanescent and propagating formulas meet.
    """
    import math  # local: this file keeps its shared imports at the top, in another section

    top = [
        height,
        math.nextafter(height, 0.0),
        math.nextafter(height, math.inf),
        height * (1 - 1e-9),
        height * (1 + 1e-9),
    ]
    energy = st.one_of(st.sampled_from(top), st.floats(1e-3, 10.0))
    return st.lists(energy, min_size=1, max_size=max_size)


@st.composite
def lattice_with_energies(
    draw: st.DrawFn, max_cells: int = 60, max_size: int = 40
) -> tuple[dict[str, Any], list[float]]:
    """A lattice's params and energies probing it, including its barrier top."""
    params = draw(lattice_params(max_cells))
    return params, draw(energies_near(params["barrier_height"], max_size))


COHERENCES = st.one_of(st.sampled_from([0.0, 0.5, 0.87, 1.0]), st.floats(0.0, 1.0))
"""Bridge coherences in [0, 1], edges included."""

LOADS = st.one_of(st.sampled_from([0.0, 0.5, 0.8, 1.0]), st.floats(0.0, 1.0))
"""CPU loads in [0, 1]; 0.8 is the plan's test load."""


@st.composite
def resource_metrics(draw: st.DrawFn) -> dict[str, Any]:
    """``ResourceMetrics`` keyword arguments: fractional and whole CPUs, any memory state."""
    cpus_total = draw(st.one_of(st.integers(1, 128).map(float), st.floats(0.25, 256.0)))
    cpus_free = cpus_total * draw(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0)))
    memory_total = draw(st.integers(1, 2**40))
    memory_free = draw(st.one_of(st.just(memory_total), st.integers(0, memory_total)))
    return {
        "cpus_total": cpus_total,
        "cpus_free": cpus_free,
        "memory_total": memory_total,
        "memory_free": memory_free,
    }


@st.composite
def tunnel_configs(draw: st.DrawFn) -> dict[str, Any]:
    """``TunnelConfig`` keyword arguments: the plan's defaults and others in range.

    ``phi_coefficient`` stays in [0.1, 0.9]: the coherence margin of the controller shrinks to
    nothing as it nears 0 (see docs/kernels.md), and the property tests compare exactly.
    """
    return {
        "base_frequency": draw(st.one_of(st.just(432.0), st.floats(1.0, 1e6))),
        "min_coherence": draw(st.one_of(st.just(0.87), st.floats(0.0, 1.0))),
        "phi_coefficient": draw(st.one_of(st.just(0.618033988749895), st.floats(0.1, 0.9))),
        "min_memory_threshold": draw(st.one_of(st.just(0.2), st.floats(0.0, 0.99))),
        "optimal_core_count": draw(st.one_of(st.just(8), st.integers(1, 256))),
    }
