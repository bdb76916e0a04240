r"""The text form of conditions: a lexer and a recursive-descent parser.

Grammar (EBNF; ``docs/rules.md`` has it with examples)::

    condition   = disjunction , [ "then" , disjunction ] , [ "by" , field ] , "within" , duration
                | disjunction ;
    disjunction = conjunction , { "or" , conjunction } ;
    conjunction = negation , { "and" , negation } ;
    negation    = "not" , negation | primary ;
    primary     = "(" , condition , ")"
                | ( "exists" | "missing" ) , "(" , field , ")"
                | window
                | field , operator , literal
                | field , [ "not" ] , "in" , "[" , [ literal , { "," , literal } ] , "]" ;
    window      = aggregate , [ "by" , field ] , "within" , duration , operator , number ;
    aggregate   = "count" , "(" , [ condition ] , ")"
                | ( "sum" | "avg" | "min" | "max" ) , "(" , field , [ "where" , condition ] , ")" ;
    literal     = number | string | "true" | "false" | "null" ;
    field       = identifier | "`" , { character } , "`" ;
    duration    = number , ( "ms" | "s" | "m" | "h" ) ;   (no space between)

Rules:
    1. ``and``, ``or``, ``not``, ``in``, ``by``, ``within``, ``then``, ``where``, ``true``,
       ``false`` and ``null`` are reserved; ``count``, ``sum``, ``avg``, ``min``, ``max``,
       ``exists`` and ``missing`` are functions only when ``(`` follows, and field names
       otherwise. An identifier is ``[A-Za-z_][A-Za-z0-9_]*`` with ``.`` between parts; any
       other field name is written in backquotes, with ``\\`` escaping ``\\`` and `````.
    2. Strings are JSON strings in double quotes (the same escapes). Numbers are decimal, with
       an optional sign, fraction and exponent.
    3. A trailing ``within`` without ``then`` applies to the conjunction before it: ``a and b
       within 30s`` is :class:`AllWithin` of ``(a, b)``; a bare ``or`` there is an error (put it
       in parentheses). ``then`` needs a ``within``.
    4. Every error raises :class:`RuleSyntaxError` at the offset of the first token that cannot
       start or continue what came before (the end of the text when it stops too soon).
    5. Conditions nest at most :data:`MAX_DEPTH` deep (parentheses, ``not``, windows).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

from vsm.rules._ast import (
    AGGREGATES,
    OPERATORS,
    ORDERING,
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
)
from vsm.rules._errors import RuleSyntaxError

__all__ = ["IDENTIFIER", "MAX_DEPTH", "RESERVED", "parse_condition"]

MAX_DEPTH = 64
"""The deepest nesting the parser (and the compiler) takes."""

RESERVED = frozenset(
    {"and", "or", "not", "in", "by", "within", "then", "where", "true", "false", "null"}
)
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<number>-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(?P<unit>ms|s|m|h)?(?![A-Za-z0-9_])
    | (?P<string>"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*")
    | (?P<quoted>`(?:[^`\\]|\\[`\\])*`)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)(?![A-Za-z0-9_.])
    | (?P<op>>=|<=|==|!=|>|<)
    | (?P<punct>[()\[\],])
    """,
    re.VERBOSE,
)

Kind = Literal["number", "duration", "string", "field", "word", "op", "punct", "end"]


@dataclass(frozen=True, slots=True)
class _Token:
    kind: Kind
    text: str
    at: int
    value: object = None


