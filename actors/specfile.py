"""Tree specs from files: TOML, YAML or JSON, validated into :class:`vsm.spec.TreeSpec`.

A bad file fails with :class:`SpecError`, whose message names the file, the field (as a dotted
path, ``root.children.0.capabilities.1.kernel``) and the line it is on, for every problem
pydantic found. YAML gives exact lines (from its parser's marks); for TOML and JSON the line is
found by looking for the field's key in the text, from the line of its parent down.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from vsm.spec import TreeSpec

__all__ = ["SpecError", "load_rules", "load_spec", "parse_spec"]

SUFFIXES = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json"}


class SpecError(ValueError):
    """A tree spec file is unreadable or invalid; ``problems`` lists ``(field, line, why)``."""

    def __init__(
        self, source: str, problems: list[tuple[str, int | None, str]], what: str = "tree spec"
    ) -> None:
        self.source = source
        self.problems = problems
        lines = [
            f"  {field or '<top>'}" + (f" (line {line})" if line else "") + f": {why}"
            for field, line, why in problems
        ]
        super().__init__(f"invalid {what} {source}:\n" + "\n".join(lines))


def load_spec(path: str | Path) -> TreeSpec:
    """Read and validate the tree spec in ``path`` (``.toml``, ``.yaml``/``.yml``, ``.json``).

    Raises:
        SpecError: the file is missing, of an unknown kind, malformed, or not a valid tree.
    """
    text, kind = _read(Path(path), "tree spec")
    return parse_spec(text, kind, str(path))


def _read(path: Path, what: str) -> tuple[str, str]:
    """The text of ``path`` and its kind (by suffix); SpecError when unknown or unreadable."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise SpecError(
            str(path), [("", None, f"unknown kind {path.suffix!r}; use {sorted(SUFFIXES)}")], what
        )
    try:
        return path.read_text(encoding="utf-8"), kind
    except OSError as exc:
        problem = f"cannot read it: {exc.strerror or exc}"
        raise SpecError(str(path), [("", None, problem)], what) from exc


def parse_spec(text: str, kind: str, source: str = "<text>") -> TreeSpec:
    """Validate ``text`` of ``kind`` (``toml``, ``yaml`` or ``json``) into a TreeSpec.

    Raises:
        SpecError: as :func:`load_spec`.
    """
    data, lines = _parse_data(text, kind, source)
    if not isinstance(data, dict):
        raise SpecError(
            source, [("", None, f"expected a table of settings, got {type(data).__name__}")]
        )
    try:
        return TreeSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = tuple(error["loc"])
            line = lines.get(where) if lines else _text_line(text, where)
            if line is None and lines:
                line = next(
                    (lines[where[:i]] for i in range(len(where), 0, -1) if where[:i] in lines), None
                )
            problems.append((".".join(str(p) for p in where), line, error["msg"]))
        raise SpecError(source, problems) from exc


def _yaml_lines(
    node: yaml.Node, where: tuple[str | int, ...], out: dict[tuple[str | int, ...], int]
) -> None:
    out[where] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            here = (*where, str(key.value))
            out[here] = key.start_mark.line + 1
            _yaml_lines(value, here, out)
            out[here] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _yaml_lines(item, (*where, i), out)


def _text_line(text: str, where: tuple[str | int, ...]) -> int | None:
    """The line of the deepest key of ``where`` found in ``text``, each searched below its parent.

    A key is ``key = ...`` or ``"key": ...`` (at a line's start or inside an inline table) or
    the last name of a ``[table]`` / ``[[array]]`` header.
    """
    rows = text.splitlines()
    start, found = 0, None
    for part in where:
        if isinstance(part, int):
            continue
        name = re.escape(part)
        patterns = (
            re.compile(rf'(^|[{{,])\s*"?{name}"?\s*[=:]'),
            re.compile(rf"^\s*\[\[?[^\]]*\b{name}\]\]?\s*$"),
        )
        for number in range(start, len(rows)):
            if any(p.search(rows[number]) for p in patterns):
                found, start = number + 1, number
                break
        else:
            return found
    return found


def _parse_data(text: str, kind: str, source: str) -> tuple[Any, dict[tuple[str | int, ...], int]]:
    """Parse ``text`` of ``kind``; the data and, for YAML, the line of each key path.

    Raises:
        SpecError: the text does not parse (with the line where the parser says).
    """
    lines: dict[tuple[str | int, ...], int] = {}
    try:
        if kind == "toml":
            data: Any = tomllib.loads(text)
        elif kind == "json":
            data = json.loads(text)
        elif kind == "yaml":
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
            if node is not None:
                _yaml_lines(node, (), lines)
        else:
            raise SpecError(source, [("", None, f"unknown kind {kind!r}")])
    except tomllib.TOMLDecodeError as exc:  # Python 3.11 puts the line only in the message
        at = re.search(r"at line (\d+)", str(exc))
        line = getattr(exc, "lineno", None) or (int(at.group(1)) if at else None)
        raise SpecError(source, [("", line, str(exc))]) from exc
    except json.JSONDecodeError as exc:
        raise SpecError(source, [("", exc.lineno, exc.msg)]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise SpecError(source, [("", line, str(exc).splitlines()[0])]) from exc
    return data, lines


def load_rules(path: str | Path) -> list[dict[str, Any]]:
    """Read the rules in ``path`` (TOML, YAML or JSON): a list of rules, or ``{"rules": [...]}``.

    Each rule is its JSON form (``name``, ``condition`` — text or structure — ``response``,
    optional ``enabled``); they are checked by :meth:`vsm.rules.Rule.from_data` later.

    Raises:
        SpecError: the file is missing, of an unknown kind, malformed, or holds no rule list.
    """
    text, kind = _read(Path(path), "rules file")
    try:
        data, _ = _parse_data(text, kind, str(path))
    except SpecError as exc:
        raise SpecError(exc.source, exc.problems, "rules file") from exc.__cause__
    if isinstance(data, dict) and set(data) == {"rules"}:
        data = data["rules"]
    if not isinstance(data, list) or not all(isinstance(rule, dict) for rule in data):
        problem = "expected a list of rules, or a table with just 'rules'"
        raise SpecError(str(path), [("", None, problem)], "rules file")
    return data
