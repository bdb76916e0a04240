"""S1's intent classifier: which capability does an intent's free text ask for?

Every classifier satisfies the :class:`Classifier` protocol: ``fit`` on a mapping of capability
name to description, then ``classify(text)`` gives a :class:`Classification` or ``None`` (no
capability fits well enough, and S1 turns to S4). :class:`ExactClassifier` answers exact names;
:class:`BM25Classifier` ranks names and descriptions lexically (numpy); :class:`ChainClassifier`
asks several in turn. See :mod:`vsm.classify._text` for the tokenizer and stemmer, and
:mod:`vsm.classify._bm25` for the scoring rules.
"""

from vsm.classify._bm25 import BM25Classifier
from vsm.classify._chain import ChainClassifier
from vsm.classify._exact import ExactClassifier
from vsm.classify._text import STOP_WORDS, stem, tokenize
from vsm.classify._types import Classification, Classifier

__all__ = [
    "STOP_WORDS",
    "BM25Classifier",
    "ChainClassifier",
    "Classification",
    "Classifier",
    "ExactClassifier",
    "stem",
    "tokenize",
]
