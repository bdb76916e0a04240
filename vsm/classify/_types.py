"""What every classifier answers, and the seam S1 plugs classifiers into."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Classification", "Classifier", "check_capabilities"]


@dataclass(frozen=True, slots=True)
class Classification:
    """Which capability an intent's text asks for, and how sure the classifier is.

    Attributes:
        capability: The chosen capability's name.
        confidence: How sure the classifier is, from 0 to 1 (1: an exact name).
        scores: The best few candidates as ``(capability, score)`` pairs, by score descending
            (ties by name); what a score means depends on the classifier.

    Raises:
        ValueError: ``confidence`` is outside [0, 1] or ``scores`` is not sorted descending.
    """

    capability: str
    confidence: float
    scores: tuple[tuple[str, float], ...]

    def __post_init__(self) -> None:
        if not isinstance(self.capability, str) or not self.capability:
            raise ValueError(
                f"Classification.capability must be a non-empty str, got {self.capability!r}"
            )
        confidence = self.confidence
        if (
            isinstance(confidence, bool)
            or not isinstance(confidence, int | float)
            or not 0.0 <= confidence <= 1.0
        ):
            raise ValueError(f"Classification.confidence must be in [0, 1], got {confidence!r}")
        values = [score for _, score in self.scores]
        if any(not math.isfinite(v) for v in values) or values != sorted(values, reverse=True):
            raise ValueError(
                f"Classification.scores must be finite and sorted descending, got {self.scores!r}"
            )


@runtime_checkable
class Classifier(Protocol):
    """Maps an intent's free text to one of the capabilities it was fitted on.

    ``fit`` replaces whatever was fitted before; ``classify`` answers ``None`` when no
    capability fits well enough, so S1 can ask S4 instead of guessing.
    """

    def fit(self, capabilities: Mapping[str, str]) -> None:
        """Learn the capabilities, a mapping of name to description."""
        ...

    def classify(self, text: str) -> Classification | None:
        """Return the capability ``text`` asks for, or ``None``."""
        ...


def check_capabilities(capabilities: object) -> dict[str, str]:
    """Validate a ``fit`` argument and return it as a plain dict.

    Raises:
        TypeError: ``capabilities`` is not a mapping of str to str.
        ValueError: a name is empty or has surrounding whitespace (no stripped text could
            ever match it).
    """
    if not isinstance(capabilities, Mapping):
        raise TypeError(
            f"capabilities must be a mapping of name to description, got "
            f"{type(capabilities).__name__}: {capabilities!r}"
        )
    checked: dict[str, str] = {}
    for name, description in capabilities.items():
        if not isinstance(name, str):
            raise TypeError(f"a capability name must be a str, got {name!r}")
        if not name or name != name.strip():
            raise ValueError(
                f"a capability name must be non-empty without surrounding spaces, got {name!r}"
            )
        if not isinstance(description, str):
            raise TypeError(f"the description of {name!r} must be a str, got {description!r}")
        checked[name] = description
    return checked
