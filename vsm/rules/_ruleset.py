"""A versioned set of compiled rules, evaluated one event at a time or a batch at a time.

Rules:
    1. Every change (:meth:`RuleSet.add`, :meth:`~RuleSet.replace`, :meth:`~RuleSet.remove`)
       bumps ``version`` by one. Each event is evaluated against exactly one version: the one
       current when it is offered (a call that evaluates is never interleaved with a change,
       since the set is a plain object its owner calls). A :class:`Match` names that version.
    2. An unchanged rule keeps its state across changes of other rules. A replaced rule starts
       with fresh state (empty windows and sequences, no clock): its condition may differ, and
       state built under one condition does not mean the same under another.
    3. Counters (``input``, ``matched``, ``filtered``) belong to the rule's *name*: they
       survive :meth:`~RuleSet.replace` (they count what the name has seen, across versions),
       and go with :meth:`~RuleSet.remove` (a name added again starts at zero).
    4. A disabled rule is offered no events: it holds no state and its counters stand still.
    5. Matches come in event order, then in the order the rules were added (a replaced rule
       keeps its place). ``index`` is the event's position in what was offered in that call
       (0 for one event), ``seq`` its position in everything offered to the set so far. One
       event at a time and in batches, cut anywhere, give the same matches.
    6. A stateful rule needs a finite ``at``; an event (or a batch holding one) without it is
       refused with :class:`EventFieldError` before any rule sees it, so nothing is counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from vsm._record import record
from vsm.effects import Event
from vsm.errors import MalformedDataError
from vsm.rules._batch import Events, as_batch
from vsm.rules._compile import CompiledRule, batch_time, check_time
from vsm.rules._fields import fields_of, row_of
from vsm.rules._responses import Response
from vsm.rules._rule import Rule

__all__ = ["Match", "RuleSet"]


@record
class Match:
    """An event that matched a rule, and what the rule asks for (a record: keyword-built).

    Attributes:
        rule: The rule's name.
        version: The version of the set the event was evaluated against.
        index: The event's position in the call that offered it (0 for one event).
        seq: The event's position among all events offered to the set.
        fields: The event's fields.
        response: What the rule asks for.
    """

    rule: str
    version: int
    index: int
    seq: int
    fields: Mapping[str, Any]
    response: Response


class RuleSet:
    """Rules by name, compiled, versioned (rules 1-6).

    Args:
        rules: The initial rules (version 0).
        max_entries: Most entries each window, and keys each sequence, keeps.

    Raises:
        ValueError: Two rules share a name, or ``max_entries`` is out of range.
    """

    __slots__ = (
        "_active",
        "_compiled",
        "_counted",
        "_fields",
        "_offered",
        "_stateful",
        "_version",
        "max_entries",
    )

    def __init__(self, rules: Iterable[Rule] = (), *, max_entries: int = 10_000) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries must be an int >= 1, got {max_entries!r}")
        self.max_entries = max_entries
        self._version = 0
        self._compiled: dict[str, CompiledRule | Rule] = {}
        # What replaced versions of a name counted (rule 3); the live rule counts the rest.
        self._counted: dict[str, tuple[int, int]] = {}
        self._offered = 0
        for rule in rules:
            self._put(rule, new=True)
        self._refresh()

    # ---------------------------------------------------------------- changes

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The rules, in the order they were added."""
        return tuple(_rule_of(entry) for entry in self._compiled.values())

    @property
    def version(self) -> int:
        """The version: 0 when built, one more at every add, replace or remove."""
        return self._version

    @property
    def offered(self) -> int:
        """Events offered to the set so far."""
        return self._offered

    def get(self, name: str) -> Rule:
        """The rule named ``name``.

        Raises:
            KeyError: No rule has that name.
        """
        if name not in self._compiled:
            raise KeyError(f"no rule named {name!r} in the set")
        return _rule_of(self._compiled[name])

    def add(self, rule: Rule) -> int:
        """Add a rule; return the new version.

        Raises:
            ValueError: A rule with that name is already in the set (use :meth:`replace`).
        """
        self._put(rule, new=True)
        return self._bump()

    def replace(self, rule: Rule) -> int:
        """Replace the rule of the same name (fresh state, same counters); return the version.

        Raises:
            KeyError: No rule has that name.
        """
        if not isinstance(rule, Rule):
            raise TypeError(f"expected a Rule, got {rule!r}")
        if rule.name not in self._compiled:
            raise KeyError(f"no rule named {rule.name!r} to replace; use add")
        self._put(rule, new=False)
        return self._bump()

    def remove(self, name: str) -> int:
        """Remove the rule named ``name``, with its state and counters; return the version.

        Raises:
            KeyError: No rule has that name.
        """
        if name not in self._compiled:
            raise KeyError(f"no rule named {name!r} to remove")
        del self._compiled[name]
        del self._counted[name]
        return self._bump()

    def _put(self, rule: Rule, new: bool) -> None:
        if not isinstance(rule, Rule):
            raise TypeError(f"expected a Rule, got {rule!r}")
        if new and rule.name in self._compiled:
            raise ValueError(f"a rule named {rule.name!r} is already in the set; use replace")
        compiled = CompiledRule(rule, self.max_entries) if rule.enabled else rule
        offered, matched = self._counts(rule.name)
        self._counted[rule.name] = (offered, matched)
        self._compiled[rule.name] = compiled

    def _bump(self) -> int:
        self._version += 1
        self._refresh()
        return self.version

    def _refresh(self) -> None:
        active = [c for c in self._compiled.values() if isinstance(c, CompiledRule)]
        self._active = active
        self._fields = frozenset().union(*(c.fields for c in active))
        self._stateful = any(c.stateful for c in active)

    # ---------------------------------------------------------------- evaluation

    def evaluate(self, event: Event | Mapping[str, Any]) -> list[Match]:
        """Offer one event (or its fields); return the matches (rule 5).

        Raises:
            EventFieldError: The event's data shadows ``kind``/``path``/``at``, or a stateful
                rule needs a finite ``at`` it lacks (rule 6).
        """
        fields = fields_of(event) if isinstance(event, Event) else event
        row = row_of(fields, self._fields)
        if self._stateful:
            check_time(row)
        seq = self._offered
        self._offered += 1
        matches = []
        for compiled in self._active:
            if compiled.evaluate_row(row):
                matches.append(
                    Match(
                        rule=compiled.name,
                        version=self.version,
                        index=0,
                        seq=seq,
                        fields=fields,
                        response=compiled.rule.response,
                    )
                )
        return matches

    def evaluate_batch(self, events: Events, n: int | None = None) -> list[Match]:
        """Offer a batch; return the matches (rule 5).

        Args:
            events: A :class:`Batch`, arrays by field (see :meth:`Batch.from_arrays`), or
                events or their field dicts.
            n: How many events, for arrays by field (read from the arrays when ``None``).

        Raises:
            EventFieldError: As :meth:`evaluate`, for any event of the batch; then no event of
                it has been offered (rule 6).
        """
        batch = as_batch(events, n)
        if self._stateful:
            batch_time(batch)
        start = self._offered
        self._offered += batch.n
        memo: dict[Any, Any] = {}
        hits = []
        for position, compiled in enumerate(self._active):
            indices = compiled.evaluate_batch(batch, memo)
            if len(indices):
                hits.append((indices, np.full(len(indices), position, np.int64)))
        if not hits:
            return []
        indices = np.concatenate([h[0] for h in hits])
        positions = np.concatenate([h[1] for h in hits])
        order = np.lexsort((positions, indices))
        names = [c.rule.name for c in self._active]
        answers = [c.rule.response for c in self._active]
        version, row = self.version, batch.row
        return [
            Match(
                rule=names[p],
                version=version,
                index=i,
                seq=start + i,
                fields=row(i),
                response=answers[p],
            )
            for i, p in zip(indices[order].tolist(), positions[order].tolist(), strict=True)
        ]

    # ---------------------------------------------------------------- reading

    def statistics(self) -> dict[str, Any]:
        """The version, events offered, and per rule its counters and the state it holds."""
        rules: dict[str, dict[str, Any]] = {}
        for name, entry in self._compiled.items():
            offered, matched = self._counts(name)
            stats: dict[str, Any] = {
                "input": offered,
                "matched": matched,
                "filtered": offered - matched,
                "enabled": isinstance(entry, CompiledRule),
            }
            if isinstance(entry, CompiledRule):
                state = entry.statistics()
                stats["entries"] = state["entries"]
                stats["evicted"] = state["evicted"]
            rules[name] = stats
        return {"version": self.version, "offered": self._offered, "rules": rules}

    def _counts(self, name: str) -> tuple[int, int]:
        """(input, matched) of a name: its replaced versions' and its live rule's."""
        offered, matched = self._counted.get(name, (0, 0))
        entry = self._compiled.get(name)
        if isinstance(entry, CompiledRule):
            return offered + entry.input, matched + entry.matched
        return offered, matched

    def to_data(self) -> dict[str, Any]:
        """The JSON form of the rules and the bound (not the state, counters or version)."""
        return {"max_entries": self.max_entries, "rules": [r.to_data() for r in self.rules]}

    @classmethod
    def from_data(cls, data: object) -> RuleSet:
        """A new set (version 0) from :meth:`to_data` output, or from a list of rules.

        Raises:
            MalformedDataError: ``data`` is not a rule set; the error names the path in the JSON.
        """
        if isinstance(data, list):
            data = {"rules": data}
        if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
            raise MalformedDataError("RuleSet", "rules", "expected a list of rules", data)
        for key in data:
            if key not in ("rules", "max_entries"):
                raise MalformedDataError("RuleSet", str(key), "unknown key", data)
        rules = []
        for i, raw in enumerate(data["rules"]):
            try:
                rules.append(Rule.from_data(raw))
            except MalformedDataError as exc:
                where = f"rules[{i}]" + (f".{exc.path}" if exc.path else "")
                raise MalformedDataError("RuleSet", where, str(exc), raw) from exc
        try:
            return cls(rules, max_entries=data.get("max_entries", 10_000))
        except ValueError as exc:
            raise MalformedDataError("RuleSet", "", str(exc), data) from exc

    def __len__(self) -> int:
        return len(self._compiled)

    def __contains__(self, name: object) -> bool:
        return name in self._compiled

    def __repr__(self) -> str:
        return f"RuleSet(version={self.version}, rules={list(self._compiled)})"


def _rule_of(entry: CompiledRule | Rule) -> Rule:
    return entry.rule if isinstance(entry, CompiledRule) else entry
