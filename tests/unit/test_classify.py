"""S1's intent classifier: exact names, BM25 over names and descriptions, and the chain of both."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.strategies_audit import capability_names, capability_sets, descriptions, queries
from vsm.classify import (
    STOP_WORDS,
    BM25Classifier,
    ChainClassifier,
    Classification,
    Classifier,
    ExactClassifier,
    stem,
    tokenize,
)

CAPABILITIES = {
    "patterns.generate": "generate GLIMMER patterns: spirals, Lissajous curves, roses",
    "tunnel.transmission": "compute transmission through a crystal lattice of potential barriers",
    "billing.invoice": "issue an invoice to a customer",
    "weather.forecast": "forecast the weather for a region",
}


def _s1() -> ChainClassifier:
    chain = ChainClassifier(ExactClassifier(), BM25Classifier())
    chain.fit(CAPABILITIES)
    return chain


# ---------------------------------------------------------------- tokenizer


@pytest.mark.parametrize(
    "words",
    [
        ("generate", "generates", "generated", "generating"),
        ("pattern", "patterns"),
        ("rose", "roses"),
        ("curve", "curves"),
        ("invoice", "invoices", "invoiced", "invoicing"),
        ("compute", "computes", "computed", "computing"),
        ("barrier", "barriers"),
        ("lattice", "lattices"),
        ("box", "boxes"),
        ("match", "matches"),
        ("query", "queries"),
        ("forecast", "forecasts", "forecasting"),
    ],
)
def test_stemmer_folds_inflections_onto_one_term(words) -> None:
    """A word and its common inflections become the same term."""
    assert len({stem(word) for word in words}) == 1


@pytest.mark.parametrize("word", ["class", "lissajous", "analysis", "bus", "ring", "need", "go"])
def test_stemmer_leaves_short_stems_and_false_plurals_alone(word) -> None:
    """No suffix is stripped when it would leave under 3 characters or is not a plural."""
    assert stem(word) == word


def test_tokenizer_lowercases_splits_and_drops_stop_words() -> None:
    """Text is lowercased, split on anything but [a-z0-9], and stripped of filler words."""
    assert tokenize("Please GENERATE the billing.invoice_v2-draft, what's 3?") == [
        "generat",
        "bill",
        "invoic",
        "v2",
        "draft",
        "3",
    ]
    assert tokenize("the and of to a") == []


@given(st.text(max_size=40))
def test_tokens_are_lowercase_alphanumeric_and_never_stop_words(text) -> None:
    """Every token is a non-empty run of [a-z0-9] that is not a stop word."""
    for token in tokenize(text):
        assert token
        assert all(c in "abcdefghijklmnopqrstuvwxyz0123456789" for c in token)
        assert token not in STOP_WORDS


# ---------------------------------------------------------------- exact


def test_exact_classifier_matches_stripped_names_case_sensitively() -> None:
    """Exact names (surrounding spaces ignored) answer with confidence 1.0; others get None."""
    exact = ExactClassifier()
    exact.fit(CAPABILITIES)
    assert exact.classify("  billing.invoice\n") == Classification(
        "billing.invoice", 1.0, (("billing.invoice", 1.0),)
    )
    assert exact.classify("Billing.Invoice") is None
    assert exact.classify("billing") is None
    assert exact.classify("") is None


def test_classifiers_answer_none_before_fit() -> None:
    """A classifier that was never fitted knows no capability."""
    assert ExactClassifier().classify("billing.invoice") is None
    assert BM25Classifier().classify("issue an invoice") is None


def test_the_classifiers_satisfy_the_protocol() -> None:
    """Every classifier here satisfies the ``Classifier`` protocol."""
    for classifier in (ExactClassifier(), BM25Classifier(), _s1()):
        assert isinstance(classifier, Classifier)


# ---------------------------------------------------------------- BM25


@pytest.mark.parametrize(
    ("text", "capability"),
    [
        ("draw me some spirals and rose curves", "patterns.generate"),
        ("make a Lissajous figure", "patterns.generate"),
        ("generating GLIMMER patterns", "patterns.generate"),
        ("how much gets through these potential barriers?", "tunnel.transmission"),
        ("crystal lattice transmission coefficient", "tunnel.transmission"),
        (
            "could you please compute the transmission of this lattice at energy 3",
            "tunnel.transmission",
        ),
        ("bill the customer", "billing.invoice"),
        ("send an invoice to ACME corp", "billing.invoice"),
        ("issue invoices to customers 42 and 43", "billing.invoice"),
        ("what's the weather going to be like in Paris", "weather.forecast"),
        ("forecast for the north region", "weather.forecast"),
        ("weather forecasts", "weather.forecast"),
    ],
)
def test_paraphrases_find_the_right_capability(text, capability) -> None:
    """Requests worded unlike the descriptions still reach the capability they mean."""
    answer = _s1().classify(text)
    assert answer is not None, text
    assert answer.capability == capability
    assert 0.35 <= answer.confidence < 1.0


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "xqzv blorp",
        "asdf qwerty zxcv",
        "lorem ipsum dolor sit amet",
        "the and of",
        "!!! ???",
    ],
)
def test_gibberish_gets_no_capability(text) -> None:
    """Text with no term of any capability gets None, even with a zero threshold."""
    assert _s1().classify(text) is None
    lenient = BM25Classifier(threshold=0.0)
    lenient.fit(CAPABILITIES)
    assert lenient.classify(text) is None


def test_a_weak_match_is_refused_below_the_threshold() -> None:
    """One known word among many unknown ones is not enough at the default threshold."""
    bm25 = BM25Classifier()
    bm25.fit(CAPABILITIES)
    text = "weather alpha bravo charlie delta echo foxtrot golf hotel india"
    assert bm25.classify(text) is None
    lenient = BM25Classifier(threshold=0.0)
    lenient.fit(CAPABILITIES)
    answer = lenient.classify(text)
    assert answer is not None
    assert answer.capability == "weather.forecast"


def test_ties_break_by_capability_name() -> None:
    """Two capabilities that match equally rank by name; the confidence shows the tie."""
    bm25 = BM25Classifier()
    bm25.fit({"zeta.sum": "add numbers", "alpha.sum": "add numbers", "other": "render images"})
    answer = bm25.classify("add the numbers")
    assert answer is not None
    assert answer.capability == "alpha.sum"
    assert [name for name, _ in answer.scores] == ["alpha.sum", "zeta.sum"]
    assert answer.confidence == pytest.approx(0.5)


def test_names_are_searched_as_well_as_descriptions() -> None:
    """A capability is found by the words of its name, split on '.', '_' and '-'."""
    bm25 = BM25Classifier()
    bm25.fit({"image_resize-fast.v2": "", "text.translate": "turn prose into another language"})
    answer = bm25.classify("resize this image")
    assert answer is not None
    assert answer.capability == "image_resize-fast.v2"


def test_refit_replaces_the_index() -> None:
    """After a refit, only the new capabilities are known."""
    bm25 = BM25Classifier()
    bm25.fit(CAPABILITIES)
    bm25.fit({"mail.send": "send an email message"})
    assert bm25.capabilities == ("mail.send",)
    assert bm25.classify("forecast the weather") is None
    answer = bm25.classify("email a message")
    assert answer is not None
    assert answer.capability == "mail.send"


def test_scores_list_at_most_top_candidates() -> None:
    """``scores`` lists at most ``top`` candidates, only those that matched at all."""
    bm25 = BM25Classifier(threshold=0.0, top=2)
    bm25.fit({f"cap.{i}": "shared word" + " extra" * i for i in range(5)})
    answer = bm25.classify("shared")
    assert answer is not None
    assert len(answer.scores) == 2
    bm25.fit(CAPABILITIES)
    answer = bm25.classify("invoice")
    assert answer is not None
    assert [name for name, _ in answer.scores] == ["billing.invoice"]


def test_k1_zero_counts_terms_once() -> None:
    """With k1 = 0 repeated terms add nothing, and no score is NaN."""
    bm25 = BM25Classifier(k1=0.0, threshold=0.0)
    bm25.fit({"a.x": "word word word word", "b.x": "word other"})
    answer = bm25.classify("word")
    assert answer is not None
    assert all(math.isfinite(score) for _, score in answer.scores)
    assert answer.scores[0][1] == answer.scores[1][1]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"k1": -0.1},
        {"k1": math.inf},
        {"k1": "1.5"},
        {"b": 1.5},
        {"b": -0.1},
        {"threshold": 1.1},
        {"threshold": math.nan},
        {"threshold": True},
        {"top": 0},
        {"top": 2.0},
    ],
)
def test_bm25_refuses_bad_arguments(kwargs) -> None:
    """Out-of-range parameters are refused with the name and the value in the message."""
    ((name, value),) = kwargs.items()
    with pytest.raises(ValueError, match=name) as caught:
        BM25Classifier(**kwargs)
    assert repr(value) in str(caught.value)


@pytest.mark.parametrize(
    ("capabilities", "error"),
    [
        (["billing.invoice"], TypeError),
        ({1: "x"}, TypeError),
        ({"a": None}, TypeError),
        ({"": "x"}, ValueError),
        ({" padded ": "x"}, ValueError),
    ],
)
@pytest.mark.parametrize(
    "make", [ExactClassifier, BM25Classifier, lambda: ChainClassifier(ExactClassifier())]
)
def test_fit_refuses_bad_capabilities(make, capabilities, error) -> None:
    """``fit`` takes a mapping of non-empty, unpadded str names to str descriptions."""
    with pytest.raises(error):
        make().fit(capabilities)


@pytest.mark.parametrize(
    "make", [ExactClassifier, BM25Classifier, lambda: ChainClassifier(ExactClassifier())]
)
def test_classify_refuses_non_text(make) -> None:
    """``classify`` takes a str and says what it got instead."""
    with pytest.raises(TypeError, match="bytes"):
        make().classify(b"billing.invoice")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"capability": "", "confidence": 0.5, "scores": ()}, "capability"),
        ({"capability": "a", "confidence": 1.5, "scores": ()}, "confidence"),
        ({"capability": "a", "confidence": math.nan, "scores": ()}, "confidence"),
        ({"capability": "a", "confidence": 0.5, "scores": (("a", 1.0), ("b", 2.0))}, "sorted"),
    ],
)
def test_classification_refuses_bad_fields(kwargs, match) -> None:
    """A Classification's confidence is in [0, 1] and its scores are sorted descending."""
    with pytest.raises(ValueError, match=match):
        Classification(**kwargs)


