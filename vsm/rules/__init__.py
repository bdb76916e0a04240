"""The GoldRush event runtime: compiled rules over event streams (after Erlang's goldrush).

A viable system notices situations in its own events (``temp > 90 and cpu > 0.8``, ``count(kind
== "intent.rejected") by user within 30s > 10``) and responds at once: a :class:`Rule` pairs a
condition with a response (algedonic signal, throttle, audit, policy patch, new event). Rules
are compiled once (:func:`compile_rule`) and evaluated one event at a time or over columnar
batches with numpy, with the same answers; a :class:`RuleSet` holds them by name, versioned.
Pure: time comes in with each event (``at``). ``docs/rules.md`` has the grammar and semantics.

Modules, one concept each: ``_ast`` (conditions and their JSON form), ``_parse`` and
``_format`` (the text form), ``_responses``, ``_rule``, ``_fields`` (what rules see of an
event), ``_batch`` (columns), ``_stateless`` (comparisons and logic, one event and a batch),
``_keys``, ``_window`` and ``_sequence`` (the stateful parts), ``_compile``, ``_ruleset``.

Errors::

    VsmError
    ├── RuleSyntaxError     (ValueError)  a condition's text does not parse: .position, caret
    ├── EventFieldError     (ValueError)  an event's fields cannot be read as a rule needs
    └── MalformedDataError  (ValueError)  a JSON form is invalid; .path names where (vsm.errors)

Bad arguments to constructors raise ``ValueError`` showing the bad value; unknown rule names
raise ``KeyError``.
"""

from vsm.rules._ast import (
    AllWithin,
    And,
    Compare,
    Condition,
    Exists,
    In,
    Missing,
    Not,
    Or,
    Scalar,
    Then,
    Window,
    condition_from_data,
)
from vsm.rules._batch import Batch, Column, columns_of
from vsm.rules._compile import CompiledRule, compile_rule
from vsm.rules._errors import EventFieldError, RuleSyntaxError
from vsm.rules._fields import fields_of
from vsm.rules._format import format_condition
from vsm.rules._parse import parse_condition
from vsm.rules._responses import (
    Algedonic,
    Audit,
    EmitEvent,
    ProposePatch,
    Response,
    Throttle,
    response_from_data,
)
from vsm.rules._rule import Rule
from vsm.rules._ruleset import Match, RuleSet

__all__ = [
    "Algedonic",
    "AllWithin",
    "And",
    "Audit",
    "Batch",
    "Column",
    "Compare",
    "CompiledRule",
    "Condition",
    "EmitEvent",
    "EventFieldError",
    "Exists",
    "In",
    "Match",
    "Missing",
    "Not",
    "Or",
    "ProposePatch",
    "Response",
    "Rule",
    "RuleSet",
    "RuleSyntaxError",
    "Scalar",
    "Then",
    "Throttle",
    "Window",
    "columns_of",
    "compile_rule",
    "condition_from_data",
    "fields_of",
    "format_condition",
    "parse_condition",
    "response_from_data",
]
