"""A rule: a named condition and the response it asks for when it matches.

Rules:
    1. A rule's name is a non-empty str, unique within a :class:`~vsm.rules.RuleSet`.
    2. ``enabled`` is the set's business: a disabled rule in a set is offered no events, holds no
       state and counts nothing; :func:`~vsm.rules.compile_rule` compiles the condition whatever
       ``enabled`` says.
    3. The JSON form is ``{"name", "condition", "response", "enabled"}``. ``from_data`` also
       reads ``condition`` in its text form (a str, parsed), the friendliest form in a file;
       ``to_data`` always writes the dict form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vsm.errors import MalformedDataError
from vsm.rules._ast import CONDITION_TYPES, Condition, condition_from_data
from vsm.rules._errors import RuleSyntaxError
from vsm.rules._format import format_condition
from vsm.rules._parse import parse_condition
from vsm.rules._responses import RESPONSE_TYPES, Response, response_from_data

__all__ = ["Rule"]

_KEYS = ("name", "condition", "response", "enabled")


@dataclass(frozen=True, slots=True)
class Rule:
    """A named condition over events, and what to do when an event matches it.

    Attributes:
        name: Unique within a rule set.
        condition: When the rule matches.
        response: What it asks for then.
        enabled: Whether a rule set offers it events.

    Raises:
        ValueError: A field is of the wrong type; the message shows the bad value.
    """

    name: str
    condition: Condition
    response: Response
    enabled: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Rule.name must be a non-empty str, got {self.name!r}")
        if not isinstance(self.condition, CONDITION_TYPES):
            raise ValueError(f"Rule.condition must be a condition, got {self.condition!r}")
        if not isinstance(self.response, RESPONSE_TYPES):
            raise ValueError(f"Rule.response must be a response, got {self.response!r}")
        if not isinstance(self.enabled, bool):
            raise ValueError(f"Rule.enabled must be a bool, got {self.enabled!r}")

    @property
    def text(self) -> str:
        """The condition in its text form."""
        return format_condition(self.condition)

    def to_data(self) -> dict[str, Any]:
        """The JSON form: ``{"name", "condition", "response", "enabled"}``."""
        return {
            "name": self.name,
            "condition": self.condition.to_data(),
            "response": self.response.to_data(),
            "enabled": self.enabled,
        }

    @classmethod
    def from_data(cls, data: object) -> Rule:
        """Rebuild a rule from its JSON form (``condition`` as a dict or as text).

        Raises:
            MalformedDataError: ``data`` is not a rule; the error names the path in the JSON
                (a condition that does not parse gives the offset and problem).
        """
        if not isinstance(data, dict):
            raise MalformedDataError("Rule", "", f"expected a dict with {_KEYS}", data)
        for key in data:
            if key not in _KEYS:
                raise MalformedDataError("Rule", str(key), "unknown key", data)
        for key in _KEYS[:3]:
            if key not in data:
                raise MalformedDataError("Rule", key, "missing key", data)
        raw = data["condition"]
        if isinstance(raw, str):
            try:
                condition = parse_condition(raw)
            except RuleSyntaxError as exc:
                problem = f"{exc.problem} at offset {exc.position}"
                raise MalformedDataError("Rule", "condition", problem, raw) from exc
        else:
            condition = condition_from_data(raw, "condition")
        response = response_from_data(data["response"], "response")
        try:
            return cls(data["name"], condition, response, data.get("enabled", True))
        except ValueError as exc:
            raise MalformedDataError("Rule", "", str(exc), data) from exc
