"""Turning text into terms: the tokenizer and light stemmer the lexical classifier shares.

Rules:
    1. Lowercase, then take the runs of ``[a-z0-9]`` (``re.findall``). Everything else, accents
       and non-Latin letters included, separates terms; so a capability name splits on ``.``,
       ``_`` and ``-`` like any other text.
    2. Drop single letters (the ``s`` of "what's") and a small list of stop words
       (:data:`STOP_WORDS`): function words and the polite filler of requests ("please",
       "could you", "I want"), which say nothing about *which* capability is meant. Digits
       are kept, even alone.
    3. Stem lightly, one suffix at most, and only where at least 3 characters remain:
       ``ies`` → ``y``; ``ing``, ``ed``; ``es`` after a sibilant (``s x z ch sh``); otherwise a
       final ``s`` unless it follows ``s``, ``u`` or ``i`` (``class``, ``lissajous``,
       ``analysis`` keep theirs). Then a final ``e`` goes, so ``generate``, ``generates``,
       ``generated`` and ``generating`` all become ``generat``.
    4. The stemmer aims at consistency, not linguistics: a word and its inflections should
       land on one term. Its misses (``running`` → ``runn``) are tolerated.
"""

from __future__ import annotations

import re

__all__ = ["STOP_WORDS", "stem", "tokenize"]

_TERM = re.compile(r"[a-z0-9]+")
_SIBILANT_ES = ("ses", "xes", "zes", "ches", "shes")
_KEEP_S = ("ss", "us", "is")
_MIN_STEM = 3

STOP_WORDS = frozenset(
    {
        "a", "about", "all", "an", "and", "any", "are", "as", "at", "be", "by", "can", "could",
        "do", "does", "for", "from", "have", "how", "i", "in", "into", "is", "it", "its", "just",
        "let", "me", "my", "need", "of", "on", "or", "our", "please", "should", "so", "some",
        "that", "the", "their", "them", "then", "there", "these", "this", "those", "to", "us",
        "want", "was", "we", "were", "what", "when", "which", "who", "will", "with", "would",
        "you", "your",
    }
)  # fmt: skip
"""Words dropped before matching (rule 2)."""


def _strip_suffix(word: str) -> str:
    if word.endswith("ies") and len(word) - 3 >= _MIN_STEM:
        return word[:-3] + "y"
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= _MIN_STEM:
            return word[: -len(suffix)]
    if word.endswith(_SIBILANT_ES) and len(word) - 2 >= _MIN_STEM:
        return word[:-2]
    if word.endswith("s") and not word.endswith(_KEEP_S) and len(word) - 1 >= _MIN_STEM:
        return word[:-1]
    return word


def stem(word: str) -> str:
    """Reduce a lowercase word to its term (rule 3)."""
    word = _strip_suffix(word)
    if word.endswith("e") and len(word) - 1 >= _MIN_STEM:
        word = word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Return the terms of ``text``, in order, repeats kept (rules 1-3)."""
    return [
        stem(word)
        for word in _TERM.findall(text.lower())
        if word not in STOP_WORDS and (len(word) > 1 or word.isdigit())
    ]
