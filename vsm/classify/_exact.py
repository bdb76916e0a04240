"""The exact classifier: an intent that names a capability gets that capability."""

from __future__ import annotations

from collections.abc import Mapping

from vsm.classify._types import Classification, check_capabilities

__all__ = ["ExactClassifier"]


class ExactClassifier:
    """Answers when the text, stripped of surrounding whitespace, is a capability's exact name.

    Matching is case-sensitive (capability names are identifiers, ``"billing.invoice"``); the
    answer has confidence 1.0. Anything else gets ``None``.
    """

    __slots__ = ("_names",)

    def __init__(self) -> None:
        self._names: frozenset[str] = frozenset()

    def fit(self, capabilities: Mapping[str, str]) -> None:
        """Replace the known names with the keys of ``capabilities`` (descriptions unused).

        Raises:
            TypeError: ``capabilities`` is not a mapping of str to str.
            ValueError: a name is empty or has surrounding whitespace.
        """
        self._names = frozenset(check_capabilities(capabilities))

    def classify(self, text: str) -> Classification | None:
        """Return the capability ``text`` names exactly, or ``None``.

        Raises:
            TypeError: ``text`` is not a str.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}: {text!r}")
        name = text.strip()
        if name not in self._names:
            return None
        return Classification(name, 1.0, ((name, 1.0),))

    def __repr__(self) -> str:
        return f"ExactClassifier(capabilities={len(self._names)})"