def _lex(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    at = 0
    while at < len(text):
        m = _TOKEN.match(text, at)
        if m is None:
            quote = {'"': "string", "`": "field name"}.get(text[at])
            if quote is not None:
                raise RuleSyntaxError(text, at, f"unterminated or malformed {quote}")
            raise RuleSyntaxError(text, at, f"unexpected character {text[at]!r}")
        group, raw = m.lastgroup, m.group()
        if m.group("number") is not None:
            number = float(m.group("number"))
            unit = m.group("unit")
            if unit is None:
                tokens.append(_Token("number", raw, at, number))
            else:
                tokens.append(_Token("duration", raw, at, number * _UNITS[unit]))
        elif group == "string":
            tokens.append(_Token("string", raw, at, json.loads(raw)))
        elif group == "quoted":
            name = re.sub(r"\\(.)", r"\1", raw[1:-1])
            tokens.append(_Token("field", raw, at, name))
        elif group == "name":
            tokens.append(_Token("word" if raw in RESERVED else "field", raw, at, raw))
        elif group in ("op", "punct"):
            tokens.append(_Token(group, raw, at, raw))  # type: ignore[arg-type]  # literal kind
        at = m.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


def parse_condition(text: str) -> Condition:
    """Parse the text form of a condition.

    Raises:
        RuleSyntaxError: ``text`` does not parse; ``position`` is the offset of the fault and
            the message shows the text with a caret under it.
    """
    if not isinstance(text, str):
        raise TypeError(f"a condition's text must be a str, got {text!r}")
    parser = _Parser(text, _lex(text))
    condition = parser.condition()
    parser.expect_end()
    return condition


class _Parser:
    __slots__ = ("depth", "i", "text", "tokens")

    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    def deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise RuleSyntaxError(
                self.text, self.peek.at, f"condition nested too deep (at most {MAX_DEPTH})"
            )

    # ---------------------------------------------------------------- token helpers

    @property
    def peek(self) -> _Token:
        return self.tokens[self.i]

    def next(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def is_word(self, word: str) -> bool:
        token = self.peek
        return token.kind == "word" and token.text == word

    def take_word(self, word: str) -> bool:
        if self.is_word(word):
            self.i += 1
            return True
        return False

    def fail(self, token: _Token, expected: str) -> RuleSyntaxError:
        got = "the end of the text" if token.kind == "end" else repr(token.text)
        return RuleSyntaxError(self.text, token.at, f"expected {expected}, got {got}")

    def expect_word(self, word: str) -> None:
        if not self.take_word(word):
            raise self.fail(self.peek, repr(word))

    def expect_punct(self, punct: str) -> None:
        token = self.next()
        if token.kind != "punct" or token.text != punct:
            raise self.fail(token, repr(punct))

    def expect_end(self) -> None:
        token = self.peek
        if token.kind != "end":
            raise self.fail(token, "'and', 'or' or the end of the condition")

    def field(self) -> str:
        token = self.next()
        if token.kind != "field":
            raise self.fail(token, "a field name")
        return str(token.value)

    def duration(self) -> float:
        token = self.next()
        if token.kind == "number":
            raise RuleSyntaxError(
                self.text, token.at, f"a duration needs a unit (s, ms, m or h): {token.text!r}"
            )
        if token.kind != "duration":
            raise self.fail(token, "a duration such as 30s")
        seconds = float(token.value)  # type: ignore[arg-type]  # the lexer made a float
        if not 0 < seconds < float("inf"):
            raise RuleSyntaxError(self.text, token.at, f"a duration must be > 0: {token.text!r}")
        return seconds

    def operator(self) -> str:
        token = self.next()
        if token.kind != "op":
            raise self.fail(token, f"an operator ({' '.join(OPERATORS)})")
        return token.text

    def number(self) -> float:
        token = self.next()
        if token.kind != "number":
            raise self.fail(token, "a number")
        value = float(token.value)  # type: ignore[arg-type]  # the lexer made a float
        if value in (float("inf"), float("-inf")):
            raise RuleSyntaxError(self.text, token.at, f"number out of range: {token.text}")
        return value

    def literal(self) -> tuple[Scalar, _Token]:
        token = self.peek
        if token.kind == "number":
            return self.number(), token
        self.i += 1
        if token.kind == "string":
            return str(token.value), token
        if token.kind == "word" and token.text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[token.text], token
        raise self.fail(token, "a literal (number, string, true, false or null)")

    # ---------------------------------------------------------------- grammar

    def condition(self) -> Condition:
        self.deeper()
        terms = self.conjunction()
        operands = [_join(terms)]
        while self.take_word("or"):
            operands.append(_join(self.conjunction()))
        first = operands[0] if len(operands) == 1 else Or(tuple(operands))
        if self.take_word("then"):
            second = self.disjunction()
            by = self.field() if self.take_word("by") else None
            if not self.is_word("within"):
                raise self.fail(self.peek, "'within' after 'then'")
            self.i += 1
            self.depth -= 1
            return Then(first, second, by, self.duration())
        if self.is_word("by") or self.is_word("within"):
            if len(operands) > 1:
                raise RuleSyntaxError(
                    self.text,
                    self.peek.at,
                    "a trailing 'within' joins conditions with 'and'; put an 'or' in parentheses",
                )
            by = self.field() if self.take_word("by") else None
            self.expect_word("within")
            self.depth -= 1
            return AllWithin(tuple(terms), by, self.duration())
        self.depth -= 1
        return first

    def disjunction(self) -> Condition:
        operands = [_join(self.conjunction())]
        while self.take_word("or"):
            operands.append(_join(self.conjunction()))
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def conjunction(self) -> list[Condition]:
        operands = [self.negation()]
        while self.take_word("and"):
            operands.append(self.negation())
        return operands

    def negation(self) -> Condition:
        if self.take_word("not"):
            self.deeper()
            operand = self.negation()
            self.depth -= 1
            return Not(operand)
        return self.primary()

    def primary(self) -> Condition:
        token = self.peek
        if token.kind == "punct" and token.text == "(":
            self.i += 1
            inner = self.condition()
            self.expect_punct(")")
            return inner
        if token.kind != "field":
            raise self.fail(token, "a condition")
        call = self.tokens[self.i + 1]
        if call.kind == "punct" and call.text == "(":
            if token.text in ("exists", "missing"):
                self.i += 2
                name = self.field()
                self.expect_punct(")")
                return Exists(name) if token.text == "exists" else Missing(name)
            if token.text in AGGREGATES:
                return self.window()
            raise RuleSyntaxError(self.text, token.at, f"unknown function {token.text!r}")
        name = self.field()
        if self.take_word("not"):
            self.expect_word("in")
            return In(name, self.values(), negated=True)
        if self.take_word("in"):
            return In(name, self.values())
        op = self.operator()
        value, at = self.literal()
        if op in ORDERING and (value is None or isinstance(value, bool)):
            raise RuleSyntaxError(
                self.text, at.at, f"{op} needs a number or a string, got {at.text!r}"
            )
        return Compare(name, op, value)  # type: ignore[arg-type]  # an operator token

    def values(self) -> tuple[Scalar, ...]:
        self.expect_punct("[")
        values: list[Scalar] = []
        if self.peek.kind == "punct" and self.peek.text == "]":
            self.i += 1
            return ()
        while True:
            values.append(self.literal()[0])
            token = self.next()
            if token.kind == "punct" and token.text == "]":
                return tuple(values)
            if token.kind != "punct" or token.text != ",":
                raise self.fail(token, "',' or ']'")

    def window(self) -> Window:
        func = self.next().text
        self.expect_punct("(")
        field: str | None = None
        where: Condition | None = None
        if func == "count":
            if not (self.peek.kind == "punct" and self.peek.text == ")"):
                where = self.condition()
        else:
            field = self.field()
            if self.take_word("where"):
                where = self.condition()
        self.expect_punct(")")
        by = self.field() if self.take_word("by") else None
        self.expect_word("within")
        seconds = self.duration()
        op = self.operator()
        return Window(func, field, where, by, seconds, op, self.number())  # type: ignore[arg-type]


def _join(terms: list[Condition]) -> Condition:
    return terms[0] if len(terms) == 1 else And(tuple(terms))
