"""Classifiers in a row: the first that answers wins."""

from __future__ import annotations

from collections.abc import Mapping

from vsm.classify._types import Classification, Classifier

__all__ = ["ChainClassifier"]


class ChainClassifier:
    """Asks its classifiers in order and returns the first answer that is not ``None``.

    S1's usual chain is ``ChainClassifier(ExactClassifier(), BM25Classifier())``: an intent that
    names a capability exactly never reaches the lexical ranker.

    Args:
        *classifiers: The classifiers, in the order they are asked (at least one).

    Raises:
        ValueError: no classifier was given.
        TypeError: an argument does not have ``fit`` and ``classify``.
    """

    __slots__ = ("_classifiers",)

    def __init__(self, *classifiers: Classifier) -> None:
        if not classifiers:
            raise ValueError("ChainClassifier needs at least one classifier, got none")
        for classifier in classifiers:
            if not isinstance(classifier, Classifier):
                raise TypeError(
                    f"ChainClassifier takes classifiers (fit and classify), got {classifier!r}"
                )
        self._classifiers = classifiers

    @property
    def classifiers(self) -> tuple[Classifier, ...]:
        """The classifiers, in the order they are asked."""
        return self._classifiers

    def fit(self, capabilities: Mapping[str, str]) -> None:
        """Fit every classifier in the chain on ``capabilities``.

        Raises:
            TypeError: ``capabilities`` is not a mapping of str to str.
            ValueError: a name is empty or has surrounding whitespace.
        """
        for classifier in self._classifiers:
            classifier.fit(capabilities)

    def classify(self, text: str) -> Classification | None:
        """Return the first answer that is not ``None``, or ``None`` if none answers.

        Raises:
            TypeError: ``text`` is not a str.
        """
        for classifier in self._classifiers:
            answer = classifier.classify(text)
            if answer is not None:
                return answer
        return None

    def __repr__(self) -> str:
        return f"ChainClassifier({', '.join(map(repr, self._classifiers))})"
