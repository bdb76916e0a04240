"""Hypothesis strategies for the tests of :mod:`vsm.broadcast`, and a naive topic matcher.

Topics and patterns are drawn from a few short words so that they collide often. The naive
matcher turns one pattern into one regular expression, the obvious way, so that the trie can
be checked against it.

Times are dyadic (sums of powers of two), so the model's arithmetic and the broadcaster's
agree to the last bit whatever order they add in.
"""

from __future__ import annotations

import re

from hypothesis import strategies as st

from vsm.broadcast import Backoff, Overflow, SubscriptionOptions
from vsm.effects import Event

# ---------------------------------------------------------------- topics and patterns

WORDS = ("a", "b", "ab", "c")
"""Literal segments: few, so that topics and patterns meet."""

words = st.sampled_from(WORDS)
topics = st.lists(words, min_size=1, max_size=5).map(".".join)
"""Valid topics of one to five segments."""

segments = st.sampled_from((*WORDS, "*", "#"))
patterns = st.lists(segments, min_size=1, max_size=5).map(".".join)
"""Valid patterns of one to five segments, wildcards included."""

bad_patterns = st.sampled_from(
    ("", ".", "a.", ".a", "a..b", "a*", "*a", "a.#b", "##", "a.**", "x" * 256, "*." * 128)
)
"""Malformed patterns: empty, with an empty segment, a wildcard inside a segment, too long."""

bad_topics = st.one_of(bad_patterns, st.sampled_from(("*", "#", "a.*", "a.#.b", "unit.*")))
"""Malformed topics: the malformed patterns, and patterns that hold wildcards."""


def reference_regex(pattern: str) -> re.Pattern[str]:
    """The naive matcher: one regex for one pattern, over the topic with a dot before each word.

    With a dot before every word, ``*`` is one ``.word``, ``#`` is any number of them, and a
    literal is its own ``.word``; the regex must match the whole dotted topic.
    """
    parts = []
    for segment in pattern.split("."):
        if segment == "*":
            parts.append(r"\.[^.]+")
        elif segment == "#":
            parts.append(r"(?:\.[^.]+)*")
        else:
            parts.append(r"\." + re.escape(segment))
    return re.compile("".join(parts))


def reference_matches(pattern: str, topic: str) -> bool:
    """Whether ``topic`` matches ``pattern``, by :func:`reference_regex`."""
    return reference_regex(pattern).fullmatch("." + topic) is not None


# ---------------------------------------------------------------- the broadcaster's world

SUBSCRIBERS = ("s0", "s1", "s2")
"""Subscriber ids; one may unsubscribe and subscribe again."""

KINDS = ("unit.health", "unit.failed", "intent.accepted", "intent.completed", "audit")
"""Event kinds, as the Systems emit them."""

MACHINE_PATTERNS = ("#", "unit.*", "intent.#", "*.failed", "audit", "#.health", "unit.#")
"""Patterns the stateful test subscribes with: each matches some of :data:`KINDS`."""

PATHS = ("root", "root/a", "root/a/x", "root/b")
"""Event paths, a small tree."""

WITHINS = (None, None, "root", "root/a", "root/b")
"""Subtree filters; ``None`` (everywhere) twice as often."""

GAPS = (0.25, 0.5, 1.0, 2.0, 16.0)
"""Seconds the clock moves between steps."""

events = st.builds(
    Event,
    kind=st.sampled_from(KINDS),
    path=st.sampled_from(PATHS),
    at=st.sampled_from((0.0, 1.0)),
    data=st.just({}),
)
"""Events with kinds from :data:`KINDS` and paths from :data:`PATHS`."""

backoffs = st.builds(
    Backoff,
    base=st.sampled_from((0.25, 0.5, 1.0)),
    factor=st.sampled_from((1.0, 1.5, 2.0, 3.0)),
    cap=st.sampled_from((1.0, 2.0, 8.0)),
)
"""Backoffs with dyadic delays (``cap >= base`` always holds)."""

options = st.builds(
    SubscriptionOptions,
    buffer=st.integers(1, 4),
    overflow=st.sampled_from(Overflow),
    prefetch=st.integers(1, 3),
    max_attempts=st.integers(1, 3),
    backoff=backoffs,
    ack_timeout=st.sampled_from((0.5, 1.0, 2.0)),
)
"""Small buffers and few attempts, so that overflow, retries and dead letters all happen."""
