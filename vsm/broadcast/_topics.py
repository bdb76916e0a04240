"""Topics, patterns, and a trie that matches a topic against many patterns at once.

Rules:
    1. A *topic* is a dotted string of one or more non-empty *segments*: ``intent.accepted``,
       ``unit.health``, ``audit``. It is at most :data:`MAX_TOPIC_LENGTH` characters, and no
       segment contains ``*`` or ``#``.
    2. An event's topic is its kind (:func:`topic_of`). The path it happened in is not part of
       the topic (paths may hold dots of their own); a subscription narrows by path with
       ``within`` instead.
    3. A *pattern* is written like a topic, but a segment may also be exactly ``*`` (one
       segment, whatever it is) or exactly ``#`` (zero or more segments), as in an AMQP topic
       exchange. A segment that holds ``*`` or ``#`` among other characters (``intent*``) is
       refused, since AMQP would read it as a literal and that is never what was meant.
    4. ``#`` may stand anywhere: ``#`` matches every topic, ``intent.#`` matches ``intent``
       and ``intent.accepted.late``, ``#.failed`` matches ``failed`` and ``spawn.failed``.
    5. Malformed topics and patterns raise :class:`~vsm.broadcast.TopicError` showing them.

Cost: :meth:`TopicTrie.match` walks the segments of the topic once, keeping the set of trie
nodes still alive; each step costs the number of live nodes, not the number of patterns. Keys
that share a pattern share its node, so ten thousand dashboards on ``unit.*`` cost one node.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

from vsm.broadcast._errors import TopicError
from vsm.effects import Event

__all__ = [
    "MAX_TOPIC_LENGTH",
    "TopicTrie",
    "check_pattern",
    "check_topic",
    "topic_matches",
    "topic_of",
]

MAX_TOPIC_LENGTH = 255
"""Most characters in a topic or a pattern (an AMQP routing key's bound)."""

K = TypeVar("K", bound=Hashable)


def _segments(what: str, value: object) -> list[str]:
    if not isinstance(value, str):
        raise TopicError(what, value, "it must be a str")
    if not value or len(value) > MAX_TOPIC_LENGTH:
        raise TopicError(what, value, f"it must be 1 to {MAX_TOPIC_LENGTH} characters long")
    segments = value.split(".")
    if "" in segments:
        raise TopicError(what, value, "segments between dots must not be empty")
    return segments


def check_topic(topic: object) -> str:
    """Return ``topic`` if it is a valid topic (rule 1).

    Raises:
        TopicError: ``topic`` is not a str, is empty or too long, has an empty segment, or
            holds ``*`` or ``#``.
    """
    for segment in _segments("topic", topic):
        if "*" in segment or "#" in segment:
            raise TopicError("topic", topic, f"segment {segment!r} holds a wildcard")
    assert isinstance(topic, str)
    return topic


def check_pattern(pattern: object) -> str:
    """Return ``pattern`` if it is a valid pattern (rule 3).

    Raises:
        TopicError: ``pattern`` is not a str, is empty or too long, has an empty segment, or a
            segment mixes ``*`` or ``#`` with other characters.
    """
    for segment in _segments("pattern", pattern):
        if segment not in ("*", "#") and ("*" in segment or "#" in segment):
            raise TopicError(
                "pattern", pattern, f"segment {segment!r}: a wildcard must be a whole segment"
            )
    assert isinstance(pattern, str)
    return pattern


def topic_of(event: Event) -> str:
    """The topic ``event`` is published under: its kind (rule 2).

    Raises:
        TopicError: The kind is not a valid topic.
    """
    return check_topic(event.kind)


def topic_matches(pattern: str, topic: str) -> bool:
    """Whether ``topic`` matches ``pattern`` (one pattern; use :class:`TopicTrie` for many).

    Raises:
        TopicError: ``pattern`` or ``topic`` is malformed.
    """
    words = check_topic(topic).split(".")
    positions = {0}  # how many words of the topic the pattern so far may have consumed
    for segment in check_pattern(pattern).split("."):
        if segment == "#":
            positions = set(range(min(positions), len(words) + 1))
        elif segment == "*":
            positions = {p + 1 for p in positions if p < len(words)}
        else:
            positions = {p + 1 for p in positions if p < len(words) and words[p] == segment}
        if not positions:
            return False
    return len(words) in positions


class _Node(Generic[K]):
    """One segment of one or more patterns; ``keys`` are those whose pattern ends here."""

    __slots__ = ("children", "greedy", "keys")

    def __init__(self, greedy: bool) -> None:
        self.children: dict[str, _Node[K]] = {}  # literal segments, "*" and "#"
        self.greedy = greedy  # a "#" node: it may also consume the next segment and stay
        self.keys: set[K] = set()


def _closure(nodes: Iterable[_Node[K]]) -> set[_Node[K]]:
    """``nodes`` and every ``#`` node reachable from them by consuming nothing."""
    found = set(nodes)
    todo = list(found)
    while todo:
        greedy = todo.pop().children.get("#")
        if greedy is not None and greedy not in found:
            found.add(greedy)
            todo.append(greedy)
    return found


class TopicTrie(Generic[K]):
    """Keys (subscriber ids) bound to patterns, matched against topics all at once.

    Each key is bound to one pattern; binding it again replaces the old pattern.
    """

    __slots__ = ("_patterns", "_root")

    def __init__(self) -> None:
        self._root: _Node[K] = _Node(greedy=False)
        self._patterns: dict[K, str] = {}

    def __len__(self) -> int:
        return len(self._patterns)

    def __contains__(self, key: object) -> bool:
        return key in self._patterns

    def pattern_of(self, key: K) -> str:
        """The pattern ``key`` is bound to.

        Raises:
            KeyError: ``key`` is not bound.
        """
        return self._patterns[key]

    def add(self, key: K, pattern: str) -> None:
        """Bind ``key`` to ``pattern`` (replacing any pattern it had).

        Raises:
            TopicError: ``pattern`` is malformed (nothing changes).
        """
        segments = check_pattern(pattern).split(".")
        if key in self._patterns:
            self.remove(key)
        node = self._root
        for segment in segments:
            child = node.children.get(segment)
            if child is None:
                child = node.children[segment] = _Node[K](greedy=segment == "#")
            node = child
        node.keys.add(key)
        self._patterns[key] = pattern

    def remove(self, key: K) -> None:
        """Unbind ``key``, pruning the nodes no pattern needs any more.

        Raises:
            KeyError: ``key`` is not bound.
        """
        segments = self._patterns.pop(key).split(".")
        path = [self._root]
        for segment in segments:
            path.append(path[-1].children[segment])
        path[-1].keys.discard(key)
        for i in range(len(segments) - 1, -1, -1):
            if path[i + 1].keys or path[i + 1].children:
                break
            del path[i].children[segments[i]]

    def match(self, topic: str) -> set[K]:
        """The keys whose pattern ``topic`` matches.

        Raises:
            TopicError: ``topic`` is malformed.
        """
        live = _closure([self._root])
        for word in check_topic(topic).split("."):
            step: list[_Node[K]] = []
            for node in live:
                for child in (node.children.get(word), node.children.get("*")):
                    if child is not None:
                        step.append(child)
                if node.greedy:
                    step.append(node)
            if not step:
                return set()
            live = _closure(step)
        found: set[K] = set()
        for node in live:
            found.update(node.keys)
        return found
