"""Hypothesis strategies for the audit chain (``vsm.audit``) and the classifiers (``vsm.classify``).

Kept apart from ``tests/strategies.py`` only while that module is being written elsewhere;
they belong together.
"""

from __future__ import annotations

import itertools

from hypothesis import strategies as st

from vsm.audit import AuditChain

# ---------------------------------------------------------------- audit

msgpack_ints = st.integers(-(2**63), 2**64 - 1)
"""The ints msgpack can carry."""

plain_scalars = (
    st.none()
    | st.booleans()
    | msgpack_ints
    | st.floats(allow_nan=False)
    | st.text(max_size=6)
    | st.binary(max_size=6)
)

plain_data = st.recursive(
    plain_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=5,
)
"""msgpack-plain data, as an audit entry carries (str dict keys, no NaN)."""

times = st.floats(allow_nan=False, allow_infinity=False)
"""Any finite time (the chain does not require time to move forward)."""

KINDS = ["intent.accepted", "intent.completed", "intent.failed", "audit.sporadic", "unit.restarted"]
ACTORS = ["root#S1", "root#S3", "root/billing#S1", "root/billing#S3", "root/billing/eu#S2"]

kinds = st.sampled_from(KINDS)

actors = st.sampled_from(ACTORS)
"""Who records an entry: a viable system's path and System."""

chain_names = st.sampled_from(["root#S3", "root/billing#S3", "root/billing/eu#S3"])


@st.composite
def audit_chains(draw: st.DrawFn, min_size: int = 0, max_size: int = 6) -> AuditChain:
    """An audit chain of ``min_size`` to ``max_size`` entries.

    Each entry's kind, actor, data and time derive from one drawn int: chains are drawn by
    every tamper test, and one draw per entry keeps them cheap. Rich data and times are drawn
    entry by entry where they matter (``plain_data``, ``times``).
    """
    chain = AuditChain(draw(chain_names))
    for x in draw(st.lists(st.integers(0, 2**40), min_size=min_size, max_size=max_size)):
        data = {"intent": x, "unit": f"u{x % 7}"} if x % 3 else [x, None]
        chain.append(KINDS[x % 5], ACTORS[(x // 5) % 5], data, x / 1000)
    return chain


# ---------------------------------------------------------------- classify

WORDS = [
    "generate",
    "pattern",
    "spiral",
    "rose",
    "curve",
    "compute",
    "transmission",
    "crystal",
    "lattice",
    "potential",
    "barrier",
    "issue",
    "invoice",
    "customer",
    "forecast",
    "weather",
    "region",
    "route",
    "packet",
    "encrypt",
    "message",
    "sign",
    "verify",
    "store",
    "checkpoint",
    "render",
    "image",
    "resize",
    "thumbnail",
    "translate",
    "text",
    "summarise",
    "document",
]
"""A pool of content words, so random descriptions and queries overlap."""

NAME_PARTS = [
    "billing", "invoice", "patterns", "generate", "tunnel", "weather", "forecast", "mail",
    "send", "image", "resize", "text", "eu", "v2",
]  # fmt: skip

_NAMES = sorted(
    {".".join(parts) for n in (1, 2, 3) for parts in itertools.permutations(NAME_PARTS, n)}
)

capability_names = st.sampled_from(_NAMES)
"""Dotted capability names (``"billing.invoice"``); they share words with the descriptions."""

descriptions = st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join)

capability_sets = st.dictionaries(capability_names, descriptions, min_size=1, max_size=6)
"""Capability name → description, as a classifier is fitted on."""

queries = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join) | st.text(
    max_size=20
)
"""Intent texts: mostly words from the pool, sometimes anything at all."""
