"""The text form of conditions: parse and format are inverse; errors point at the fault."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies_rules import wide_conditions
from vsm.rules import (
    AllWithin,
    And,
    Compare,
    Exists,
    In,
    Missing,
    Not,
    Or,
    RuleSyntaxError,
    Then,
    Window,
    format_condition,
    parse_condition,
)
from vsm.rules._parse import RESERVED


@given(wide_conditions())
def test_format_then_parse_gives_the_condition_back(condition):
    """parse(format(c)) == c for every condition, field names and literals of any kind."""
    assert parse_condition(format_condition(condition)) == condition


@given(wide_conditions(), st.data())
def test_a_bad_character_is_reported_where_it_is(condition, data):
    """A stray '@' inserted between tokens is reported at its own offset."""
    text = format_condition(condition)
    # Offsets just before a space lie between tokens, outside strings and backquotes.
    spaces = [i for i, ch in enumerate(text) if ch == " " and _outside_quotes(text, i)]
    at = data.draw(st.sampled_from([*spaces, len(text)]))
    with pytest.raises(RuleSyntaxError) as caught:
        parse_condition(text[:at] + " @" + text[at:])
    assert caught.value.position == at + 1


@given(wide_conditions(), st.data())
def test_a_cut_text_fails_at_or_before_the_cut(condition, data):
    """Cutting a condition's text anywhere leaves either a condition or an error within it."""
    text = format_condition(condition)
    cut = data.draw(st.integers(0, len(text)))
    error = None
    try:
        parse_condition(text[:cut])
    except RuleSyntaxError as caught:
        error = caught
    if error is not None:
        assert 0 <= error.position <= cut
        assert error.text == text[:cut]


def _outside_quotes(text: str, at: int) -> bool:
    quote, escaped = None, False
    for ch in text[:at]:
        if escaped:
            escaped = False
        elif ch == "\\" and quote:
            escaped = True
        elif quote and ch == quote:
            quote = None
        elif not quote and ch in '"`':
            quote = ch
    return quote is None


def test_the_issues_examples_parse():
    """The examples of the issue read as documented: a trailing within is an AllWithin."""
    assert parse_condition("temp > 90 and cpu > 0.8") == And(
        (Compare("temp", ">", 90.0), Compare("cpu", ">", 0.8))
    )
    assert parse_condition("cpu > 0.8 and temp > 90 within 30s") == AllWithin(
        (Compare("cpu", ">", 0.8), Compare("temp", ">", 90.0)), None, 30.0
    )
    assert parse_condition('count(kind == "intent.rejected") by user within 30s > 10') == Window(
        "count", None, Compare("kind", "==", "intent.rejected"), "user", 30.0, ">", 10.0
    )
    assert parse_condition("avg(cpu) within 10s >= 0.9") == Window(
        "avg", "cpu", None, None, 10.0, ">=", 0.9
    )
    assert parse_condition('kind == "a" then kind == "b" by user within 5s') == Then(
        Compare("kind", "==", "a"), Compare("kind", "==", "b"), "user", 5.0
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x != null", Compare("x", "!=", None)),
        ('x not in ["a", 1, true, null]', In("x", ("a", 1.0, True, None), negated=True)),
        ("x in []", In("x", ())),
        ("not x in [1]", Not(In("x", (1.0,)))),
        ("exists(`a b`) or missing(count)", Or((Exists("a b"), Missing("count")))),
        ("count > 2", Compare("count", ">", 2.0)),
        ("`and` == -1.5e3", Compare("and", "==", -1500.0)),
        ('a.b <= "z\\n"', Compare("a.b", "<=", "z\n")),
        ("count() within 500ms > 2", Window("count", None, None, None, 0.5, ">", 2.0)),
        (
            'max(t where kind == "x") by path within 2m < 1',
            Window("max", "t", Compare("kind", "==", "x"), "path", 120.0, "<", 1.0),
        ),
        (
            "(a > 1 and b > 1) within 1h",
            AllWithin((And((Compare("a", ">", 1.0), Compare("b", ">", 1.0))),), None, 3600.0),
        ),
        (
            "a > 1 and b > 1 by u within 1s",
            AllWithin((Compare("a", ">", 1.0), Compare("b", ">", 1.0)), "u", 1.0),
        ),
        ("not not a == 1", Not(Not(Compare("a", "==", 1.0)))),
        (
            "(a == 1 or b == 1) or c == 1",
            Or((Or((Compare("a", "==", 1.0), Compare("b", "==", 1.0))), Compare("c", "==", 1.0))),
        ),
    ],
)
def test_examples_parse_to_the_expected_tree(text, expected):
    """Hand-written texts give the trees the grammar in docs/rules.md describes."""
    assert parse_condition(text) == expected


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("cpu >", 5, "expected a literal"),
        ("cpu 0.8", 4, "expected an operator"),
        ("a > 1 or b > 1 within 5s", 15, "put an 'or' in parentheses"),
        ("a > 1 then b > 1", 16, "'within' after 'then'"),
        ("x > true", 4, "needs a number or a string"),
        ("count(x > 1) within 30 > 1", 20, "needs a unit"),
        ("x @ 1", 2, "unexpected character '@'"),
        ("foo(x) > 1", 0, "unknown function 'foo'"),
        ('x == "abc', 5, "unterminated"),
        ("x in [1,", 8, "expected a literal"),
        ("x in [1 2]", 8, "expected ',' or ']'"),
        ("(a > 1", 6, "expected ')'"),
        ("a > 1)", 5, "the end of the condition"),
        ("and > 1", 0, "expected a condition"),
        ("a > 1 within 0s", 13, "must be > 0"),
        ('count(x > 1) within 5s > "a"', 25, "expected a number"),
        ("a > 1\n  and > 3", 12, "expected a condition"),
        ("", 0, "expected a condition"),
        ("(" * 100 + "a > 1" + ")" * 100, 64, "nested too deep"),
    ],
)
def test_errors_point_at_the_fault(text, position, words):
    """Each syntax error names the problem and sits at the offset of the offending token."""
    with pytest.raises(RuleSyntaxError) as caught:
        parse_condition(text)
    assert caught.value.position == position
    assert words in str(caught.value)


def test_the_message_shows_the_text_with_a_caret():
    """The message holds the line of the fault and a caret under the offending character."""
    with pytest.raises(RuleSyntaxError) as caught:
        parse_condition('kind == "a" and cpu 0.8')
    lines = str(caught.value).splitlines()
    assert lines[1].strip() == 'kind == "a" and cpu 0.8'
    assert lines[2].index("^") == lines[1].index("0.8")
    assert isinstance(caught.value, ValueError)


def test_a_long_line_is_cut_around_the_fault():
    """A fault far into a long line is still shown, with the caret under it."""
    text = " and ".join(f"f{i} > {i}" for i in range(40)) + " and ?"
    with pytest.raises(RuleSyntaxError) as caught:
        parse_condition(text)
    shown, caret = str(caught.value).splitlines()[1:3]
    assert shown[caret.index("^")] == "?"


@pytest.mark.parametrize("word", sorted(RESERVED))
def test_reserved_words_are_fields_in_backquotes(word):
    """A field named like a reserved word prints in backquotes and reads back."""
    condition = Compare(word, "==", 1.0)
    assert format_condition(condition) == f"`{word}` == 1.0"
    assert parse_condition(format_condition(condition)) == condition