@given(capability_sets, queries)
def test_confidence_is_in_unit_interval_and_scores_descend(capabilities, text) -> None:
    """Any answer has confidence in [0, 1], the winner first, and scores descending by name."""
    bm25 = BM25Classifier(threshold=0.0)
    bm25.fit(capabilities)
    answer = bm25.classify(text)
    if answer is None:
        return
    assert 0.0 <= answer.confidence <= 1.0
    assert answer.scores[0][0] == answer.capability
    keys = [(-score, name) for name, score in answer.scores]
    assert keys == sorted(keys)
    assert all(score > 0 and name in capabilities for name, score in answer.scores)


@given(capability_sets, st.data())
def test_classification_does_not_depend_on_the_order_capabilities_came_in(
    capabilities, data
) -> None:
    """Fitting the same capabilities in another order gives identical answers, bit for bit."""
    shuffled = dict(data.draw(st.permutations(list(capabilities.items()))))
    one, two = BM25Classifier(threshold=0.0), BM25Classifier(threshold=0.0)
    one.fit(capabilities)
    two.fit(shuffled)
    for text in data.draw(st.lists(queries, min_size=1, max_size=4)):
        assert one.classify(text) == two.classify(text)


@given(capability_sets, capability_names, descriptions, st.data())
def test_exact_names_always_win_and_unrelated_capabilities_change_nothing(
    capabilities, extra, text, data
) -> None:
    """Through S1's chain an exact name always wins at 1.0, with or without another capability."""
    assume(extra not in capabilities)
    name = data.draw(st.sampled_from(sorted(capabilities)))
    expected = Classification(name, 1.0, ((name, 1.0),))
    assert _fitted(capabilities).classify(f" {name}\t") == expected
    assert _fitted({**capabilities, extra: text}).classify(name) == expected


