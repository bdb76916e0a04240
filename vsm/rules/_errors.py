"""The errors of the rule runtime that are its own (malformed JSON raises ``MalformedDataError``).

Rules:
    1. A syntax error carries the whole text and the offset of the fault, and its message shows
       the line of the text holding the fault with a caret under it, so a rule file's author sees
       at once what to fix.
    2. An event-field error names the field and shows the offending value with ``repr``.
"""

from __future__ import annotations

from vsm.errors import VsmError

__all__ = ["EventFieldError", "RuleSyntaxError"]

_SHOWN = 72
"""Most characters of a line shown around the caret."""


class RuleSyntaxError(VsmError, ValueError):
    """The text of a condition does not parse.

    Attributes:
        text: The whole text given to the parser.
        position: Offset of the fault in ``text`` (0-based; ``len(text)`` for "ended too soon").
        problem: What is wrong, in words, without the excerpt.
    """

    def __init__(self, text: str, position: int, problem: str) -> None:
        self.text = text
        self.position = position
        self.problem = problem
        super().__init__(f"{problem} at offset {position}\n{excerpt(text, position)}")


class EventFieldError(VsmError, ValueError):
    """An event's fields cannot be read the way a rule needs them.

    Raised by :func:`~vsm.rules.fields_of` for a data key that shadows ``kind``, ``path`` or
    ``at``, and by the evaluators when a rule with windows or sequences meets an event without
    a finite number in ``at``.

    Attributes:
        field: The field at fault.
        value: The offending value.
    """

    def __init__(self, field: str, value: object, problem: str) -> None:
        self.field = field
        self.value = value
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"field {field!r}: {problem} (got {shown})")


def excerpt(text: str, position: int) -> str:
    """The line of ``text`` that holds ``position``, cut to fit, with a caret under it."""
    start = text.rfind("\n", 0, position) + 1
    end = text.find("\n", position)
    line = text[start : len(text) if end < 0 else end]
    column = position - start
    left = max(0, min(column - _SHOWN // 2, len(line) - _SHOWN))
    shown = line[left : left + _SHOWN]
    prefix = "..." if left > 0 else ""
    suffix = "..." if left + _SHOWN < len(line) else ""
    lineno = text.count("\n", 0, position) + 1
    where = f"  (line {lineno}, column {column + 1})" if "\n" in text else ""
    caret = " " * (len(prefix) + column - left) + "^"
    return f"  {prefix}{shown}{suffix}{where}\n  {caret}"
