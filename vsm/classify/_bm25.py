"""The lexical classifier: Okapi BM25 over capability names and descriptions, in numpy.

Rules:
    1. Each capability is one document: the terms of its name (split on ``.``, ``_``, ``-``)
       followed by the terms of its description, through :func:`~vsm.classify.tokenize`.
    2. ``fit`` builds the whole index at once: a sorted vocabulary, and a
       terms-by-capabilities matrix of BM25 term weights
       ``idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))`` with the non-negative
       ``idf = ln(1 + (N - df + 0.5) / (df + 0.5))``. Capabilities are indexed in name order,
       so the index (and every score, bit for bit) does not depend on the order they were
       given in. Refitting replaces the index. Memory is one float64 per (term, capability)
       pair: meant for up to a few thousand capabilities.
    3. A query's score for each capability is one vectorised expression: the sum of the
       weight rows of the query's distinct known terms.
    4. Confidence = share * sqrt(coverage). *share* = ``top / (top + second + eps)`` says how
       clearly the winner beats the runner-up (near 1 when alone, 0.5 for a tie). *coverage*,
       the absolute floor, is the fraction of the query's distinct terms found in the winner;
       the square root keeps one unknown word in a short request from sinking it.
    5. ``None`` when the query has no terms, when no term matches any capability (whatever the
       threshold), or when the confidence is below the threshold.
    6. Ties rank by capability name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from vsm.classify._text import tokenize
from vsm.classify._types import Classification, check_capabilities

__all__ = ["BM25Classifier"]

_EPS = 1e-12

FloatArray = npt.NDArray[np.float64]


def _check_number(name: str, value: object, low: float, high: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        shown = f"[{low}, {high}]" if math.isfinite(high) else f">= {low} and finite"
        raise ValueError(f"{name} must be a number {shown}, got {value!r}")
    return float(value)


class BM25Classifier:
    """Ranks capabilities against an intent's text with BM25 and answers the best, if clear.

    Args:
        k1: Term-frequency saturation (>= 0; 0 counts a term once however often it occurs).
        b: Length normalisation, from 0 (none) to 1 (full).
        threshold: The lowest confidence answered (in [0, 1]); below it, ``None``.
        top: How many candidates a :class:`Classification` lists in ``scores`` (>= 1).

    Raises:
        ValueError: an argument is out of range.
    """

    __slots__ = ("_index", "_names", "_weights", "b", "k1", "threshold", "top")

    def __init__(
        self, k1: float = 1.5, b: float = 0.75, threshold: float = 0.35, *, top: int = 5
    ) -> None:
        self.k1 = _check_number("k1", k1, 0.0, math.inf)
        self.b = _check_number("b", b, 0.0, 1.0)
        self.threshold = _check_number("threshold", threshold, 0.0, 1.0)
        if type(top) is not int or top < 1:
            raise ValueError(f"top must be an int >= 1, got {top!r}")
        self.top = top
        self._names: tuple[str, ...] = ()
        self._index: dict[str, int] = {}
        self._weights: FloatArray = np.zeros((0, 0), dtype=np.float64)

    @property
    def capabilities(self) -> tuple[str, ...]:
        """The fitted capability names, sorted."""
        return self._names

    @property
    def vocabulary(self) -> tuple[str, ...]:
        """The fitted terms, sorted."""
        return tuple(self._index)

    def fit(self, capabilities: Mapping[str, str]) -> None:
        """Replace the index with one over ``capabilities`` (name → description).

        Raises:
            TypeError: ``capabilities`` is not a mapping of str to str.
            ValueError: a name is empty or has surrounding whitespace.
        """
        checked = check_capabilities(capabilities)
        names = tuple(sorted(checked))
        documents = [tokenize(name) + tokenize(checked[name]) for name in names]
        vocabulary = sorted({term for document in documents for term in document})
        index = {term: i for i, term in enumerate(vocabulary)}
        tf = np.zeros((len(vocabulary), len(names)), dtype=np.float64)
        rows = [index[term] for document in documents for term in document]
        cols = [d for d, document in enumerate(documents) for _ in document]
        np.add.at(tf, (rows, cols), 1.0)
        self._names, self._index, self._weights = names, index, self._bm25(tf)

    def _bm25(self, tf: FloatArray) -> FloatArray:
        """BM25 weights for a terms-by-documents count matrix (rule 2)."""
        n_docs = tf.shape[1]
        lengths = tf.sum(axis=0)
        average = float(lengths.mean()) if n_docs else 0.0
        norm = 1.0 - self.b + self.b * lengths / (average if average > 0 else 1.0)
        df = np.count_nonzero(tf, axis=1).astype(np.float64)
        idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
        saturated = np.divide(
            tf * (self.k1 + 1.0),
            tf + self.k1 * norm,
            out=np.zeros_like(tf),
            where=tf > 0,
        )
        weights: FloatArray = idf[:, None] * saturated
        return weights

    def classify(self, text: str) -> Classification | None:
        """Return the capability ``text`` most likely asks for, or ``None`` (rules 3-6).

        Raises:
            TypeError: ``text`` is not a str.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}: {text!r}")
        terms = set(tokenize(text))
        known = sorted(self._index[term] for term in terms if term in self._index)
        if not known:
            return None
        rows = self._weights[known]
        scores = rows.sum(axis=0)
        order = np.argsort(-scores, kind="stable")
        best = int(order[0])
        first = float(scores[best])
        if first <= 0.0:
            return None
        second = float(scores[order[1]]) if len(order) > 1 else 0.0
        share = first / (first + second + _EPS)
        coverage = np.count_nonzero(rows[:, best]) / len(terms)
        confidence = min(1.0, share * math.sqrt(coverage))
        if confidence < self.threshold:
            return None
        ranked = tuple(
            (self._names[i], float(scores[i])) for i in order[: self.top] if scores[i] > 0.0
        )
        return Classification(self._names[best], confidence, ranked)

    def __repr__(self) -> str:
        return (
            f"BM25Classifier(k1={self.k1}, b={self.b}, threshold={self.threshold}, "
            f"capabilities={len(self._names)}, terms={len(self._index)})"
        )