@given(capability_sets, capability_sets, queries)
def test_refit_equals_a_fresh_fit(first, second, text) -> None:
    """A refitted classifier answers exactly like one fitted only on the new capabilities."""
    refitted, fresh = BM25Classifier(threshold=0.0), BM25Classifier(threshold=0.0)
    refitted.fit(first)
    refitted.fit(second)
    fresh.fit(second)
    assert refitted.classify(text) == fresh.classify(text)


def _fitted(capabilities: dict[str, str]) -> ChainClassifier:
    chain = ChainClassifier(ExactClassifier(), BM25Classifier())
    chain.fit(capabilities)
    return chain


# ---------------------------------------------------------------- chain


class _Fixed:
    """A classifier that always gives the same answer (to watch the chain's order)."""

    def __init__(self, answer: Classification | None) -> None:
        self.answer = answer
        self.fitted: dict[str, str] | None = None

    def fit(self, capabilities) -> None:
        self.fitted = dict(capabilities)

    def classify(self, text: str) -> Classification | None:
        return self.answer


def test_chain_returns_the_first_answer_and_fits_every_classifier() -> None:
    """The chain fits all its classifiers and returns the first answer that is not None."""
    none, first, second = (
        _Fixed(None),
        _Fixed(Classification("a", 0.4, ())),
        _Fixed(Classification("b", 0.9, ())),
    )
    chain = ChainClassifier(none, first, second)
    chain.fit({"a": "", "b": ""})
    assert chain.classify("anything") == first.answer
    assert none.fitted == first.fitted == second.fitted == {"a": "", "b": ""}
    assert ChainClassifier(none).classify("anything") is None
    assert chain.classifiers == (none, first, second)


def test_chain_prefers_the_exact_name_over_bm25() -> None:
    """A name that is also a better lexical match for another capability still goes exact."""
    s1 = ChainClassifier(ExactClassifier(), BM25Classifier())
    s1.fit({"weather": "issue an invoice", "billing.invoice": "weather weather weather"})
    answer = s1.classify("weather")
    assert answer is not None
    assert (answer.capability, answer.confidence) == ("weather", 1.0)


def test_chain_refuses_no_or_wrong_classifiers() -> None:
    """A chain needs at least one classifier, and only classifiers."""
    with pytest.raises(ValueError, match="at least one"):
        ChainClassifier()
    with pytest.raises(TypeError, match="42"):
        ChainClassifier(ExactClassifier(), 42)  # type: ignore[arg-type]
